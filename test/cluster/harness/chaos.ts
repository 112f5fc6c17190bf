/**
 * Chaos runs against a real raftlock cluster (DESIGN.md §3): node processes (bench/lib/cluster.ts)
 * whose peer links each run through a FaultProxy, a seeded schedule of faults, and a concurrent lock
 * workload whose every operation is recorded on this process's monotonic clock.
 *
 * Faults, one at a time or overlapping, each healed after a while: kill -9 and restart, SIGTERM and
 * restart, SIGSTOP longer than a lease, isolation of a node (black hole or reset), a majority/minority
 * split, one-way cuts, slow links. A majority stays healthy except, rarely (majorityLossChance), for a
 * few seconds. Healing a black hole or a cut drops the proxied connections: the proxy swallowed bytes
 * in the middle of a TCP stream, which a real network never does, and the peer wire has no checksum.
 *
 * Workload: clients, each connected to a random node (another one after an error), take, extend,
 * release and read KLOCKs on a few hot resources in both durabilities with short leases. Every KLOCK
 * uses a fresh owner, so a granted KLOCK is always a new grant (a deliberate re-lock by the holder is
 * marked as one). After a grant the client writes its token to a FencedStore. A replied error, a
 * timeout or a dropped connection leaves the operation indeterminate (it may or may not have run).
 * One more client writes durable keys: SET k v NX and KLOCK k v 1h, each on a new key.
 *
 * The lease clock: leases run on each partition's log time, which stands still while a partition
 * has no leader, so a lease that spans an outage lasts longer than its ttl on this process's clock.
 * A sampler per partition reads a lock with a 24-day lease (KGETLOCK: remaining = expiry - log time
 * of the read) every 100 ms, which bounds the partition's log time at every instant of the run:
 * log time never decreases and never runs faster than real time. The linearizability check maps
 * every operation's [call, ret] into that log time (widened by the samples' staleness) before it
 * runs the lease-mutex model; a sample that breaks those two rules is itself a violation (§3.4).
 *
 * At the end the cluster is healed, every node is killed with -9 and restarted, and the checkers run:
 * - mutual exclusion and fencing order on definite-hold windows (holds.ts), per durability;
 * - no token shown to two owners of a resource; a write refused by the fenced store while its
 *   writer still certainly held the lock is a violation (refusals after that are fencing at work);
 * - linearizability per resource and durability (test/sim/lin) in log time, both durabilities
 *   (the model lets a leader change lose an EPHEMERAL lock, never grant it twice);
 * - the lease clock bounds themselves (§3.4: leases never expire early);
 * - after the restart: PERSISTENT tokens never go back (a held lock shows at least the highest
 *   acknowledged token, a new grant gets a higher one), EPHEMERAL tokens too, every acknowledged
 *   durable key is there, the clock probe too;
 * - no node exits on its own.
 *
 * The seed fixes every choice (the fault schedule, the workload's mix, names and leases); the timing
 * of real processes does not replay, so a seed reproduces a run's shape, not its interleaving.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessCluster, type Address } from '../../../bench/lib/cluster.js';
import { partitionOfKey } from '../../../src/cluster/slots.js';
import { mulberry32 } from '../../helpers/random.js';
import { parseReply, type Reply } from '../../helpers/resp-reply.js';
import { checkHistory, type CheckResult, type Durability, type LockInput, type LockOp, type LockOutput } from '../../sim/lin/index.js';
import { FaultProxy, type Direction } from './proxy.js';
import { FencedStore, checkHolds, type HoldOp } from './holds.js';

export type FaultKind = 'kill' | 'stop' | 'pause' | 'isolate' | 'split' | 'oneway' | 'slow';
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'stop', 'pause', 'isolate', 'split', 'oneway', 'slow'];

export interface ChaosOptions {
  seed: number;
  nodes: number;
  /** Raft groups (default: nodes). */
  partitions?: number;
  /** How long faults are injected (the workload runs settleMs longer, then the final restart). */
  durationMs: number;
  /** Lock clients (default 16). */
  clients?: number;
  /** Hot resources, each used in both durabilities (default: max(3, partitions), so every partition has one). */
  resources?: number;
  /** Lease length range for the workload's KLOCK/KEXTEND (default [200, 2000]). */
  ttlMs?: [number, number];
  /** Relative weight of each fault kind; 0 turns it off (default DEFAULT_FAULT_WEIGHTS). */
  faults?: Partial<Record<FaultKind, number>>;
  /** Pause between two fault starts (default [500, 3000]). */
  faultGapMs?: [number, number];
  /** Faults active at once (default 2). */
  faultsConcurrentMax?: number;
  /** Chance that a fault which would leave no healthy majority is injected anyway, for at most 2.5 s (default 0.05). */
  majorityLossChance?: number;
  /** Client-side timeout of one command (default 4000). */
  opTimeoutMs?: number;
  /** The workload keeps running this long after the last fault healed (default 3000). */
  settleMs?: number;
  /** More flags for every node (default: snapshots every 1000 entries, so that snapshots happen). */
  nodeArgs?: string[];
  /** Model steps per resource for the linearizability search (default 2,000,000). */
  linStepsMax?: number;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Aborting stops the run early and cleans up (processes, proxies, data); runChaos then rejects. */
  signal?: AbortSignal;
}

export const DEFAULT_FAULT_WEIGHTS: Record<FaultKind, number> = { kill: 3, stop: 1, pause: 2, isolate: 2, split: 2, oneway: 2, slow: 1 };

export type OpKind = 'lock' | 'extend' | 'unlock' | 'get' | 'set' | 'durable-lock';

export interface OpCounts {
  ok: number;
  /** A definite "no": nil from lock/extend, 0 from unlock (get has none). */
  refused: number;
  indeterminate: number;
}

export interface FaultEvent {
  kind: FaultKind;
  targets: string[];
  detail: string;
  /** Harness ms since the run started. */
  start: number;
  end: number | undefined;
  /** It left no healthy majority for a while. */
  majorityLoss: boolean;
}

export interface Violation {
  check: 'mutual-exclusion' | 'token-reuse' | 'fenced-store' | 'linearizability' | 'lease-clock' | 'durability'
    | 'protocol' | 'crash';
  message: string;
  /** The partition (Raft group) it concerns, when it concerns one. */
  partition?: number;
  /** The relevant part of the history (times are harness ms since the start unless it says otherwise). */
  excerpt?: string;
}

export interface LinSummary {
  keys: number;
  ok: number;
  /** Of those, how many only when the server's "not carried out" error replies are taken at their word. */
  okTrustingErrors: number;
  unknown: string[];
  failed: number;
  ops: number;
}

export interface PartitionGap {
  partition: number;
  /** Longest time without a definite answer for a key of this partition during the workload. */
  gapMs: number;
  from: number;
  to: number;
  faults: string;
}

export interface ChaosReport {
  seed: number;
  nodes: number;
  partitions: number;
  clients: number;
  resources: number;
  durationMs: number;
  wallMs: number;
  ops: Record<OpKind, OpCounts>;
  /** Indeterminate outcomes by cause. */
  errors: Record<string, number>;
  faults: Record<FaultKind, number>;
  faultLog: FaultEvent[];
  grants: { total: number; persistent: number; ephemeral: number; afterFirstFault: number; afterLastHeal: number };
  fencedStore: { accepted: number; rejected: number };
  linearizability: Record<Durability, LinSummary>;
  clockSamples: number;
  /** How long the checkers took (ms). */
  checkMs: number;
  /** Longest EPHEMERAL lock-delay a server announced (ms). */
  lockDelayMaxMs: number;
  unavailability: PartitionGap[];
  final: { settleAfterHealMs: number | null; settleAfterRestartMs: number | null; durableAcked: number; durableChecked: number };
  violations: Violation[];
  /** Odd but not unsafe: slow recovery, unexpected error replies, inconclusive checks. */
  notes: string[];
  /** The raw material, for a closer look at a violation: every lock op, and each partition's clock samples. */
  history: ChaosOp[];
  clocks: { call: number; ret: number; logMs: number }[][];
}

interface Resolved extends Required<Omit<ChaosOptions, 'log' | 'signal' | 'faults'>> {
  partitions: number;
  faults: Record<FaultKind, number>;
  log: (line: string) => void;
  signal: AbortSignal | undefined;
}

