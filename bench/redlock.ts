// Redlock benchmark, with same-run baselines: redlock 4.2.0 and 5.0.0-beta.2 (ioredis, one endpoint)
// doing acquire+release cycles against a raftlock single node, a 3-node raftlock cluster (through one
// node) and redis-server (in memory, and with appendfsync always); then redis-benchmark of EVALSHA of
// redlock's release script (run natively by raftlock) and of EVAL of a script raftlock does not know
// (its Lua VM), against raftlock and in-memory redis-server. Writes bench/RESULTS-redlock.md.
// Reproduce: npm run bench:redlock   (= npm run build && node dist/bench/redlock.js [--runs N] [--seconds N] [--requests N])
import { Command } from 'commander';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { Redis } from 'ioredis';
import { ProcessCluster } from './lib/cluster.js';
import { agreedLeadership, changedPartitions, waitForLeadership, type Leadership } from './lib/leaders.js';
import { randomKey } from './lib/load.js';
import { missingTools, RAFTLOCK_MAIN, REPO_ROOT, SERVER_COMMAND, startRaftlock, startRedisServer, type ServerProcess } from './lib/proc.js';
import { runRedisBenchmark, type BenchmarkSample } from './lib/redis-benchmark.js';
import { cpuMeter } from './lib/cpu.js';
import { commandOutput, fmtInt, fmtMs, fmtRatio, machineFacts } from './lib/report.js';
import { callOnce } from './lib/resp-client.js';
import { median, quantile, sortedCopy } from './lib/stats.js';
import { positiveInt } from './lib/args.js';
import { knownScript } from '../src/script/known.js';

const WORKERS = 50;
const LOCK_TTL_MS = 10_000;
const RESOURCE_PREFIX = 'redlock:';
const KEYSPACE = 100_000;
const NODES = 3;
const PARTITIONS = 8;
/** The cluster node every redlock client connects to; it forwards to the partition leaders. */
const TARGET_NODE = 'n1';
const CLIENTS = 50;
const PIPELINES = [1, 16];
const OWNER = 'owner';
/** Issue 5's target: EVALSHA of the release script (native path) against in-memory redis-server. */
const NATIVE_TARGET = 0.4;
/**
 * A script that is no lock client's: raftlock runs it in its Lua VM. The same one GET as a release of a
 * free key. No double quotes: redis-benchmark puts the command, unescaped, in its CSV output.
 */
const VM_SCRIPT = "local v = redis.call('GET', KEYS[1]) if v then return string.len(v) end return 0";

type ServerName = 'raftlock' | 'cluster' | 'redis' | 'redis-fsync';
const SERVERS: ServerName[] = ['raftlock', 'cluster', 'redis', 'redis-fsync'];
const SERVER_LABEL: Record<ServerName, string> = {
  raftlock: 'raftlock, single node',
  cluster: `raftlock, ${NODES}-node cluster (via ${TARGET_NODE})`,
  redis: 'redis-server (in memory)',
  'redis-fsync': 'redis-server (appendfsync always)',
};

type ClientName = 'redlock4' | 'redlock5';
const LOCK_CLIENTS: ClientName[] = ['redlock4', 'redlock5'];
const CLIENT_LABEL: Record<ClientName, string> = { redlock4: 'redlock 4.2.0', redlock5: 'redlock 5.0.0-beta.2' };

type ScriptWorkload = 'native' | 'vm';
const SCRIPT_WORKLOADS: ScriptWorkload[] = ['native', 'vm'];
const SCRIPT_SERVERS: ServerName[] = ['raftlock', 'redis'];
const SCRIPT_LABEL: Record<ScriptWorkload, string> = {
  native: 'EVALSHA redlock release (raftlock: native)',
  vm: 'EVAL unknown script (raftlock: Lua VM)',
};

/** redlock 4.2.0's API as used here (the package ships no types). */
interface Redlock4 {
  lock(resource: string, ttlMs: number): Promise<{ unlock(): Promise<void> }>;
  on(event: 'clientError', listener: (error: Error) => void): unknown;
}

