// Load generators for the cluster benchmark: a closed loop (a fixed number of requests in flight, as
// redis-benchmark does) and an open loop (requests at a fixed rate whatever the replies do), over
// any lock target: raftlock's KLOCK or the etcd transaction.
import { RespClient, ReplyError } from './resp-client.js';
import { median, quantile, sortedCopy } from './stats.js';

/** Something that takes a lock on a key; done gets null on a reply (granted or refused), else the error text. */
export interface LockTarget {
  issue(key: string, done: (error: string | null) => void): void;
  close(): Promise<void>;
}

/** redis-benchmark's __rand_int__: a 12-digit zero-padded random integer below keyspace. */
export function randomKey(prefix: string, keyspace: number): string {
  return prefix + String(Math.floor(Math.random() * keyspace)).padStart(12, '0');
}

/** KLOCK key owner ttlMs mode over `connections` connections to one node, round-robin. */
export async function raftlockLockTarget(options: {
  port: number;
  connections: number;
  owner: string;
  ttlMs: number;
  mode: 'PERSISTENT' | 'EPHEMERAL';
}): Promise<LockTarget> {
  const clients: RespClient[] = [];
  try {
    for (let i = 0; i < options.connections; i++) clients.push(await RespClient.connect(options.port));
  } catch (error) {
    for (const c of clients) c.close();
    throw error;
  }
  const tail = [options.owner, options.ttlMs, options.mode] as const;
  let next = 0;
  return {
    issue(key, done) {
      const client = clients[next]!;
      next = (next + 1) % clients.length;
      client.send(['KLOCK', key, ...tail], (reply) => {
        if (reply instanceof Error) done(reply.message);
        else if (reply instanceof ReplyError) done(reply.message);
        else done(null);
      });
    },
    close() {
      for (const c of clients) c.close();
      return Promise.resolve();
    },
  };
}

export interface LatencySummary {
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export interface LoadResult {
  /** Replies (not errors) per second over the measured interval. */
  rps: number;
  completed: number;
  /** Error replies by their text's first 80 characters. */
  errors: Map<string, number>;
  latency: LatencySummary;
  /** CPU time this (load generator) process used per second of the run: 1.0 = one core. */
  generatorCores: number;
  elapsedMs: number;
}

export function errorCount(errors: Map<string, number>): number {
  let n = 0;
  for (const count of errors.values()) n += count;
  return n;
}

function summarize(latencies: Float64Array, count: number): LatencySummary {
  const sorted = sortedCopy(latencies, count);
  return { p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), p999Ms: quantile(sorted, 0.999), maxMs: sorted.length > 0 ? sorted[sorted.length - 1]! : NaN };
}

function noteError(errors: Map<string, number>, text: string): void {
  const key = text.slice(0, 80);
  errors.set(key, (errors.get(key) ?? 0) + 1);
}

function coresUsed(before: NodeJS.CpuUsage, elapsedMs: number): number {
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / elapsedMs;
}

/** `concurrency` requests in flight until `requests` have been answered; throughput over the whole run. */
export function closedLoop(target: LockTarget, options: { concurrency: number; requests: number; key: () => string }): Promise<LoadResult> {
  const latencies = new Float64Array(options.requests);
  const errors = new Map<string, number>();
  let issued = 0;
  let answered = 0;
  let completed = 0;
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  return new Promise((resolve) => {
    const issueOne = (): void => {
      issued += 1;
      const sentAt = performance.now();
      target.issue(options.key(), (error) => {
        const now = performance.now();
        answered += 1;
        if (error === null) latencies[completed++] = now - sentAt;
        else noteError(errors, error);
        // After an error (a broken connection answers at once) the next request waits a turn of the event loop.
        if (issued < options.requests) {
          if (error === null) issueOne();
          else setImmediate(issueOne);
        } else if (answered === options.requests) {
          const elapsedMs = now - start;
          resolve({ rps: (completed * 1000) / elapsedMs, completed, errors, latency: summarize(latencies, completed), generatorCores: coresUsed(cpuBefore, elapsedMs), elapsedMs });
        }
      });
    };
    for (let i = 0; i < Math.min(options.concurrency, options.requests); i++) issueOne();
  });
}