function resolve(options: ChaosOptions): Resolved {
  return {
    seed: options.seed,
    nodes: options.nodes,
    partitions: options.partitions ?? options.nodes,
    durationMs: options.durationMs,
    clients: options.clients ?? 16,
    resources: options.resources ?? Math.max(3, options.partitions ?? options.nodes),
    ttlMs: options.ttlMs ?? [200, 2000],
    faults: { ...DEFAULT_FAULT_WEIGHTS, ...options.faults },
    faultGapMs: options.faultGapMs ?? [500, 3000],
    faultsConcurrentMax: options.faultsConcurrentMax ?? 2,
    majorityLossChance: options.majorityLossChance ?? 0.05,
    opTimeoutMs: options.opTimeoutMs ?? 4000,
    settleMs: options.settleMs ?? 3000,
    nodeArgs: options.nodeArgs ?? ['--snapshot-min-entries', '1000'],
    linStepsMax: options.linStepsMax ?? 2_000_000,
    log: options.log ?? (() => undefined),
    signal: options.signal,
  };
}

/** Runs one chaos run: starts the cluster, injects faults under load, restarts it, checks. Always cleans up. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const o = resolve(options);
  if (o.nodes < 3) throw new RangeError('a chaos run needs at least 3 nodes');
  const dataRoot = mkdtempSync(join(tmpdir(), 'raftlock-chaos-'));
  liveDataRoots.add(dataRoot);
  const network = new Network();
  let cluster: ProcessCluster | undefined;
  try {
    cluster = await ProcessCluster.start({
      nodes: o.nodes, partitions: o.partitions, args: o.nodeArgs, dataRoot, logLines: 300,
      link: (from, to, target) => network.link(from, to, target),
    });
    return await new ChaosRun(o, cluster, network).execute();
  } finally {
    await cluster?.close();
    await network.close();
    rmSync(dataRoot, { recursive: true, force: true });
    liveDataRoots.delete(dataRoot);
  }
}

/** Data of runs still going: removed if this process exits without finishing them (a test timeout). */
const liveDataRoots = new Set<string>();
process.on('exit', () => {
  for (const dir of liveDataRoots) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// Small pieces: randomness, sleeping, a one-request-at-a-time RESP connection.

class Rng {
  private readonly next: () => number;

  constructor(seed: number, stream: string) {
    // FNV-1a over the stream name, mixed with the seed: independent streams from one seed.
    let h = 0x811c9dc5 ^ (seed >>> 0);
    for (let i = 0; i < stream.length; i++) h = Math.imul(h ^ stream.charCodeAt(i), 0x01000193);
    this.next = mulberry32(h >>> 0);
  }

  float(): number {
    return this.next();
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

class TimeoutError extends Error {
  constructor() {
    super('timeout');
  }
}

/** A RESP2 connection that carries one request at a time and fails as a whole on timeout. */
class RespConn {
  private buffer: Buffer = Buffer.alloc(0);
  private pending: { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: net.Socket, readonly node: string) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static connect(node: string, port: number, timeoutMs: number): Promise<RespConn> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      const onError = (error: Error): void => {
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(() => onError(new Error('connect timeout')), timeoutMs);
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new RespConn(socket, node));
      });
    });
  }

  call(args: readonly (string | number)[], timeoutMs: number): Promise<Reply> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.pending !== null) return Promise.reject(new Error('a request is already in flight'));
    let out = `*${args.length}\r\n`;
    for (const arg of args) {
      const s = String(arg);
      out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
    }
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new TimeoutError()), timeoutMs);
      this.pending = { resolve, reject, timer };
      this.socket.write(out);
    });
  }

  close(): void {
    this.fail(new Error('closed by the client'));
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const pending = this.pending;
    if (pending === null) return;
    let parsed: [Reply, number] | undefined;
    try {
      parsed = parseReply(this.buffer);
    } catch (error) {
      this.fail(error as Error);
      return;
    }
    if (parsed === undefined) return;
    this.buffer = this.buffer.subarray(parsed[1]);
    this.pending = null;
    clearTimeout(pending.timer);
    pending.resolve(parsed[0]);
  }

  private fail(error: Error): void {
    if (this.failure === null) this.failure = error;
    this.socket.destroy();
    const pending = this.pending;
    if (pending === null) return;
    this.pending = null;
    clearTimeout(pending.timer);
    pending.reject(error);
  }
}

// ---------------------------------------------------------------------------------------------------
// The network: one FaultProxy per node pair, its state computed from the faults active now.

/** One fault's demand on one link (a = the dialing node, the smaller id). */
interface NetRule {
  a: string;
  b: string;
  mode?: 'blackhole' | 'reset';
  /** Swallow the bytes this node sends on the link. */
  cutFrom?: string;
  delayMs?: number;
}

interface LinkState {
  mode: 'pass' | 'blackhole' | 'reset';
  cuts: Set<Direction>;
  delayMs: number;
}

class Network {
  private readonly proxies = new Map<string, FaultProxy>();
  private readonly states = new Map<string, LinkState>();

  /** The ProcessCluster link hook: the dialer (smaller id) reaches its peer through a proxy. */
  async link(from: string, to: string, target: Address): Promise<Address> {
    if (!(from < to)) return target;
    const proxy = await FaultProxy.start(target);
    this.proxies.set(`${from}|${to}`, proxy);
    return { host: '127.0.0.1', port: proxy.port };
  }

  /** The pairs [dialer, acceptor]. */
  pairs(): [string, string][] {
    return [...this.proxies.keys()].map((key) => key.split('|') as [string, string]);
  }

  apply(rules: readonly NetRule[]): void {
    for (const [key, proxy] of this.proxies) {
      const [a] = key.split('|') as [string, string];
      const mine = rules.filter((r) => `${r.a}|${r.b}` === key);
      const next: LinkState = {
        mode: mine.some((r) => r.mode === 'reset') ? 'reset' : mine.some((r) => r.mode === 'blackhole') ? 'blackhole' : 'pass',
        cuts: new Set(mine.filter((r) => r.cutFrom !== undefined).map((r) => (r.cutFrom === a ? 'forward' : 'backward'))),
        delayMs: Math.max(0, ...mine.map((r) => r.delayMs ?? 0)),
      };
      const prev = this.states.get(key) ?? { mode: 'pass', cuts: new Set(), delayMs: 0 };
      const lifted = (prev.mode === 'blackhole' && next.mode === 'pass') || [...prev.cuts].some((d) => !next.cuts.has(d));
      // Swallowed bytes left a gap in the stream: start over on new connections.
      if (lifted) proxy.setMode('reset');
      proxy.setMode(next.mode);
      for (const d of ['forward', 'backward'] as const) proxy.setCut(d, next.cuts.has(d));
      proxy.setDelay(next.delayMs);
      this.states.set(key, next);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
  }
}

// ---------------------------------------------------------------------------------------------------
// The lease clock of one partition, bounded from samples of its log time.

/**
 * Samples (call, ret, value): the partition's log time was `value` at some instant in [call, ret]
 * (minus at most READ_STALENESS_MS: reads are served at the last applied log time). The sampler is
 * sequential, so the samples are ordered and disjoint. Log time never decreases, and never gains on
 * real time (a new leader continues from the last log time it holds), which gives for any instant t:
 *   lower(t) = max(value_i for samples done by t, value_j - (ret_j - t) for samples begun after t)
 *   upper(t) = min(value_j for samples begun after t, value_i + (t - call_i) for samples done by t)
 * EPHEMERAL operations run at the leader's log clock, which may be ahead of what the log holds when
 * a leader is deposed; the next leader continues from the log, so for them only the second term of
 * upper() holds.
 */
export class LeaseClock {
  private readonly calls: number[] = [];
  private readonly rets: number[] = [];
  private readonly values: number[] = [];
  private prefixMaxValue: number[] = [];
  private prefixMinValueMinusCall: number[] = [];
  private suffixMaxValueMinusRet: number[] = [];
  private suffixMinValue: number[] = [];

  add(call: number, ret: number, value: number): void {
    this.calls.push(call);
    this.rets.push(ret);
    this.values.push(value);
  }

  get size(): number {
    return this.values.length;
  }

  /** When each sample's reply arrived. */
  get replyTimes(): readonly number[] {
    return this.rets;
  }

  samples(): { call: number; ret: number; logMs: number }[] {
    return this.values.map((logMs, i) => ({ call: this.calls[i]!, ret: this.rets[i]!, logMs }));
  }