/** redlock 5.0.0-beta.2's API as used here (its types are not reachable through its package exports under NodeNext). */
interface Redlock5 {
  readonly scripts: { readonly releaseScript: { readonly value: string; readonly hash: string } };
  acquire(resources: string[], durationMs: number): Promise<{ release(): Promise<unknown> }>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

const requireCjs = createRequire(import.meta.url);
const Redlock4Class = requireCjs('redlock') as new (clients: Redis[], settings: { retryCount: number }) => Redlock4;
const Redlock5Class = (requireCjs('redlock5') as { default: new (clients: Redis[], settings: { retryCount: number }) => Redlock5 }).default;

interface Options {
  runs: number;
  seconds: number;
  warmupSeconds: number;
  requests: number;
  out: string;
}

function parseOptions(argv: string[]): Options {
  const program = new Command()
    .name('npm run bench:redlock --')
    .description('redlock acquire+release cycles and EVALSHA of its release script, raftlock vs redis-server; writes bench/RESULTS-redlock.md')
    .option('--runs <n>', 'measurements of each workload per server (medians are reported)', positiveInt, 5)
    .option('--seconds <n>', 'measured length of each redlock run (after a warm-up)', positiveInt, 10)
    .option('--requests <n>', 'requests per redis-benchmark measurement (-n)', positiveInt, 200_000)
    .option('--quick', 'a short check that everything works: 1 run, 2 s redlock runs, 20000 requests; writes bench/out/RESULTS-redlock-quick.md')
    .option('--out <file>', 'results file (default bench/RESULTS-redlock.md)')
    .parse(argv);
  const raw = program.opts<{ runs: number; seconds: number; requests: number; quick?: boolean; out?: string }>();
  const quick = raw.quick === true;
  const pick = <T>(name: string, full: T, short: T): T => (quick && program.getOptionValueSource(name) !== 'cli' ? short : full);
  return {
    runs: pick('runs', raw.runs, 1),
    seconds: pick('seconds', raw.seconds, 2),
    warmupSeconds: quick ? 1 : 2,
    requests: pick('requests', raw.requests, 20_000),
    out: join(REPO_ROOT, raw.out ?? (quick ? join('bench', 'out', 'RESULTS-redlock-quick.md') : join('bench', 'RESULTS-redlock.md'))),
  };
}

interface Context {
  options: Options;
  single: ServerProcess;
  cluster: ProcessCluster;
  redis: ServerProcess;
  redisFsync: ServerProcess;
}

function portOf(ctx: Context, server: ServerName): number {
  switch (server) {
    case 'raftlock': return ctx.single.port;
    case 'cluster': return ctx.cluster.node(TARGET_NODE).port;
    case 'redis': return ctx.redis.port;
    case 'redis-fsync': return ctx.redisFsync.port;
  }
}

function pidsOf(ctx: Context, server: ServerName): (number | undefined)[] {
  if (server === 'cluster') return ctx.cluster.nodes.map((n) => n.child?.pid);
  return [(server === 'raftlock' ? ctx.single : server === 'redis' ? ctx.redis : ctx.redisFsync).child.pid];
}

/** Throws if a server process died: its numbers (and every later one) would mean nothing. */
function assertAlive(ctx: Context): void {
  for (const server of [ctx.single, ctx.redis, ctx.redisFsync]) {
    const status = server.exitStatus;
    if (status !== null) throw new Error(`${server.describe()} died during the benchmark (code ${status.code}, signal ${status.signal})\n${server.stderr}`);
  }
  const dead = ctx.cluster.nodes.filter((n) => n.child === null);
  if (dead.length > 0) throw new Error(`raftlock node(s) ${dead.map((n) => n.id).join(', ')} died during the benchmark:\n${dead.map((n) => n.log.slice(-20).join('\n')).join('\n')}`);
}

/** One acquire of `resource` then its release; 'refused' when another worker held it. */
type Cycle = (resource: string) => Promise<'done' | 'refused'>;

/** A redlock instance over one connection (one endpoint), no retries; errors other than "held" go to onError. */
function redlockCycle(client: ClientName, connection: Redis, onError: (error: Error) => void): Cycle {
  if (client === 'redlock4') {
    const redlock = new Redlock4Class([connection], { retryCount: 0 });
    redlock.on('clientError', onError);
    return async (resource) => {
      let lock: { unlock(): Promise<void> };
      try {
        lock = await redlock.lock(resource, LOCK_TTL_MS);
      } catch (error) {
        if ((error as Error).name === 'LockError') return 'refused';
        throw error;
      }
      await lock.unlock();
      return 'done';
    };
  }
  const redlock = new Redlock5Class([connection], { retryCount: 0 });
  // redlock 5 emits every vote against, a held resource (ResourceLockedError) included; with no listener the emit throws.
  redlock.on('error', (error) => {
    if (error.name !== 'ResourceLockedError') onError(error);
  });
  return async (resource) => {
    let lock: { release(): Promise<unknown> };
    try {
      lock = await redlock.acquire([resource], LOCK_TTL_MS);
    } catch (error) {
      if ((error as Error).name === 'ExecutionError') return 'refused';
      throw error;
    }
    await lock.release();
    return 'done';
  };
}

interface CycleRun {
  cyclesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  refused: number;
  errors: Map<string, number>;
  serverCores: number;
  generatorCores: number;
  /** Why the run is left out of the medians (errors, a leader change), or null. */
  excluded: string | null;
}

function noteError(errors: Map<string, number>, error: unknown): void {
  const text = (error instanceof Error ? error.message : String(error)).slice(0, 80);
  errors.set(text, (errors.get(text) ?? 0) + 1);
}

async function connectAll(port: number): Promise<Redis[]> {
  const connections = Array.from({ length: WORKERS }, () => new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0 }));
  try {
    await Promise.all(connections.map((c) => c.connect()));
  } catch (error) {
    for (const c of connections) c.disconnect();
    throw error;
  }
  return connections;
}