export interface OpenLoopResult extends LoadResult {
  /** The rate asked for and the rate requests actually went out at (measured interval). */
  targetRate: number;
  sentRate: number;
  /** How far the generator fell behind its schedule at worst, ms (a busy generator delays requests). */
  scheduleLagMaxMs: number;
  /** Requests still unanswered when the run gave up waiting (0 normally). */
  unanswered: number;
}

/**
 * Sends requests at a fixed rate for warmupMs + durationMs, whatever the replies do. A request's
 * latency counts from when it was due to be sent, not from when the generator got to send it, so a
 * stall of the generator or the server is charged to the requests it delayed (no coordinated
 * omission). Only requests due after the warm-up are measured. Gives up waiting for replies
 * drainMs after the last request; stops early if more than inFlightMax are unanswered.
 */
export function openLoop(target: LockTarget, options: {
  ratePerSec: number;
  durationMs: number;
  warmupMs: number;
  key: () => string;
  inFlightMax?: number;
  drainMs?: number;
}): Promise<OpenLoopResult> {
  const intervalMs = 1000 / options.ratePerSec;
  const total = Math.floor(((options.warmupMs + options.durationMs) * options.ratePerSec) / 1000);
  const measuredFrom = Math.ceil((options.warmupMs * options.ratePerSec) / 1000);
  const inFlightMax = options.inFlightMax ?? 200_000;
  const latencies = new Float64Array(Math.max(0, total - measuredFrom));
  const errors = new Map<string, number>();
  let sent = 0;
  let answered = 0;
  let completed = 0;
  let lagMaxMs = 0;
  let lastSentAt = 0;
  let cpuBefore = process.cpuUsage();
  const start = performance.now();
  return new Promise((resolve) => {
    let finished = false;
    let drainTimer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(drainTimer);
      const measuredMs = lastSentAt - (start + measuredFrom * intervalMs);
      const elapsedMs = performance.now() - (start + options.warmupMs);
      resolve({
        rps: (completed * 1000) / options.durationMs, completed, errors, latency: summarize(latencies, completed),
        generatorCores: coresUsed(cpuBefore, elapsedMs), elapsedMs,
        targetRate: options.ratePerSec, sentRate: measuredMs > 0 ? ((sent - measuredFrom) * 1000) / measuredMs : NaN,
        scheduleLagMaxMs: lagMaxMs, unanswered: sent - answered,
      });
    };
    const tick = (): void => {
      if (finished) return;
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - start) / intervalMs) + 1);
      while (sent < due) {
        const index = sent++;
        const dueAt = start + index * intervalMs;
        if (index === measuredFrom) cpuBefore = process.cpuUsage();
        const measured = index >= measuredFrom;
        if (measured) lagMaxMs = Math.max(lagMaxMs, now - dueAt);
        target.issue(options.key(), (error) => {
          answered += 1;
          if (measured) {
            if (error === null) latencies[completed++] = performance.now() - dueAt;
            else noteError(errors, error);
          }
          if (answered === total) finish();
        });
      }
      lastSentAt = now;
      if (sent - answered > inFlightMax) {
        noteError(errors, `load generator stopped: more than ${inFlightMax} requests unanswered`);
        finish();
      } else if (sent < total) {
        setTimeout(tick, 1);
      } else {
        drainTimer = setTimeout(finish, options.drainMs ?? 30_000);
      }
    };
    tick();
  });
}

/** The median of each latency quantile over several runs. */
export function medianLatency(runs: LatencySummary[]): LatencySummary {
  return {
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    p999Ms: median(runs.map((r) => r.p999Ms)),
    maxMs: median(runs.map((r) => r.maxMs)),
  };
}