  /** Builds the prefix and suffix extremes; call once every sample is in. */
  seal(): void {
    const n = this.size;
    this.prefixMaxValue = new Array<number>(n);
    this.prefixMinValueMinusCall = new Array<number>(n);
    this.suffixMaxValueMinusRet = new Array<number>(n);
    this.suffixMinValue = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      this.prefixMaxValue[i] = Math.max(i > 0 ? this.prefixMaxValue[i - 1]! : -Infinity, this.values[i]!);
      this.prefixMinValueMinusCall[i] = Math.min(i > 0 ? this.prefixMinValueMinusCall[i - 1]! : Infinity, this.values[i]! - this.calls[i]!);
    }
    for (let i = n - 1; i >= 0; i--) {
      this.suffixMaxValueMinusRet[i] = Math.max(i < n - 1 ? this.suffixMaxValueMinusRet[i + 1]! : -Infinity, this.values[i]! - this.rets[i]!);
      this.suffixMinValue[i] = Math.min(i < n - 1 ? this.suffixMinValue[i + 1]! : Infinity, this.values[i]!);
    }
  }

  lower(t: number): number {
    const done = countAtMost(this.rets, t);
    const begun = firstAtLeast(this.calls, t);
    let lo = done > 0 ? this.prefixMaxValue[done - 1]! : -Infinity;
    if (begun < this.size) lo = Math.max(lo, t + this.suffixMaxValueMinusRet[begun]!);
    return lo;
  }

  upper(t: number, durability: Durability): number {
    const done = countAtMost(this.rets, t);
    let hi = done > 0 ? t + this.prefixMinValueMinusCall[done - 1]! : Infinity;
    const begun = firstAtLeast(this.calls, t);
    if (durability === 'persistent' && begun < this.size) hi = Math.min(hi, this.suffixMinValue[begun]!);
    return hi;
  }

  /**
   * Samples that break the clock's rules: log time went back, or ran faster than real time. After
   * each finding the sample becomes the new reference, so one jump is reported once.
   */
  problems(slackMs: number): string[] {
    const out: string[] = [];
    let maxValue = -Infinity;
    let minValueMinusCall = Infinity;
    for (let j = 0; j < this.size && out.length < 10; j++) {
      const value = this.values[j]!;
      const at = `read at ${ms(this.calls[j]!)}..${ms(this.rets[j]!)} ms`;
      if (value < maxValue) {
        out.push(`log time went back from ${maxValue} to ${value} (${at})`);
        maxValue = -Infinity;
      }
      if (value - this.rets[j]! > minValueMinusCall + slackMs) {
        out.push(`log time ran ahead of real time by ${Math.round(value - this.rets[j]! - minValueMinusCall)} ms (${at})`);
        minValueMinusCall = Infinity;
      }
      maxValue = Math.max(maxValue, value);
      minValueMinusCall = Math.min(minValueMinusCall, value - this.calls[j]!);
    }
    return out;
  }
}