/** Cores used by the servers and by this process (the load generator) between warmupMs and warmupMs + durationMs from now. */
function cpuWindow(pids: () => (number | undefined)[], warmupMs: number, durationMs: number): Promise<{ serverCores: number; generatorCores: number }> {
  return new Promise((resolve) => {
    setTimeout(() => {
      const servers = cpuMeter(pids);
      const generator = cpuMeter(() => [process.pid]);
      setTimeout(() => resolve({ serverCores: servers.stop(), generatorCores: generator.stop() }), durationMs);
    }, warmupMs);
  });
}

/** WORKERS workers loop acquire+release for warm-up + seconds; cycles that end in the measured window count. */
async function cycleRun(ctx: Context, client: ClientName, server: ServerName): Promise<CycleRun> {
  const before = server === 'cluster' ? await waitForLeadership(ctx.cluster, { balanced: true, stableMs: 1000, timeoutMs: 60_000 }) : null;
  const connections = await connectAll(portOf(ctx, server));
  const errors = new Map<string, number>();
  const latencies: number[] = [];
  let refused = 0;
  try {
    const cycles = connections.map((c) => redlockCycle(client, c, (error) => noteError(errors, error)));
    const warmupMs = ctx.options.warmupSeconds * 1000;
    const durationMs = ctx.options.seconds * 1000;
    const cpu = cpuWindow(() => pidsOf(ctx, server), warmupMs, durationMs);
    const from = performance.now() + warmupMs;
    const until = from + durationMs;
    await Promise.all(cycles.map(async (cycle) => {
      while (performance.now() < until) {
        const began = performance.now();
        try {
          const outcome = await cycle(randomKey(RESOURCE_PREFIX, KEYSPACE));
          const now = performance.now();
          if (now < from || now > until) continue;
          if (outcome === 'done') latencies.push(now - began);
          else refused += 1;
        } catch (error) {
          noteError(errors, error);
          await new Promise((r) => setImmediate(r));
        }
      }
    }));
    const { serverCores, generatorCores } = await cpu;
    const sorted = sortedCopy(Float64Array.from(latencies));
    return {
      cyclesPerSec: latencies.length / ctx.options.seconds, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99),
      refused, errors, serverCores, generatorCores, excluded: await exclusion(ctx, before, errors),
    };
  } finally {
    for (const c of connections) c.disconnect();
  }
}