/** How many of the sorted values are <= t. */
function countAtMost(sorted: readonly number[], t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the first sorted value >= t. */
function firstAtLeast(sorted: readonly number[], t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const ms = (t: number): string => t.toFixed(1);

// ---------------------------------------------------------------------------------------------------
// The recorded history.

export interface ChaosOp {
  readonly id: number;
  readonly client: string;
  /** The node the client sent it to. */
  readonly node: string;
  readonly input: LockInput;
  /** Harness ms since the run started. */
  readonly call: number;
  readonly ret: number | undefined;
  readonly output: LockOutput | undefined;
  readonly status: 'ok' | 'refused' | 'indeterminate';
  /** Why it is indeterminate: the error reply or the client-side failure. */
  readonly error?: string;
  /** A KLOCK by an owner that was just granted the lock (Kahuna's rule: same token, expiry unchanged). */
  readonly relock?: boolean;
}

interface FencedWrite {
  durability: Durability;
  resource: string;
  owner: string;
  token: bigint;
  at: number;
  /** Until when (harness ms) the writer certainly held the lock when it wrote. */
  heldUntil: number;
  accepted: boolean;
}

interface DurableWrite {
  key: string;
  value: string;
  kind: 'set' | 'durable-lock';
  status: 'ok' | 'refused' | 'indeterminate';
}

/** One exchange of a command and its reply (or the lack of one). */
interface Exchange {
  node: string;
  call: number;
  ret: number | undefined;
  reply: Reply | undefined;
  failure: string | undefined;
}

interface Client {
  readonly name: string;
  readonly rng: Rng;
  conn: RespConn | null;
  seq: number;
  /** Its last command got no definite answer: it backs off before the next. */
  troubled: boolean;
}

const DURABILITY_ARG: Record<Durability, string> = { persistent: 'PERSISTENT', ephemeral: 'EPHEMERAL' };
/** The clock probe's lease: the largest ttl there is (24.8 days). */
const PROBE_TTL_MS = 2 ** 31 - 1;
const PROBE_OWNER = 'chaos-clock';
const SAMPLE_EVERY_MS = 100;
/**
 * Reads are served at the last applied log time, at most READ_STALENESS_MS (10) behind the log clock,
 * so a sample may show up to that much less than the log time at its instant; plus rounding.
 */
const CLOCK_SLACK_MS = 12;
/** The log-time windows already include CLOCK_SLACK_MS; this only covers whole-ms rounding. */
const LIN_TIME_SLACK_MS = 2;
const DURABLE_TTL_MS = 3_600_000;
const EXCERPT_LINES_MAX = 40;

function lockArgs(input: LockInput): (string | number)[] {
  const d = DURABILITY_ARG[input.durability];
  switch (input.kind) {
    case 'lock': return ['KLOCK', input.resource, input.owner, input.ttlMs, d];
    case 'extend': return ['KEXTEND', input.resource, input.owner, input.ttlMs, d];
    case 'unlock': return ['KUNLOCK', input.resource, input.owner, d];
    case 'get': return ['KGETLOCK', input.resource, d];
  }
}

const isInt = (r: Reply | undefined): r is number | bigint => typeof r === 'number' || typeof r === 'bigint';

/** The command's output, or undefined if the reply does not have its command's shape. */
function lockOutput(input: LockInput, reply: Reply): LockOutput | undefined {
  switch (input.kind) {
    case 'lock':
    case 'extend':
      return reply === null ? null : isInt(reply) ? BigInt(reply) : undefined;
    case 'unlock':
      return reply === 1 ? true : reply === 0 ? false : undefined;
    case 'get':
      if (reply === null) return null;
      if (Array.isArray(reply) && reply.length === 3 && typeof reply[0] === 'string' && isInt(reply[1]) && typeof reply[2] === 'number') {
        return { owner: reply[0], token: BigInt(reply[1]), remainingMs: reply[2] };
      }
      return undefined;
  }
}

/** Causes whose reply says the command was not carried out (DESIGN.md: the client learns "maybe" otherwise). */
const NO_EFFECT_CAUSES = new Set(['TRYAGAIN lock-delay', 'TRYAGAIN no leader', 'TRYAGAIN leader unreachable', 'TRYAGAIN busy']);

function errorCause(text: string): string {
  if (text.startsWith('TRYAGAIN EPHEMERAL locks are unavailable')) return 'TRYAGAIN lock-delay';
  if (text.startsWith('TRYAGAIN no leader')) return 'TRYAGAIN no leader';
  if (text.includes('may have been applied')) return 'TRYAGAIN may have been applied';
  if (text.startsWith('TRYAGAIN the partition leader is unreachable right now')) return 'TRYAGAIN leader unreachable';
  if (text.startsWith('TRYAGAIN server busy')) return 'TRYAGAIN busy';
  if (text.startsWith('TRYAGAIN')) return 'TRYAGAIN other';
  if (text.startsWith('CLUSTERDOWN')) return 'CLUSTERDOWN';
  return `error: ${text.slice(0, 80)}`;
}

function formatChaosOp(op: ChaosOp): string {
  const input = op.input;
  const owner = input.kind === 'get' ? '' : ` owner=${input.owner}`;
  const ttl = input.kind === 'lock' || input.kind === 'extend' ? ` ttl=${input.ttlMs}` : '';
  const out = op.status === 'indeterminate' ? `? (${op.error})` : formatOutput(op.output);
  const ret = op.ret === undefined ? 'no reply' : `ret ${ms(op.ret)}`;
  return `#${op.id} ${op.client}@${op.node} ${input.kind}${op.relock === true ? '(re)' : ''} ${input.resource}${owner}${ttl} ${input.durability} -> ${out} [call ${ms(op.call)}, ${ret}]`;
}

function formatOutput(output: LockOutput | undefined): string {
  if (output === undefined) return '?';
  if (output === null) return 'nil';
  if (typeof output === 'bigint' || typeof output === 'boolean') return String(output);
  return `[${output.owner}, ${output.token}, ${output.remainingMs}ms]`;
}

// ---------------------------------------------------------------------------------------------------
// One run.

interface FaultPlan {
  kind: FaultKind;
  targets: string[];
  /** Nodes that may lose contact with the majority while it lasts. */
  impaired: string[];
  durationMs: number;
  detail: string;
  rules: NetRule[];
}

class ChaosRun {
  private readonly t0 = performance.now();
  private readonly ops: ChaosOp[] = [];
  private readonly writes: FencedWrite[] = [];
  private readonly durable: DurableWrite[] = [];
  private readonly store = new FencedStore();
  private readonly violations: Violation[] = [];
  private readonly notes: string[] = [];
  private readonly clocks: LeaseClock[];
  private readonly probes: string[];
  private readonly hot: string[];
  private readonly faultLog: FaultEvent[] = [];
  private readonly activeFaults = new Set<FaultPlan>();
  private readonly rules: NetRule[] = [];
  /** Nodes under a process fault (killed, stopped, paused) or the final restart: their exits are ours. */
  private readonly procBusy = new Set<string>();
  private workloadStopping = false;
  private samplersStopping = false;
  /** Set once execute() is done or failed: every loop and fault task winds down. */
  private halted = false;
  private lockDelayMaxMs = 0;
  private nextOpId = 0;

  constructor(private readonly o: Resolved, private readonly cluster: ProcessCluster, private readonly network: Network) {
    this.clocks = Array.from({ length: o.partitions }, () => new LeaseClock());
    this.probes = Array.from({ length: o.partitions }, (_, p) => keyIn(p, o.partitions, `chaos:clock:${p}`));
    // Spread the hot resources over the partitions.
    this.hot = Array.from({ length: o.resources }, (_, i) => keyIn(i % o.partitions, o.partitions, `hot:${i}`));
  }

  private now(): number {
    return performance.now() - this.t0;
  }

  private aborted(): boolean {
    return this.halted || this.o.signal?.aborted === true;
  }

  private checkAbort(): void {
    if (this.aborted()) throw new Error('chaos run aborted');
  }

  async execute(): Promise<ChaosReport> {
    try {
      return await this.phases();
    } finally {
      this.halted = true;
      this.workloadStopping = true;
      this.samplersStopping = true;
    }
  }

  private async phases(): Promise<ChaosReport> {
    const o = this.o;
    for (const node of this.cluster.nodes) this.watch(node.id);
    await this.settle(30_000, 'start');
    this.checkAbort();
    o.log(`cluster of ${o.nodes} up; taking the clock probes`);
    const samplers = this.probes.map((probe, p) => this.sampler(p, probe));
    await Promise.race([this.waitForSamples(), Promise.all(samplers)]);
    this.checkAbort();
    const workload = [
      ...Array.from({ length: o.clients }, (_, i) => this.lockClient(this.client(`c${i + 1}`))),
      this.durableClient(this.client('d1')),
    ];
    const workloadStart = this.now();
    o.log(`workload: ${o.clients} clients on ${this.hot.length} hot resources x 2 durabilities; faults for ${o.durationMs / 1000} s`);
    await this.injectFaults(workloadStart + o.durationMs);
    const lastHealAt = this.now();
    o.log(`faults healed at ${(lastHealAt / 1000).toFixed(1)} s; settling for ${o.settleMs / 1000} s`);
    await this.sleepUnlessAborted(o.settleMs);
    this.workloadStopping = true;
    await Promise.all(workload);
    const workloadEnd = this.now();
    this.checkAbort();
    const final = await this.finalPhase();
    this.samplersStopping = true;
    await Promise.all(samplers);
    this.checkAbort();
    o.log('checking');
    return this.report({ workloadStart, workloadEnd, lastHealAt, final });
  }

  private client(name: string): Client {
    return { name, rng: new Rng(this.o.seed, name), conn: null, seq: 0, troubled: false };
  }

  private async sleepUnlessAborted(msTotal: number): Promise<void> {
    const until = this.now() + msTotal;
    while (this.now() < until && !this.aborted()) await sleep(Math.min(200, until - this.now()));
  }

  // ---- processes -------------------------------------------------------------------------------

  /** Notices a node that exits when nobody asked it to: a crash is a finding; it is restarted. */
  private watch(id: string): void {
    const child = this.cluster.node(id).child;
    child?.once('exit', (code, signal) => {
      if (this.procBusy.has(id) || this.aborted()) return;
      const log = this.cluster.node(id).log.slice(-30).join('\n');
      this.violations.push({ check: 'crash', message: `${id} exited on its own (code ${code}, signal ${signal}) at ${ms(this.now())}`, excerpt: log });
      this.procBusy.add(id);
      void this.restart(id).finally(() => this.procBusy.delete(id));
    });
  }

  /** Starts a node again (three tries) and watches it. */
  private async restart(id: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.cluster.startNode(id);
        this.watch(id);
        return;
      } catch (error) {
        if (attempt >= 3 || this.aborted()) {
          this.violations.push({ check: 'crash', message: `${id} did not restart: ${(error as Error).message.split('\n')[0]}`, excerpt: this.cluster.node(id).log.slice(-30).join('\n') });
          return;
        }
        await sleep(500);
      }
    }
  }

  /** Waits until every running node names the same running leader for every partition; ms taken, or null. */
  private async settle(timeoutMs: number, what: string): Promise<number | null> {
    const started = this.now();
    let last = '';
    while (this.now() - started < timeoutMs && !this.aborted()) {
      const running = this.cluster.running();
      const views = await Promise.all(running.map((id) => raftLeaders(this.cluster.node(id).port).catch(() => [] as string[])));
      const first = views[0] ?? [];
      last = JSON.stringify(views);
      const agreed = first.length === this.o.partitions && first.every((l) => running.includes(l))
        && views.every((v) => JSON.stringify(v) === JSON.stringify(first));
      if (agreed) return this.now() - started;
      await sleep(100);
    }
    this.notes.push(`${what}: no agreed leaders within ${timeoutMs / 1000} s (last views ${last})`);
    return null;
  }

  // ---- client plumbing -------------------------------------------------------------------------

  /** Sends one command on the client's connection (connecting to a random node first); null when stopping. */
  private async exchange(c: Client, args: readonly (string | number)[], stopping: () => boolean): Promise<Exchange | null> {
    while (c.conn === null) {
      if (stopping() || this.aborted()) return null;
      const node = c.rng.pick(this.cluster.nodes);
      try {
        c.conn = await RespConn.connect(node.id, node.port, 1000);
      } catch {
        await sleep(c.rng.int(50, 200));
      }
    }
    const conn = c.conn;
    const call = this.now();
    try {
      const reply = await conn.call(args, this.o.opTimeoutMs);
      return { node: conn.node, call, ret: this.now(), reply, failure: undefined };
    } catch (error) {
      conn.close();
      c.conn = null;
      return { node: conn.node, call, ret: undefined, reply: undefined, failure: error instanceof TimeoutError ? 'timeout' : 'connection lost' };
    }
  }

  /** Runs and records one lock command; null when stopping before it was sent. */
  private async lockOp(c: Client, input: LockInput, extra: { relock?: boolean; stopping?: () => boolean } = {}): Promise<ChaosOp | null> {
    const x = await this.exchange(c, lockArgs(input), extra.stopping ?? (() => this.workloadStopping));
    if (x === null) return null;
    const base = { id: this.nextOpId++, client: c.name, node: x.node, input, call: x.call, ...(extra.relock === true ? { relock: true } : {}) };
    let op: ChaosOp;
    const reply = x.reply;
    const err = reply !== null && typeof reply === 'object' && 'err' in reply ? (reply.err as string) : undefined;
    const output = x.failure === undefined && err === undefined ? lockOutput(input, reply!) : undefined;
    if (output !== undefined) {
      const refused = output === null ? input.kind !== 'get' : output === false;
      op = { ...base, ret: x.ret, output, status: refused ? 'refused' : 'ok' };
    } else {
      const error = x.failure ?? (err !== undefined ? errorCause(err) : 'malformed reply');
      if (err === undefined && x.failure === undefined) {
        this.violations.push({ check: 'protocol', message: `${lockArgs(input).join(' ')} got ${JSON.stringify(reply, bigintJson)}` });
      }
      if (err !== undefined) this.noteError(c, err);
      op = { ...base, ret: undefined, output: undefined, status: 'indeterminate', error };
    }
    this.ops.push(op);
    c.troubled = op.status === 'indeterminate';
    return op;
  }

  private noteError(c: Client, text: string): void {
    const delay = /unavailable for (\d+) ms/.exec(text);
    if (delay !== null) this.lockDelayMaxMs = Math.max(this.lockDelayMaxMs, Number(delay[1]));
    // Sometimes try another node after a refusal to serve.
    if (c.conn !== null && c.rng.chance(0.3)) {
      c.conn.close();
      c.conn = null;
    }
  }

  // ---- workload --------------------------------------------------------------------------------

  private ttl(c: Client): number {
    return c.rng.int(this.o.ttlMs[0], this.o.ttlMs[1]);
  }

  private async lockClient(c: Client): Promise<void> {
    while (!this.workloadStopping && !this.aborted()) {
      const resource = c.rng.pick(this.hot);
      const durability: Durability = c.rng.chance(0.5) ? 'persistent' : 'ephemeral';
      const roll = c.rng.float();
      if (roll < 0.65) {
        await this.session(c, resource, durability);
      } else if (roll < 0.85) {
        await this.lockOp(c, { kind: 'get', resource, durability });
      } else {
        // A stray owner, who never holds anything: unlock answers 0 and extend nil.
        const owner = `${c.name}.stray`;
        await this.lockOp(c, c.rng.chance(0.5) ? { kind: 'unlock', resource, durability, owner } : { kind: 'extend', resource, durability, owner, ttlMs: this.ttl(c) });
      }
      await sleep(c.troubled ? c.rng.int(100, 400) : c.rng.int(0, 30));
    }
    c.conn?.close();
  }

  /** Lock with a fresh owner; on a grant, write, maybe re-lock, extend and write again, then mostly unlock. */
  private async session(c: Client, resource: string, durability: Durability): Promise<void> {
    const owner = `${c.name}.${c.seq++}`;
    let ttlMs = this.ttl(c);
    const lock = await this.lockOp(c, { kind: 'lock', resource, durability, owner, ttlMs });
    if (lock === null) return;
    if (typeof lock.output !== 'bigint') {
      await sleep(lock.status === 'refused' ? c.rng.int(10, 100) : c.rng.int(100, 400));
      return;
    }
    let token = lock.output;
    let heldUntil = lock.call + ttlMs;
    this.fencedWrite({ durability, resource, owner, token, heldUntil });
    if (c.rng.chance(0.1)) {
      const relockTtlMs = this.ttl(c);
      const relock = await this.lockOp(c, { kind: 'lock', resource, durability, owner, ttlMs: relockTtlMs }, { relock: true });
      // Another token means the lease had run out and this is a new grant (with its own lease):
      // from now on the owner writes with it. The same token leaves the lease as it was.
      if (relock !== null && typeof relock.output === 'bigint' && relock.output !== token) {
        token = relock.output;
        heldUntil = relock.call + relockTtlMs;
      }
    }
    const extensions = c.rng.int(0, 2);
    for (let i = 0; i < extensions && !this.workloadStopping; i++) {
      // Up to past the lease: the extend then races the expiry, and the write may be stale.
      await sleep(ttlMs * (0.2 + c.rng.float()));
      this.fencedWrite({ durability, resource, owner, token, heldUntil });
      ttlMs = this.ttl(c);
      const ext = await this.lockOp(c, { kind: 'extend', resource, durability, owner, ttlMs });
      if (ext === null || typeof ext.output !== 'bigint') break;
      token = ext.output;
      heldUntil = ext.call + ttlMs;
      this.fencedWrite({ durability, resource, owner, token, heldUntil });
    }
    await sleep(c.rng.int(0, 50));
    if (c.rng.chance(0.85)) await this.lockOp(c, { kind: 'unlock', resource, durability, owner });
  }

  private fencedWrite(w: { durability: Durability; resource: string; owner: string; token: bigint; heldUntil: number }): void {
    const at = this.now();
    const accepted = this.store.write(`${w.durability} ${w.resource}`, w.token);
    this.writes.push({ durability: w.durability, resource: w.resource, owner: w.owner, token: w.token, at, heldUntil: w.heldUntil, accepted });
  }

  /** New keys, each written once: SET k v NX (no expiry) or KLOCK k v 1h. */
  private async durableClient(c: Client): Promise<void> {
    while (!this.workloadStopping && !this.aborted()) {
      const key = `chaos:durable:${c.seq++}`;
      const value = `v${c.seq}`;
      const kind = c.rng.chance(0.5) ? 'set' : 'durable-lock';
      const args = kind === 'set' ? ['SET', key, value, 'NX'] : ['KLOCK', key, value, DURABLE_TTL_MS];
      const x = await this.exchange(c, args, () => this.workloadStopping);
      if (x === null) break;
      const ok = kind === 'set' ? isOk(x.reply) : x.reply === 0;
      const refused = x.reply === null;
      this.durable.push({ key, value, kind, status: ok ? 'ok' : refused ? 'refused' : 'indeterminate' });
      if (refused) this.violations.push({ check: 'durability', message: `${args.join(' ')} on a new key was refused (nil)` });
      else if (!ok && x.failure === undefined && !isErr(x.reply)) {
        this.violations.push({ check: 'protocol', message: `${args.join(' ')} got ${JSON.stringify(x.reply, bigintJson)}` });
      }
      await sleep(c.rng.int(50, 200));
    }
    c.conn?.close();
  }

  // ---- the lease clock -------------------------------------------------------------------------

  /** Takes partition p's probe lock, then reads it every SAMPLE_EVERY_MS until told to stop. */
  private async sampler(p: number, probe: string): Promise<void> {
    const c = this.client(`clock${p}`);
    const stopping = (): boolean => this.samplersStopping;
    while (!stopping() && !this.aborted()) {
      const x = await this.exchange(c, ['KLOCK', probe, PROBE_OWNER, PROBE_TTL_MS, 'PERSISTENT'], stopping);
      if (x === null) return;
      if (isInt(x.reply)) break;
      if (x.reply === null) throw new Error(`clock probe ${probe} is held by someone else`);
      await sleep(100);
    }
    while (!stopping() && !this.aborted()) {
      const x = await this.exchange(c, ['KGETLOCK', probe, 'PERSISTENT'], stopping);
      if (x === null) break;
      const r = x.reply;
      if (Array.isArray(r) && r[0] === PROBE_OWNER && typeof r[2] === 'number') {
        this.clocks[p]!.add(x.call, x.ret!, PROBE_TTL_MS - r[2]);
      } else if (r === null) {
        this.violations.push({ check: 'durability', message: `the clock probe ${probe} (a 24-day PERSISTENT lease) is gone at ${ms(x.ret!)}` });
        return;
      }
      await sleep(SAMPLE_EVERY_MS);
    }
    c.conn?.close();
  }

  private async waitForSamples(): Promise<void> {
    const deadline = this.now() + 30_000;
    while (this.clocks.some((clock) => clock.size === 0) && !this.aborted()) {
      if (this.now() > deadline) throw new Error(`no lease clock sample within 30 s for partitions ${this.clocks.flatMap((c, p) => (c.size === 0 ? [p] : [])).join(', ')}`);
      await sleep(50);
    }
  }

  // ---- faults ----------------------------------------------------------------------------------

  private async injectFaults(until: number): Promise<void> {
    const rng = new Rng(this.o.seed, 'faults');
    const running = new Set<Promise<void>>();
    const majority = Math.floor(this.o.nodes / 2) + 1;
    while (this.now() < until && !this.aborted()) {
      await sleep(rng.int(...this.o.faultGapMs));
      if (this.now() >= until || this.aborted() || this.activeFaults.size >= this.o.faultsConcurrentMax) continue;
      const plan = this.plan(rng, this.pickKind(rng));
      if (plan === null) continue;
      const impaired = new Set([...this.activeFaults].flatMap((f) => f.impaired).concat(plan.impaired));
      const majorityLoss = this.o.nodes - impaired.size < majority;
      if (majorityLoss) {
        if (!rng.chance(this.o.majorityLossChance)) continue;
        plan.durationMs = Math.min(plan.durationMs, 2500);
      }
      const task = this.runFault(plan, majorityLoss).finally(() => running.delete(task));
      running.add(task);
    }
    await Promise.all(running);
  }

  private pickKind(rng: Rng): FaultKind {
    const weights = FAULT_KINDS.map((k) => Math.max(0, this.o.faults[k]));
    let x = rng.float() * weights.reduce((a, b) => a + b, 0);
    for (let i = 0; i < FAULT_KINDS.length; i++) {
      x -= weights[i]!;
      if (x < 0) return FAULT_KINDS[i]!;
    }
    return 'kill';
  }

  private plan(rng: Rng, kind: FaultKind): FaultPlan | null {
    const ids = this.cluster.nodes.map((n) => n.id);
    const free = ids.filter((id) => !this.procBusy.has(id));
    const node = rng.pick(ids);
    const base = { kind, impaired: [node], targets: [node], rules: [] as NetRule[] };
    const links = (of: (a: string, b: string) => boolean): [string, string][] => this.network.pairs().filter(([a, b]) => of(a, b));
    switch (kind) {
      case 'kill':
      case 'stop':
      case 'pause': {
        if (free.length === 0) return null;
        const target = rng.pick(free);
        const durationMs = kind === 'pause' ? rng.int(2500, 5000) : rng.int(500, kind === 'kill' ? 4000 : 3000);
        return { ...base, targets: [target], impaired: [target], durationMs, detail: `${kind} ${target} for ${durationMs} ms` };
      }
      case 'isolate': {
        const mode = rng.chance(0.5) ? 'blackhole' : 'reset';
        const rules = links((a, b) => a === node || b === node).map(([a, b]) => ({ a, b, mode }) as NetRule);
        const durationMs = rng.int(1500, 6000);
        return { ...base, rules, durationMs, detail: `isolate ${node} (${mode}) for ${durationMs} ms` };
      }
      case 'split': {
        const minoritySize = rng.int(1, Math.floor((this.o.nodes - 1) / 2));
        const minority = shuffle(rng, ids).slice(0, minoritySize);
        const inMinority = (id: string): boolean => minority.includes(id);
        const mode = rng.chance(0.5) ? 'blackhole' : 'reset';
        const rules = links((a, b) => inMinority(a) !== inMinority(b)).map(([a, b]) => ({ a, b, mode }) as NetRule);
        const durationMs = rng.int(1500, 6000);
        return { ...base, targets: minority, impaired: minority, rules, durationMs, detail: `split {${minority.join(',')}} from the rest (${mode}) for ${durationMs} ms` };
      }
      case 'oneway': {
        const outgoing = rng.chance(0.5);
        const rules = links((a, b) => a === node || b === node)
          .map(([a, b]) => ({ a, b, cutFrom: outgoing ? node : a === node ? b : a }));
        const durationMs = rng.int(1500, 5000);
        return { ...base, rules, durationMs, detail: `cut every link ${outgoing ? 'from' : 'to'} ${node} one way for ${durationMs} ms` };
      }
      case 'slow': {
        const delayMs = rng.int(20, 250);
        const rules = links((a, b) => a === node || b === node).map(([a, b]) => ({ a, b, delayMs }));
        const durationMs = rng.int(2000, 6000);
        return { ...base, impaired: [], rules, durationMs, detail: `delay ${node}'s links by ${delayMs} ms for ${durationMs} ms` };
      }
    }
  }

  private async runFault(plan: FaultPlan, majorityLoss: boolean): Promise<void> {
    const event: FaultEvent = { kind: plan.kind, targets: plan.targets, detail: plan.detail, start: this.now(), end: undefined, majorityLoss };
    this.faultLog.push(event);
    this.activeFaults.add(plan);
    this.o.log(`${(event.start / 1000).toFixed(1)} s: ${plan.detail}${majorityLoss ? ' (no healthy majority meanwhile)' : ''}`);
    const node = plan.targets[0]!;
    try {
      if (plan.kind === 'kill' || plan.kind === 'stop') {
        this.procBusy.add(node);
        await (plan.kind === 'kill' ? this.cluster.kill(node) : this.cluster.stop(node));
        await this.sleepUnlessAborted(plan.durationMs);
        if (!this.aborted()) await this.restart(node);
        this.procBusy.delete(node);
      } else if (plan.kind === 'pause') {
        this.procBusy.add(node);
        this.cluster.pause(node);
        await this.sleepUnlessAborted(plan.durationMs);
        this.cluster.resume(node);
        this.procBusy.delete(node);
      } else {
        this.rules.push(...plan.rules);
        this.network.apply(this.rules);
        await this.sleepUnlessAborted(plan.durationMs);
        for (const rule of plan.rules) this.rules.splice(this.rules.indexOf(rule), 1);
        this.network.apply(this.rules);
      }
    } finally {
      this.activeFaults.delete(plan);
      event.end = this.now();
    }
  }

  // ---- the final restart -----------------------------------------------------------------------

  /** Heals, kills every node with -9, restarts them all, then reads and takes every lock once more. */
  private async finalPhase(): Promise<ChaosReport['final']> {
    const o = this.o;
    this.network.apply([]);
    for (const node of this.cluster.nodes) this.cluster.resume(node.id);
    const settleAfterHealMs = await this.settle(30_000, 'after healing');
    o.log('kill -9 of every node, then a restart of all');
    for (const node of this.cluster.nodes) this.procBusy.add(node.id);
    await Promise.all(this.cluster.nodes.map((n) => this.cluster.kill(n.id)));
    await Promise.all(this.cluster.nodes.map((n) => this.restart(n.id)));
    for (const node of this.cluster.nodes) this.procBusy.delete(node.id);
    const settleAfterRestartMs = await this.settle(30_000, 'after the full restart');
    this.checkAbort();
    await this.verifyTokens();
    const durableChecked = await this.verifyDurable();
    return { settleAfterHealMs, settleAfterRestartMs, durableAcked: this.durable.filter((d) => d.status === 'ok').length, durableChecked };
  }

  /** Retries a lock command on TRYAGAIN, timeouts and (for lock) nil until it is answered otherwise. */
  private async settleOp(c: Client, input: LockInput, deadline: number): Promise<ChaosOp | null> {
    for (;;) {
      const op = await this.lockOp(c, input, { stopping: () => this.aborted() });
      const retry = op !== null && (op.status === 'indeterminate' || (input.kind === 'lock' && op.status === 'refused'));
      if (!retry || this.now() > deadline) return op;
      await sleep(100);
    }
  }

  private async verifyTokens(): Promise<void> {
    const c = this.client('verify');
    const deadline = this.now() + 30_000;
    for (const durability of ['persistent', 'ephemeral'] as const) {
      for (const resource of this.hot) {
        const highest = this.highestToken(durability, resource);
        const get = await this.settleOp(c, { kind: 'get', resource, durability }, deadline);
        const info = get?.output;
        if (durability === 'persistent' && typeof info === 'object' && info !== null && highest !== undefined && info.token < highest) {
          this.violations.push({ check: 'durability', partition: this.partitionOf(resource), message: `after the restart ${resource} is held with token ${info.token}, below the acknowledged ${highest}`, excerpt: this.excerpt(durability, resource) });
        }
        const lock = await this.settleOp(c, { kind: 'lock', resource, durability, owner: `verify.${resource}`, ttlMs: 60_000 }, deadline);
        if (lock === null || typeof lock.output !== 'bigint') {
          this.notes.push(`after the restart KLOCK ${resource} ${durability} was not granted within 30 s (${lock === null ? 'aborted' : lock.error ?? formatOutput(lock.output)})`);
        } else if (highest !== undefined && lock.output <= highest) {
          this.violations.push({ check: 'durability', partition: this.partitionOf(resource), message: `after the restart a new ${durability} grant of ${resource} got token ${lock.output}, not above the acknowledged ${highest}`, excerpt: this.excerpt(durability, resource) });
        }
      }
    }
    c.conn?.close();
  }

  private highestToken(durability: Durability, resource: string): bigint | undefined {
    let highest: bigint | undefined;
    for (const op of this.ops) {
      if (op.input.durability !== durability || op.input.resource !== resource) continue;
      const token = typeof op.output === 'bigint' ? op.output : typeof op.output === 'object' && op.output !== null ? op.output.token : undefined;
      if (token !== undefined && (highest === undefined || token > highest)) highest = token;
    }
    return highest;
  }

  /** Every acknowledged durable key is there with its value; an unacknowledged one is there or not. */
  private async verifyDurable(): Promise<number> {
    const c = this.client('verify-durable');
    let checked = 0;
    const deadline = this.now() + 30_000;
    for (const d of this.durable) {
      if (d.status === 'refused') continue;
      const args = d.kind === 'set' ? ['GET', d.key] : ['KGETLOCK', d.key, 'PERSISTENT'];
      const x = await this.answered(c, args, deadline);
      if (x === null || x.failure !== undefined || isErr(x.reply)) {
        this.notes.push(`after the restart ${args.join(' ')} got no answer within 30 s`);
        break;
      }
      checked += 1;
      const present = d.kind === 'set' ? x.reply === d.value
        : Array.isArray(x.reply) && x.reply[0] === d.value && x.reply[1] === 0;
      const absent = x.reply === null;
      if (d.status === 'ok' ? !present : !(present || absent)) {
        this.violations.push({ check: 'durability', message: `${d.status === 'ok' ? 'acknowledged' : 'unacknowledged'} ${d.kind} ${d.key}=${d.value}: after the restart ${args.join(' ')} answers ${JSON.stringify(x.reply, bigintJson)}` });
      }
    }
    c.conn?.close();
    return checked;
  }

  /** Sends a command until it is answered with something other than an error, or the deadline passes. */
  private async answered(c: Client, args: (string | number)[], deadline: number): Promise<Exchange | null> {
    for (;;) {
      const x = await this.exchange(c, args, () => this.aborted());
      if (x === null || (x.failure === undefined && !isErr(x.reply)) || this.now() > deadline) return x;
      await sleep(100);
    }
  }

  // ---- checks and the report -------------------------------------------------------------------

  private report(at: { workloadStart: number; workloadEnd: number; lastHealAt: number; final: ChaosReport['final'] }): ChaosReport {
    const checkStart = this.now();
    for (const clock of this.clocks) clock.seal();
    this.checkClocks();
    this.checkHoldsAndTokens();
    this.checkFencedWrites();
    const linearizability = { persistent: this.checkLin('persistent'), ephemeral: this.checkLin('ephemeral') };
    const o = this.o;
    const ops = Object.fromEntries((['lock', 'extend', 'unlock', 'get', 'set', 'durable-lock'] as OpKind[])
      .map((k) => [k, { ok: 0, refused: 0, indeterminate: 0 }])) as Record<OpKind, OpCounts>;
    const errors: Record<string, number> = {};
    for (const op of this.ops) {
      ops[op.input.kind][op.status] += 1;
      if (op.error !== undefined) errors[op.error] = (errors[op.error] ?? 0) + 1;
    }
    for (const d of this.durable) ops[d.kind][d.status] += 1;
    for (const cause of Object.keys(errors)) {
      if (cause.startsWith('error:')) this.notes.push(`unexpected error reply ${errors[cause]}x: ${cause}`);
    }
    const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, this.faultLog.filter((f) => f.kind === k).length])) as Record<FaultKind, number>;
    const grants = this.ops.filter((op) => op.input.kind === 'lock' && op.status === 'ok' && op.relock !== true && !op.client.startsWith('verify'));
    const firstFault = this.faultLog[0]?.start ?? Infinity;
    if (linearizability.persistent.unknown.length + linearizability.ephemeral.unknown.length > 0) {
      this.notes.push('linearizability inconclusive (search budget) for some keys; see linearizability.*.unknown');
    }
    const unavailability = this.unavailability(at.workloadStart, at.workloadEnd);
    for (const gap of unavailability) {
      if (gap.gapMs > 10_000) this.notes.push(`partition ${gap.partition} answered nothing definite for ${(gap.gapMs / 1000).toFixed(1)} s (${ms(gap.from)}..${ms(gap.to)}; faults: ${gap.faults || 'none'})`);
    }
    return {
      seed: o.seed, nodes: o.nodes, partitions: o.partitions, clients: o.clients, resources: o.resources, durationMs: o.durationMs,
      wallMs: this.now(), ops, errors, faults, faultLog: this.faultLog,
      grants: {
        total: grants.length,
        persistent: grants.filter((g) => g.input.durability === 'persistent').length,
        ephemeral: grants.filter((g) => g.input.durability === 'ephemeral').length,
        afterFirstFault: grants.filter((g) => g.call > firstFault).length,
        afterLastHeal: grants.filter((g) => g.call > at.lastHealAt).length,
      },
      fencedStore: { accepted: this.store.accepted, rejected: this.store.rejected },
      linearizability,
      clockSamples: this.clocks.reduce((n, c) => n + c.size, 0),
      checkMs: this.now() - checkStart,
      lockDelayMaxMs: this.lockDelayMaxMs,
      unavailability,
      final: at.final,
      violations: this.violations,
      notes: this.notes,
      history: this.ops,
      clocks: this.clocks.map((c) => c.samples()),
    };
  }

  private checkClocks(): void {
    this.clocks.forEach((clock, p) => {
      for (const problem of clock.problems(CLOCK_SLACK_MS)) {
        this.violations.push({ check: 'lease-clock', partition: p, message: `partition ${p}: ${problem}` });
      }
    });
  }

  private partitionOf(resource: string): number {
    return partitionOfKey(resource, this.o.partitions);
  }

  private opsOf(durability: Durability, resource: string): ChaosOp[] {
    return this.ops.filter((op) => op.input.durability === durability && op.input.resource === resource);
  }

  /** Mutual exclusion and fencing order over definite-hold windows; no token shown for two owners. */
  private checkHoldsAndTokens(): void {
    for (const durability of ['persistent', 'ephemeral'] as const) {
      for (const resource of this.hot) {
        const ops = this.opsOf(durability, resource);
        const holds = holdOps(ops);
        const verdict = checkHolds(holds, { drift: 0 });
        for (const message of verdict.violations) {
          this.violations.push({ check: 'mutual-exclusion', partition: this.partitionOf(resource), message: `${durability}: ${message}`, excerpt: this.excerptAround(ops, message) });
        }
        const owners = new Map<bigint, string>();
        for (const op of ops) {
          const shown = typeof op.output === 'bigint' && op.input.kind !== 'get' ? { owner: op.input.owner, token: op.output }
            : typeof op.output === 'object' && op.output !== null ? op.output : undefined;
          if (shown === undefined) continue;
          const first = owners.get(shown.token);
          if (first === undefined) owners.set(shown.token, shown.owner);
          else if (first !== shown.owner) {
            this.violations.push({ check: 'token-reuse', partition: this.partitionOf(resource), message: `${durability} ${resource}: token ${shown.token} shown for ${first} and for ${shown.owner}`, excerpt: this.excerpt(durability, resource) });
            break;
          }
        }
      }
    }
  }

  /** A write refused while its writer certainly still held the lock means a newer grant overlapped. */
  private checkFencedWrites(): void {
    for (const w of this.writes) {
      if (w.accepted || w.at >= w.heldUntil) continue;
      const ops = this.opsOf(w.durability, w.resource);
      this.violations.push({
        check: 'fenced-store',
        partition: this.partitionOf(w.resource),
        message: `${w.durability} ${w.resource}: ${w.owner}'s write with token ${w.token} at ${ms(w.at)} was refused (a higher token was written) although its lease certainly ran until ${ms(w.heldUntil)}`,
        excerpt: formatExcerpt(ops.filter((op) => op.call < w.at + 100 && (op.ret ?? op.call) > w.at - 5000)),
      });
    }
  }

  /** Linearizability per resource, each operation mapped into its partition's log time. */
  private checkLin(durability: Durability): LinSummary {
    const summary: LinSummary = { keys: 0, ok: 0, okTrustingErrors: 0, unknown: [], failed: 0, ops: 0 };
    for (const resource of this.hot) {
      const partition = this.partitionOf(resource);
      const clock = this.clocks[partition]!;
      const ops = this.opsOf(durability, resource);
      summary.keys += 1;
      summary.ops += ops.length;
      const { result, trusting } = checkResourceHistory(ops, clock, this.o.linStepsMax);
      if (result.ok === true) {
        summary.ok += 1;
        if (trusting) summary.okTrustingErrors += 1;
      } else if (result.ok === 'unknown') summary.unknown.push(result.reason);
      else {
        summary.failed += 1;
        const clockBroke = this.violations.some((v) => v.check === 'lease-clock' && v.partition === partition);
        this.violations.push({
          check: 'linearizability',
          partition,
          message: `${durability} ${resource} is not linearizable (times below are partition ${partition}'s log time, ms)` +
            (trusting ? '; this search took replies that say a command was not carried out at their word' : '') +
            (clockBroke ? `; partition ${partition}'s lease clock broke its rules in this run, which puts ops outside the bounds used here, so this may follow from that` : ''),
          excerpt: result.explanation,
        });
      }
    }
    return summary;
  }

  private unavailability(from: number, to: number): PartitionGap[] {
    const times: number[][] = this.clocks.map((clock) => [...clock.replyTimes]);
    for (const op of this.ops) {
      if (op.status !== 'indeterminate' && op.ret !== undefined) times[partitionOfKey(op.input.resource, this.o.partitions)]!.push(op.ret);
    }
    return times.map((list, partition) => {
      const sorted = [from, ...list.filter((t) => t >= from && t <= to).sort((a, b) => a - b), to];
      let best = { gapMs: 0, from, to: from };
      for (let i = 1; i < sorted.length; i++) {
        if (sorted[i]! - sorted[i - 1]! > best.gapMs) best = { gapMs: sorted[i]! - sorted[i - 1]!, from: sorted[i - 1]!, to: sorted[i]! };
      }
      const faults = this.faultLog.filter((f) => f.start < best.to && (f.end ?? Infinity) > best.from).map((f) => f.detail).join('; ');
      return { partition, ...best, faults };
    });
  }

  private excerpt(durability: Durability, resource: string): string {
    return formatExcerpt(this.opsOf(durability, resource).slice(-EXCERPT_LINES_MAX));
  }

  /** The ops of a resource around the instants a checker's message names. */
  private excerptAround(ops: ChaosOp[], message: string): string {
    const instants = [...message.matchAll(/\[(-?[\d.]+), (-?[\d.]+)\]/g)].flatMap((m) => [Number(m[1]), Number(m[2])]);
    if (instants.length === 0) return formatExcerpt(ops.slice(-EXCERPT_LINES_MAX));
    const lo = Math.min(...instants) - 3000;
    const hi = Math.max(...instants) + 500;
    return formatExcerpt(ops.filter((op) => op.call <= hi && (op.ret ?? op.call) >= lo));
  }
}

function formatExcerpt(ops: ChaosOp[]): string {
  const shown = ops.slice(-EXCERPT_LINES_MAX);
  const more = ops.length - shown.length;
  return (more > 0 ? [`... ${more} earlier ops`] : []).concat(shown.map(formatChaosOp)).join('\n');
}

/**
 * The ops of one resource as the definite-hold checker sees them. Re-locks make no new window. Every
 * unlock and every extend, answered or not, goes in: holdWindows ends a hold at the call of its
 * owner's next one (an extend sets expiry = now + ttl, which may be sooner).
 */
export function holdOps(ops: readonly ChaosOp[]): HoldOp[] {
  const out: HoldOp[] = [];
  for (const op of ops) {
    const input = op.input;
    const base = { client: op.client, resource: input.resource, call: op.call, ret: op.ret ?? op.call };
    if (input.kind === 'unlock') out.push({ ...base, owner: input.owner, kind: 'unlock', ttlMs: 0, result: op.output === true });
    else if (input.kind === 'extend') out.push({ ...base, owner: input.owner, kind: 'extend', ttlMs: input.ttlMs, result: typeof op.output === 'bigint' ? op.output : null });
    else if (input.kind === 'lock' && op.status !== 'indeterminate' && op.relock !== true) {
      out.push({ ...base, owner: input.owner, kind: 'lock', ttlMs: input.ttlMs, result: op.output as bigint | null });
    }
  }
  return out;
}