/** Why a run does not count: error replies, or (cluster) a partition changed leader or term while it ran. */
async function exclusion(ctx: Context, before: Leadership | null, errors: Map<string, number>): Promise<string | null> {
  assertAlive(ctx);
  if (before !== null) {
    const after = await agreedLeadership(ctx.cluster);
    if (after === null) return 'leadership unsettled after the run';
    const changed = changedPartitions(before, after);
    if (changed.length > 0) return `leader or term changed in partition(s) ${changed.join(', ')}`;
  }
  let count = 0;
  for (const n of errors.values()) count += n;
  return count === 0 ? null : `${count} errors, e.g. ${[...errors.keys()][0]}`;
}

/** An argument as a shell word: bare, in double quotes (the Lua script), else in single quotes. */
function shellWord(arg: string): string {
  if (/^[\w@%+=:,./-]+$/.test(arg)) return arg;
  return /^[^"$`\\!]*$/.test(arg) ? `"${arg}"` : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function scriptCommand(workload: ScriptWorkload, releaseSha: string): string[] {
  return workload === 'native'
    ? ['EVALSHA', releaseSha, '1', 'lock:__rand_int__', OWNER]
    : ['EVAL', VM_SCRIPT, '1', 'lock:__rand_int__', OWNER];
}

function scriptBenchmarkArgs(port: number, workload: ScriptWorkload, pipeline: number, releaseSha: string, options: Options): string[] {
  return [
    '-h', '127.0.0.1', '-p', String(port), '-c', String(CLIENTS), '-n', String(options.requests), '-r', String(KEYSPACE),
    '-P', String(pipeline), '--csv', '-q', ...scriptCommand(workload, releaseSha),
  ];
}

/** redlock 5's release script, exactly as it sends it, and the SHA1 it sends with EVALSHA (redlock's own hashing). */
function releaseScript(): { value: string; hash: string } {
  const unconnected = new Redis({ lazyConnect: true });
  const { value, hash } = new Redlock5Class([unconnected], { retryCount: 0 }).scripts.releaseScript;
  unconnected.disconnect();
  const known = knownScript(value);
  if (known === undefined || known.sha1 !== hash) throw new Error(`redlock 5's release script (${hash}) is not one raftlock runs natively`);
  if (knownScript(VM_SCRIPT) !== undefined) throw new Error('the VM script is a known lock script; raftlock would run it natively');
  return { value, hash };
}

/** SCRIPT LOAD of the release script on each server; checks the SHA1 each answers. */
async function loadScript(ctx: Context, script: { value: string; hash: string }): Promise<void> {
  for (const server of SCRIPT_SERVERS) {
    const reply = await callOnce(portOf(ctx, server), ['SCRIPT', 'LOAD', script.value]);
    if (reply !== script.hash) throw new Error(`SCRIPT LOAD on ${SERVER_LABEL[server]} answered ${JSON.stringify(reply)}, expected ${script.hash}`);
  }
}

interface Samples {
  cycles: Map<string, CycleRun[]>;
  scripts: Map<string, BenchmarkSample[]>;
}

const cycleKey = (client: ClientName, server: ServerName): string => `${client}|${server}`;
const scriptKey = (workload: ScriptWorkload, pipeline: number, server: ServerName): string => `${workload}|${pipeline}|${server}`;

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  map.set(key, [...(map.get(key) ?? []), value]);
}

/** One run of every redlock client on every server, then of every script workload; the server order flips every run. */
async function measureRun(ctx: Context, run: number, releaseSha: string, samples: Samples): Promise<void> {
  const flip = <T>(list: T[]): T[] => (run % 2 === 1 ? list : [...list].reverse());
  const tag = `run ${run}/${ctx.options.runs}`;
  for (const client of flip(LOCK_CLIENTS)) {
    for (const server of flip(SERVERS)) {
      const r = await cycleRun(ctx, client, server);
      push(samples.cycles, cycleKey(client, server), r);
      console.log(`${tag}  ${CLIENT_LABEL[client].padEnd(20)} ${SERVER_LABEL[server].padEnd(36)} ${fmtInt(r.cyclesPerSec).padStart(7)} cycles/s  p50 ${fmtMs(r.p50Ms)} ms  p99 ${fmtMs(r.p99Ms)} ms  ` +
        `refused ${r.refused}  cores: servers ${fmtCores(r.serverCores)}, generator ${fmtCores(r.generatorCores)}${r.excluded === null ? '' : `  EXCLUDED: ${r.excluded}`}`);
    }
  }
  for (const workload of SCRIPT_WORKLOADS) {
    for (const pipeline of PIPELINES) {
      for (const server of flip(SCRIPT_SERVERS)) {
        const args = scriptBenchmarkArgs(portOf(ctx, server), workload, pipeline, releaseSha, ctx.options);
        const sample = await runRedisBenchmark(args, Math.max(120_000, ctx.options.requests * 5));
        assertAlive(ctx);
        if (sample.error !== null) throw new Error(`redis-benchmark ${args.map(shellWord).join(' ')} got error replies, e.g. ${sample.error}`);
        push(samples.scripts, scriptKey(workload, pipeline, server), sample);
        console.log(`${tag}  ${SCRIPT_LABEL[workload].padEnd(42)} P=${String(pipeline).padEnd(3)} ${SERVER_LABEL[server].padEnd(26)} ${fmtInt(sample.rps).padStart(8)} rps  p50 ${fmtMs(sample.p50Ms)} ms`);
      }
    }
  }
}