/**
 * Linearizability of one resource's ops (one durability), in its partition's log time. When the
 * search runs out of budget:
 * - it searches the answered ops alone: an op without a reply may never have taken effect, so a
 *   linearization without any of them is a valid witness (a failure there proves nothing);
 * - else it searches again taking the error replies that say the command was not carried out at
 *   their word (which also tests that they tell the truth): `trusting`.
 */
export function checkResourceHistory(ops: readonly ChaosOp[], clock: LeaseClock, stepsMax: number): { result: CheckResult; trusting: boolean } {
  const options = { timeSlackMs: LIN_TIME_SLACK_MS, ephemeralLoss: true, stepsMaxPerPartition: stepsMax };
  const check = (subset: readonly ChaosOp[]): CheckResult => checkHistory(subset.map((op) => toLogTime(op, clock)), options);
  const result = check(ops);
  if (result.ok !== 'unknown') return { result, trusting: false };
  const answered = check(ops.filter((op) => op.ret !== undefined));
  if (answered.ok === true) return { result: answered, trusting: false };
  return { result: check(ops.filter((op) => !NO_EFFECT_CAUSES.has(op.error ?? ''))), trusting: true };
}

/**
 * The op for the linearizability checker, its [call, ret] mapped into the partition's log time and
 * widened by the samples' staleness. Widened on both sides, two ops that overlapped in real time
 * still overlap in log time (the bounds at one instant disagree by at most the staleness): the
 * mapping never invents a real-time order, which would make the checker reject a valid history.
 */