const fmtCores = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');

const counted = (runs: CycleRun[]): CycleRun[] => runs.filter((r) => r.excluded === null);
const medianOf = <T>(items: T[], value: (item: T) => number): number => median(items.map(value));

const CYCLE_HEADER = '| client | server | cycles/s | p50 ms | p99 ms | vs redis-server in memory | vs redis-server fsync always | refused acquires | server cores | generator cores | runs counted |';

function cycleRows(samples: Samples): string[] {
  return LOCK_CLIENTS.flatMap((client) => {
    const rate = (server: ServerName): number => medianOf(counted(samples.cycles.get(cycleKey(client, server)) ?? []), (r) => r.cyclesPerSec);
    return SERVERS.map((server) => {
      const all = samples.cycles.get(cycleKey(client, server)) ?? [];
      const runs = counted(all);
      return `| ${CLIENT_LABEL[client]} | ${SERVER_LABEL[server]} | ${fmtInt(rate(server))} | ${fmtMs(medianOf(runs, (r) => r.p50Ms))} | ${fmtMs(medianOf(runs, (r) => r.p99Ms))} | ` +
        `${fmtRatio(rate(server) / rate('redis'))} | ${fmtRatio(rate(server) / rate('redis-fsync'))} | ${fmtInt(medianOf(runs, (r) => r.refused))} | ` +
        `${fmtCores(medianOf(runs, (r) => r.serverCores))} | ${fmtCores(medianOf(runs, (r) => r.generatorCores))} | ${runs.length}/${all.length} |`;
    });
  });
}

const SCRIPT_HEADER = '| workload | pipeline | raftlock rps | redis-server rps | ratio | p50 ms raftlock | p50 ms redis-server | p99 ms raftlock | p99 ms redis-server | target |';

/** The ratio raftlock / in-memory redis-server of a script workload at a pipeline depth. */
function scriptRatio(samples: Samples, workload: ScriptWorkload, pipeline: number): number {
  const rps = (server: ServerName): number => medianOf(samples.scripts.get(scriptKey(workload, pipeline, server)) ?? [], (s) => s.rps);
  return rps('raftlock') / rps('redis');
}

function scriptRows(samples: Samples): string[] {
  return SCRIPT_WORKLOADS.flatMap((workload) => PIPELINES.map((pipeline) => {
    const ours = samples.scripts.get(scriptKey(workload, pipeline, 'raftlock')) ?? [];
    const theirs = samples.scripts.get(scriptKey(workload, pipeline, 'redis')) ?? [];
    const ratio = scriptRatio(samples, workload, pipeline);
    const target = workload !== 'native' ? '—' : `≥ ${NATIVE_TARGET}×: ${Number.isFinite(ratio) ? (ratio >= NATIVE_TARGET ? 'met' : 'missed') : 'n/a'}`;
    return `| ${SCRIPT_LABEL[workload]} | ${pipeline} | ${fmtInt(medianOf(ours, (s) => s.rps))} | ${fmtInt(medianOf(theirs, (s) => s.rps))} | ${fmtRatio(ratio)} | ` +
      `${fmtMs(medianOf(ours, (s) => s.p50Ms))} | ${fmtMs(medianOf(theirs, (s) => s.p50Ms))} | ${fmtMs(medianOf(ours, (s) => s.p99Ms))} | ${fmtMs(medianOf(theirs, (s) => s.p99Ms))} | ${target} |`;
  }));
}