function toLogTime(op: ChaosOp, clock: LeaseClock): LockOp {
  const call = Math.floor(clock.lower(op.call) - CLOCK_SLACK_MS);
  const upper = op.ret === undefined ? Infinity : clock.upper(op.ret, op.input.durability) + CLOCK_SLACK_MS;
  // No bound (no sample before the reply): keep the op, but without its reply, which only weakens the check.
  if (!Number.isFinite(call) || !Number.isFinite(upper)) {
    return { id: op.id, client: op.client, call: Number.isFinite(call) ? call : Math.floor(op.call), ret: undefined, input: op.input, output: undefined };
  }
  return { id: op.id, client: op.client, call, ret: Math.max(call, Math.ceil(upper)), input: op.input, output: op.output };
}

/** A key that falls in partition p, named after base. */
function keyIn(p: number, partitions: number, base: string): string {
  for (let i = 0; ; i++) {
    const key = i === 0 ? base : `${base}.${i}`;
    if (partitionOfKey(key, partitions) === p) return key;
  }
}

function shuffle<T>(rng: Rng, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const isOk = (r: Reply | undefined): boolean => typeof r === 'object' && r !== null && 'ok' in r && r.ok === 'OK';
const isErr = (r: Reply | undefined): boolean => typeof r === 'object' && r !== null && 'err' in r;
const bigintJson = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? `${value}n` : value);