function everyRunRows(samples: Samples, runs: number): string[] {
  const head = [`| workload | server | ${Array.from({ length: runs }, (_, i) => `run ${i + 1}`).join(' | ')} | median |`, `|---|---|${'---:|'.repeat(runs + 1)}`];
  const cycles = LOCK_CLIENTS.flatMap((client) => SERVERS.map((server) => {
    const all = samples.cycles.get(cycleKey(client, server)) ?? [];
    const cells = all.map((r) => `${fmtInt(r.cyclesPerSec)}${r.excluded === null ? '' : ' (excluded)'}`);
    return `| ${CLIENT_LABEL[client]} cycles/s | ${SERVER_LABEL[server]} | ${cells.join(' | ')} | ${fmtInt(medianOf(counted(all), (r) => r.cyclesPerSec))} |`;
  }));
  const scripts = SCRIPT_WORKLOADS.flatMap((workload) => PIPELINES.flatMap((pipeline) => SCRIPT_SERVERS.map((server) => {
    const all = samples.scripts.get(scriptKey(workload, pipeline, server)) ?? [];
    return `| ${SCRIPT_LABEL[workload]}, P=${pipeline}, rps | ${SERVER_LABEL[server]} | ${all.map((s) => fmtInt(s.rps)).join(' | ')} | ${fmtInt(medianOf(all, (s) => s.rps))} |`;
  })));
  return [...head, ...cycles, ...scripts];
}

function exclusionNotes(samples: Samples): string[] {
  const notes: string[] = [];
  for (const client of LOCK_CLIENTS) {
    for (const server of SERVERS) {
      (samples.cycles.get(cycleKey(client, server)) ?? []).forEach((r, i) => r.excluded !== null && notes.push(`- ${CLIENT_LABEL[client]} on ${SERVER_LABEL[server]}, run ${i + 1}: ${r.excluded}`));
    }
  }
  return notes.length === 0 ? ['No redlock run was excluded: no errors, and no partition of the cluster changed leader or term during its runs.'] : ['Redlock runs left out of the medians:', '', ...notes];
}

function packageVersion(name: string): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version.replace(/^v/, '');
}

function machineSection(): string[] {
  return [
    '## Machine',
    '',
    ...machineFacts([
      { name: 'redis-server', version: commandOutput('redis-server', ['--version']) },
      { name: 'redis-benchmark', version: commandOutput('redis-benchmark', ['--version']) },
      { name: 'npm redlock', version: `${packageVersion('redlock')} (as \`redlock\`) and ${packageVersion('redlock5')} (as \`redlock5\`)` },
      { name: 'npm ioredis', version: packageVersion('ioredis') },
    ]),
    '',
    `All of it shares the ${commandOutput('nproc', [])} cores above: raftlock's single node, the ${NODES} cluster nodes and the two redis-servers stay up for the ` +
      'whole run (the idle ones keep ticking and, in the cluster, heartbeating while another server is measured), and so does the load generator: ' +
      'this Node.js process running redlock and ioredis, or redis-benchmark. "generator cores" shows how much of the machine the redlock clients ' +
      'themselves took; with both cores busy, a faster server cannot show all of its speed. A production deployment runs servers and clients on ' +
      'machines of their own, so these numbers compare the servers here, not what any of them does on its own hardware.',
  ];
}

function methodSection(options: Options, releaseSha: string): string[] {
  const cmd = (workload: ScriptWorkload, pipeline: number): string =>
    `redis-benchmark ${scriptBenchmarkArgs(0, workload, pipeline, releaseSha, options).map(shellWord).join(' ').replace('-p 0', '-p P')}`;
  return [
    '## Method',
    '',
    `Servers, all on 127.0.0.1 on free ports: raftlock single node as \`${SERVER_COMMAND} --port P --bind 127.0.0.1 --data-dir <tmp>\` ` +
      `(default ${PARTITIONS} partitions); a ${NODES}-node raftlock cluster (\`${SERVER_COMMAND} --node-id nI --port P --cluster-port C ` +
      `--peers n1=...,n2=...,n3=... --data-dir <tmp> --partitions ${PARTITIONS}\`, started by bench/lib/cluster.ts); redis-server in memory as ` +
      "`redis-server --port P --bind 127.0.0.1 --dir <tmp> --save '' --appendonly no`; and redis-server with the same flags plus " +
      '`--appendonly yes --appendfsync always` (fsync before every reply that wrote).',
    '',
    `**Redlock cycles.** ${WORKERS} workers, each with its own ioredis connection (\`new Redis({ host, port, maxRetriesPerRequest: 0 })\`) and its own ` +
      'Redlock instance over that one connection (one endpoint, `retryCount: 0`), loop: acquire a resource drawn at random from ' +
      `${fmtInt(KEYSPACE)} (\`${RESOURCE_PREFIX}000000012345\`) for ${LOCK_TTL_MS} ms — redlock 4 \`redlock.lock(resource, ${LOCK_TTL_MS})\`, ` +
      `redlock 5 \`redlock.acquire([resource], ${LOCK_TTL_MS})\` — then release it (\`lock.unlock()\`, \`lock.release()\`). A cycle is one acquire ` +
      'and its release; its latency runs from the start of the acquire to the end of the release. Each acquire is an EVALSHA of redlock\'s acquire ' +
      'script and each release an EVALSHA of its release script (after one NOSCRIPT and EVAL per connection, in the warm-up); raftlock recognises ' +
      'both texts and runs them natively. The Redis keyspace is raftlock\'s PERSISTENT lock table, so every acquire and every release is a Raft log ' +
      'entry, fdatasync\'d (on a quorum, in the cluster) before the reply; redis-server in memory writes nothing to disk, redis-server with ' +
      'appendfsync always fsyncs both. Both baselines are shown. In the cluster every connection goes to ' +
      `${TARGET_NODE}, which forwards the commands of the partitions it does not lead to their leaders (one hop).`,
    '',
    `Each measurement runs ${options.warmupSeconds} s of warm-up, then ${options.seconds} s measured: cycles that end in that window count, and ` +
      'cycles/s is their number over its length. An acquire refused because another worker holds the resource (rare: ' +
      `${WORKERS} workers over ${fmtInt(KEYSPACE)} resources) is counted as "refused", not as a cycle. Before each cluster measurement the ` +
      `benchmark waits until the nodes agree on the leaders, each leads ${Math.floor(PARTITIONS / NODES)} or ${Math.ceil(PARTITIONS / NODES)} ` +
      'partitions and that has held for 1 s. A run does not count if a client saw an error, or (cluster) if a partition changed leader or term during it.',
    '',
    `**EVALSHA of the release script.** redlock 5's release script (the text redlock 5.0.0-beta.2 sends, from \`new Redlock(...).scripts.releaseScript\`, ` +
      `SHA1 \`${releaseSha}\` by redlock's own hashing; raftlock's table of known scripts has the same SHA1, so it runs natively) is loaded with ` +
      '`SCRIPT LOAD` on raftlock single node and on in-memory redis-server, then redis-benchmark calls it. The keys are free, so each call does ' +
      'one GET and returns 0 (redis-server writes nothing for it); raftlock\'s leader answers a known script that changes nothing without a log ' +
      'entry, as it does KUNLOCK of a free lock, while any other script is a write through the partition\'s Raft log (docs/scripting.md). The extra rows EVAL a script no ' +
      `lock client sends (\`${VM_SCRIPT}\`: the same one GET), which raftlock runs in its Lua VM, so the VM's cost shows next to the native path. ` +
      `Target (issue 5): the native EVALSHA at ≥ ${NATIVE_TARGET}× in-memory redis-server. With \`-P 16\` redis-benchmark gives every request of a ` +
      'batch the time to the first read of the batch\'s replies, so its p50 and p99 there say when a batch starts to be answered, not when it is done.',
    '',
    'The commands (P = the server\'s port):',
    '',
    '```sh',
    ...SCRIPT_WORKLOADS.flatMap((w) => PIPELINES.map((p) => cmd(w, p))),
    '```',
    '',
    `Every workload is measured ${options.runs} time${options.runs === 1 ? '' : 's'} per server (redis-benchmark with ${fmtInt(options.requests)} requests); ` +
      'the servers take turns and their order flips every run, so machine noise hits all. Reported numbers are medians; ratios are raftlock median / redis-server median.',
  ];
}