/** Each partition's leader as one node's INFO raft reports it ('' when it knows none). */
async function raftLeaders(port: number): Promise<string[]> {
  const conn = await RespConn.connect('?', port, 1000);
  try {
    const text = await conn.call(['INFO', 'raft'], 2000);
    if (typeof text !== 'string') return [];
    return [...text.matchAll(/partition\d+:role=\w+,term=\d+,leader=([^,]*),/g)].map((m) => m[1]!);
  } finally {
    conn.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// The summary.

export function formatReport(r: ChaosReport): string {
  const lines = [
    `chaos seed=${r.seed} nodes=${r.nodes} partitions=${r.partitions} clients=${r.clients} resources=${r.resources} ` +
    `duration=${r.durationMs / 1000}s wall=${(r.wallMs / 1000).toFixed(1)}s`,
    `ops            ok  refused  indeterminate`,
    ...Object.entries(r.ops).map(([k, c]) => `  ${k.padEnd(12)} ${String(c.ok).padStart(6)} ${String(c.refused).padStart(8)} ${String(c.indeterminate).padStart(14)}`),
    `indeterminate by cause: ${Object.entries(r.errors).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`,
    `faults: ${Object.entries(r.faults).map(([k, n]) => `${k} ${n}`).join(', ')} (total ${r.faultLog.length}, ` +
    `${r.faultLog.filter((f) => f.majorityLoss).length} without a healthy majority)`,
    `grants: ${r.grants.total} (persistent ${r.grants.persistent}, ephemeral ${r.grants.ephemeral}); ` +
    `after the first fault ${r.grants.afterFirstFault}; after the last heal ${r.grants.afterLastHeal}`,
    `fenced store: ${r.fencedStore.accepted} writes accepted, ${r.fencedStore.rejected} stale writes refused`,
    ...(['persistent', 'ephemeral'] as const).map((d) => {
      const l = r.linearizability[d];
      const trusting = l.okTrustingErrors > 0 ? ` (${l.okTrustingErrors} taking "not carried out" errors at their word)` : '';
      return `linearizability ${d}: ${l.ok}/${l.keys} resources ok${trusting} over ${l.ops} ops${l.unknown.length > 0 ? `, ${l.unknown.length} inconclusive` : ''}${l.failed > 0 ? `, ${l.failed} FAILED` : ''}`;
    }),
    `lease clock: ${r.clockSamples} samples; longest EPHEMERAL lock-delay announced ${r.lockDelayMaxMs} ms; checks took ${(r.checkMs / 1000).toFixed(1)} s`,
    `longest time without a definite answer per partition: ${r.unavailability.map((g) => `p${g.partition} ${(g.gapMs / 1000).toFixed(1)}s`).join(', ')}`,
    `final restart: settled ${fmtMs(r.final.settleAfterHealMs)} after healing, ${fmtMs(r.final.settleAfterRestartMs)} after kill -9 of all; ` +
    `durable keys ${r.final.durableAcked} acknowledged, ${r.final.durableChecked} read back`,
    ...r.notes.map((n) => `note: ${n}`),
    r.violations.length === 0 ? 'violations: none' : `VIOLATIONS: ${r.violations.length} (seed ${r.seed})`,
  ];
  for (const v of r.violations) {
    lines.push(`- [${v.check}] ${v.message}`);
    if (v.excerpt !== undefined) lines.push(...v.excerpt.split('\n').map((l) => `    ${l}`));
  }
  return lines.join('\n');
}

const fmtMs = (v: number | null): string => (v === null ? 'never' : `${(v / 1000).toFixed(1)}s`);