/** The native EVALSHA target's verdict at each pipeline depth. */
function targetLine(samples: Samples): string {
  const verdicts = PIPELINES.map((p) => {
    const ratio = scriptRatio(samples, 'native', p);
    return `-P ${p}: ${fmtRatio(ratio)}, ${Number.isFinite(ratio) && ratio >= NATIVE_TARGET ? 'met' : 'missed'}`;
  });
  return `Target: native EVALSHA ≥ ${NATIVE_TARGET}× in-memory redis-server — ${verdicts.join('; ')}.`;
}

function resultsMarkdown(samples: Samples, options: Options, invocation: string, releaseSha: string): string {
  return [
    '# redlock against raftlock and redis-server',
    '',
    `Produced by \`${invocation}\` (\`npm run bench:redlock\` runs \`npm run build && node dist/bench/redlock.js\`) on ${new Date().toISOString()}.`,
    '',
    ...machineSection(),
    '',
    ...methodSection(options, releaseSha),
    '',
    '## Redlock acquire+release cycles (medians)',
    '',
    CYCLE_HEADER,
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...cycleRows(samples),
    '',
    '## EVALSHA of the release script and EVAL through the Lua VM, redis-benchmark -c 50 (medians)',
    '',
    SCRIPT_HEADER,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...scriptRows(samples),
    '',
    targetLine(samples),
    '',
    '## Every run',
    '',
    ...everyRunRows(samples, options.runs),
    '',
    ...exclusionNotes(samples),
  ].join('\n') + '\n';
}

function preflight(): void {
  const problems = missingTools(['redis-server', 'redis-benchmark']).map((m) => `${m} is missing`);
  if (!existsSync(RAFTLOCK_MAIN)) problems.push(`${RAFTLOCK_MAIN} does not exist: run npm run build (npm run bench:redlock builds first)`);
  if (problems.length > 0) throw new Error(problems.join('\n'));
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv);
  preflight();
  const release = releaseScript();
  const invocation = `node dist/bench/redlock.js ${process.argv.slice(2).join(' ')}`.trim();
  console.log(`${options.runs} run(s): ${LOCK_CLIENTS.length} redlock clients × ${SERVERS.length} servers for ${options.seconds} s each, ` +
    `then ${SCRIPT_WORKLOADS.length} script workloads × ${PIPELINES.length} pipeline depths × ${SCRIPT_SERVERS.length} servers of ${options.requests} requests`);
  const started: ServerProcess[] = [];
  let cluster: ProcessCluster | undefined;
  const stopAll = (): Promise<unknown> => Promise.all([...started.map((s) => s.stop()), cluster?.close()]);
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  process.once('SIGTERM', () => void stopAll().then(() => process.exit(143)));
  const samples: Samples = { cycles: new Map(), scripts: new Map() };
  try {
    const start = async (server: Promise<ServerProcess>): Promise<ServerProcess> => {
      const s = await server;
      started.push(s);
      return s;
    };
    const single = await start(startRaftlock());
    const redis = await start(startRedisServer());
    const redisFsync = await start(startRedisServer({ extraArgs: ['--appendonly', 'yes', '--appendfsync', 'always'] }));
    cluster = await ProcessCluster.start({ nodes: NODES, partitions: PARTITIONS });
    const ctx: Context = { options, single, cluster, redis, redisFsync };
    console.log(`raftlock on port ${single.port}, cluster ${TARGET_NODE} on ${cluster.node(TARGET_NODE).port}, redis-server on ${redis.port}, redis-server (fsync always) on ${redisFsync.port}`);
    await loadScript(ctx, release);
    for (let run = 1; run <= options.runs; run++) await measureRun(ctx, run, release.hash, samples);
  } finally {
    await stopAll();
  }
  console.log(['', CYCLE_HEADER, ...cycleRows(samples), '', SCRIPT_HEADER, ...scriptRows(samples), '', targetLine(samples)].join('\n'));
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, resultsMarkdown(samples, options, invocation, release.hash));
  console.log(`wrote ${relative(process.cwd(), options.out) || options.out}`);
}

main().catch((error: unknown) => {
  console.error(`bench:redlock failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
