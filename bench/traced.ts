// Tracing benchmark: a 3-node raftlock cluster tracing into an in-harness OTLP receiver, loaded
// through one node by redis-benchmark (KLOCK PERSISTENT, KLOCK EPHEMERAL, SET NX PX, GET): the
// throughput and latency redis-benchmark sees next to the span breakdown by stage. Then, tracing
// off, throughput and latency against client count and pipeline depth for raftlock KLOCK PERSISTENT,
// redis-server SET NX PX (appendfsync always) and etcd's put-if-absent with a lease.
// Writes bench/traced/REPORT.md and bench/traced/chart.svg.
// Reproduce: npm run bench:traced   (= npm run build && node dist/bench/traced.js [--quick] ...)
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, relative } from 'node:path';
import { ProcessCluster } from './lib/cluster.js';
import { EtcdCluster, etcdLockTarget, etcdProblem, etcdVersion } from './lib/etcd.js';
import { partitionTags, runProblem, waitEphemeralReady, waitForLeadership } from './lib/leaders.js';
import { closedLoop, errorCount, randomKey } from './lib/load.js';
import { missingTools, RAFTLOCK_MAIN, REPO_ROOT, SERVER_COMMAND, startRedisServer, type ServerProcess } from './lib/proc.js';
import { runRedisBenchmarkOrErrorReply, type BenchmarkSample } from './lib/redis-benchmark.js';
import { otherCpuMeter } from './lib/cpu.js';
import { commandOutput, fmtInt, fmtMs, fmtRatio, loadFact, machineFacts } from './lib/report.js';
import { median } from './lib/stats.js';
import { positiveInt, quickPicker } from './lib/args.js';
import { OtlpReceiver, STAGES, stageBreakdown, traceStructure, type StageStats, type TraceStructure } from './lib/otlp-receiver.js';
import { spansOfWorkload, startTracedCluster, tracingProblem } from './lib/tracing.js';
import { chartSvg, type Panel, type Series } from './lib/chart.js';

const NODES = 3;
/** The node every client connects to; it leads its share of the partitions and forwards the rest. */
const TARGET_NODE = 'n1';
const TRACED_CLIENTS = 50;
const TTL_MS = 30_000;
const OWNER = 'o';
/** Keys are drawn from this many times the requests of a run, so about 95% of the lock requests take a free lock (a write). */
const KEYSPACE_PER_REQUEST = 10;
/** The client count of the pipeline sweep. */
const PIPELINE_SWEEP_CLIENTS = 50;

interface TracedWorkload {
  label: string;
  /** The server span name of its commands. */
  command: string;
  /** The redis-benchmark command for keys under `prefix`. */
  args(prefix: string): string[];
  /** Its keys' prefix (an attempt after the first adds its number, so that it starts on free keys). */
  prefix: string;
  /** The workload whose keys it reads (those of its attempt that counted), instead of its own prefix. */
  readsFrom?: string;
  ephemeral: boolean;
}

const TRACED_WORKLOADS: TracedWorkload[] = [
  { label: 'KLOCK PERSISTENT', command: 'KLOCK', args: (p) => ['KLOCK', `${p}__rand_int__`, OWNER, String(TTL_MS), 'PERSISTENT'], prefix: 'tr:p:', ephemeral: false },
  { label: 'KLOCK EPHEMERAL', command: 'KLOCK', args: (p) => ['KLOCK', `${p}__rand_int__`, OWNER, String(TTL_MS), 'EPHEMERAL'], prefix: 'tr:e:', ephemeral: true },
  { label: 'SET NX PX', command: 'SET', args: (p) => ['SET', `${p}__rand_int__`, 'v', 'NX', 'PX', String(TTL_MS)], prefix: 'tr:s:', ephemeral: false },
  { label: 'GET', command: 'GET', args: (p) => ['GET', `${p}__rand_int__`], prefix: 'tr:g:', readsFrom: 'SET NX PX', ephemeral: false },
];

type System = 'raftlock' | 'redis' | 'etcd';
const SYSTEMS: System[] = ['raftlock', 'redis', 'etcd'];
const SYSTEM_LABEL: Record<System, string> = {
  raftlock: 'raftlock KLOCK PERSISTENT (3 nodes)',
  redis: 'redis-server SET NX PX (appendfsync always)',
  etcd: 'etcd txn put-if-absent with lease (3 members)',
};
const SYSTEM_COLOR: Record<System, string> = { raftlock: '#1f77b4', redis: '#d62728', etcd: '#2ca02c' };

interface Options {
  partitions: number;
  requests: number;
  sampleRatio: number;
  runs: number;
  clients: number[];
  pipelines: number[];
  traced: boolean;
  sweep: boolean;
  quick: boolean;
  /** The fewest requests of a sweep point (the cap is `requests`, a tenth of it for etcd). */
  requestsMin: number;
  out: string;
}

function ratio(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('expected a number from 0 to 1');
  return n;
}

function intList(value: string): number[] {
  const list = value.split(',').map((v) => positiveInt(v.trim()));
  return [...new Set(list)].sort((a, b) => a - b);
}

function parseOptions(argv: string[]): Options {
  const program = new Command()
    .name('npm run bench:traced --')
    .description('traced 3-node raftlock cluster: stage breakdown per workload; then throughput and latency vs clients and pipeline depth against redis-server and etcd')
    .option('--partitions <n>', 'raftlock partitions (Raft groups)', positiveInt, 8)
    .option('--requests <n>', 'requests per traced workload, and the most per sweep point (etcd: a tenth)', positiveInt, 200_000)
    .option('--sample-ratio <r>', 'trace sampling ratio of the traced workloads, 0..1 (--quick: 1)', ratio, 0.01)
    .option('--runs <n>', 'measurements of each sweep point (medians are reported)', positiveInt, 3)
    .option('--clients <list>', 'client counts of the sweep (unpipelined)', intList, [1, 10, 50, 200])
    .option('--pipelines <list>', `pipeline depths of the sweep (${PIPELINE_SWEEP_CLIENTS} clients)`, intList, [1, 4, 16])
    .option('--no-traced', 'skip the traced workloads')
    .option('--no-sweep', 'skip the client and pipeline sweep')
    .option('--quick', 'a short check that everything works: 5000 requests per traced workload at sample ratio 1, one run of at most 3000 requests per sweep point; writes bench/out/traced-quick/')
    .option('--out <dir>', 'where REPORT.md and chart.svg go (default bench/traced)')
    .parse(argv);
  const raw = program.opts<{ partitions: number; requests: number; sampleRatio: number; runs: number; clients: number[]; pipelines: number[]; traced: boolean; sweep: boolean; quick?: boolean; out?: string }>();
  const quick = raw.quick === true;
  const pick = quickPicker(program, quick);
  return {
    partitions: raw.partitions,
    requests: pick('requests', raw.requests, 5000),
    sampleRatio: pick('sampleRatio', raw.sampleRatio, 1),
    runs: pick('runs', raw.runs, 1),
    clients: raw.clients,
    pipelines: raw.pipelines,
    traced: raw.traced,
    sweep: raw.sweep,
    quick,
    requestsMin: quick ? 1000 : 5000,
    out: join(REPO_ROOT, raw.out ?? (quick ? join('bench', 'out', 'traced-quick') : join('bench', 'traced'))),
  };
}

function benchmarkArgs(port: number, clients: number, pipeline: number, requests: number, command: string[]): string[] {
  return [
    '-h', '127.0.0.1', '-p', String(port), '-c', String(clients), '-n', String(requests), '-r', String(requests * KEYSPACE_PER_REQUEST),
    ...(pipeline > 1 ? ['-P', String(pipeline)] : []), '-e', '--csv', '-q', ...command,
  ];
}

const benchmarkTimeoutMs = (requests: number): number => Math.max(120_000, requests * 2);

// ---- Traced workloads -------------------------------------------------------------------------

/** A traced workload whose run does not count (an error reply, a leader change) is run again, at most this many times in all. */
const TRACED_ATTEMPTS = 3;

interface TracedResult {
  workload: TracedWorkload;
  /** The key prefix it ran with. */
  prefix: string;
  /** Why each earlier attempt did not count. */
  retried: string[];
  sample: BenchmarkSample;
  excluded: string | null;
  stages: StageStats[];
  structure: TraceStructure;
  spans: number;
  /** Spans the receiver could not keep (over its limit). */
  dropped: number;
  /** Cores that processes outside this benchmark used during the load. */
  otherCores: number;
}

interface TracedContext {
  cluster: ProcessCluster;
  receiver: OtlpReceiver;
  tags: string[];
  options: Options;
}

/** One traced workload: redis-benchmark through TARGET_NODE, the spans it produced, and whether the run counts. */
async function tracedRun(ctx: TracedContext, workload: TracedWorkload, prefix: string, retried: string[]): Promise<TracedResult> {
  const { cluster, receiver, options } = ctx;
  const port = cluster.node(TARGET_NODE).port;
  const before = await waitForLeadership(cluster, { balanced: true, preferred: true, stableMs: 1000, timeoutMs: 60_000 });
  if (workload.ephemeral) await waitEphemeralReady(port, ctx.tags, 60_000);
  const args = benchmarkArgs(port, TRACED_CLIENTS, 1, options.requests, workload.args(prefix));
  let otherCores = NaN;
  const { result: sample, spans } = await spansOfWorkload(receiver, workload.command, async () => {
    const meter = otherCpuMeter(() => cluster.nodes.map((n) => n.child?.pid));
    const r = await runRedisBenchmarkOrErrorReply(args, benchmarkTimeoutMs(options.requests));
    otherCores = meter.stop();
    return r;
  });
  return {
    workload, prefix, retried: [...retried], sample, excluded: await runProblem(cluster, before, sample.error), stages: stageBreakdown(spans),
    structure: traceStructure(spans), spans: spans.length, dropped: receiver.dropped, otherCores,
  };
}

async function measureTraced(options: Options): Promise<TracedResult[]> {
  const receiver = await OtlpReceiver.start();
  let cluster: ProcessCluster | undefined;
  try {
    cluster = await startTracedCluster({ receiver, sampleRatio: options.sampleRatio, partitions: options.partitions });
    await waitForLeadership(cluster, { balanced: true, preferred: true, stableMs: 2000, timeoutMs: 60_000 });
    const tags = await partitionTags(cluster.node(TARGET_NODE).port, options.partitions, 'p');
    const results: TracedResult[] = [];
    const prefixes = new Map<string, string>();
    for (const workload of TRACED_WORKLOADS) {
      const retried: string[] = [];
      for (let attempt = 1; ; attempt++) {
        const prefix = workload.readsFrom !== undefined ? prefixes.get(workload.readsFrom)! : `${workload.prefix}${attempt > 1 ? `${attempt}:` : ''}`;
        const result = await tracedRun({ cluster, receiver, tags, options }, workload, prefix, retried);
        console.log(`\n${workload.label}${attempt > 1 ? ` (attempt ${attempt})` : ''}: ${fmtInt(result.sample.rps)} rps, p50 ${fmtMs(result.sample.p50Ms)} ms, ` +
          `p99 ${fmtMs(result.sample.p99Ms)} ms (redis-benchmark); ${result.structure.commands} commands traced; other processes ${fmtMs(result.otherCores)} cores` +
          `${result.excluded === null ? '' : `; EXCLUDED: ${result.excluded}`}`);
        console.log(stageRows(result.stages).join('\n'));
        if (result.excluded === null || attempt === TRACED_ATTEMPTS) {
          results.push(result);
          prefixes.set(workload.label, prefix);
          break;
        }
        retried.push(result.excluded);
      }
    }
    return results;
  } finally {
    await cluster?.close();
    await receiver.close();
  }
}

function stageRows(stages: StageStats[]): string[] {
  return ['| stage (span) | spans | p50 ms | p99 ms |', '|---|---:|---:|---:|', ...stages.map((s) => `| ${s.stage} | ${fmtInt(s.count)} | ${fmtMs(s.p50Ms, 3)} | ${fmtMs(s.p99Ms, 3)} |`)];
}

// ---- Sweep ------------------------------------------------------------------------------------

interface Point {
  clients: number;
  pipeline: number;
}

interface SweepRun {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  excluded: string | null;
  /** Cores that processes outside this benchmark used meanwhile (other work on the machine). */
  otherCores: number;
}

/** Runs by `${system}|${clients}|${pipeline}`. */
type SweepSamples = Map<string, SweepRun[]>;
const sweepKey = (system: System, p: Point): string => `${system}|${p.clients}|${p.pipeline}`;

/** The points of the two sweeps: client counts unpipelined, pipeline depths at PIPELINE_SWEEP_CLIENTS. */
function sweepAxes(options: Options): { byClients: Point[]; byPipeline: Point[] } {
  return {
    byClients: options.clients.map((c) => ({ clients: c, pipeline: 1 })),
    byPipeline: options.pipelines.map((p) => ({ clients: PIPELINE_SWEEP_CLIENTS, pipeline: p })),
  };
}

/** Every point to measure, once (the unpipelined point at PIPELINE_SWEEP_CLIENTS is on both axes). */
function sweepPoints(options: Options): Point[] {
  const { byClients, byPipeline } = sweepAxes(options);
  const points = [...byClients, ...byPipeline];
  return points.filter((p, i) => points.findIndex((q) => q.clients === p.clients && q.pipeline === p.pipeline) === i);
}

/** Enough requests for the point to last a few seconds: 1000 per request in flight, within [requestsMin, cap]. */
function sweepRequests(system: System, p: Point, options: Options): number {
  const cap = system === 'etcd' ? Math.max(options.requestsMin, Math.floor(options.requests / 10)) : options.requests;
  return Math.max(options.requestsMin, Math.min(cap, 1000 * p.clients * p.pipeline));
}

interface SweepContext {
  cluster: ProcessCluster;
  redis: ServerProcess;
  etcd: EtcdCluster;
  options: Options;
}

const RAFTLOCK_COMMAND = (prefix: string): string[] => ['KLOCK', `${prefix}__rand_int__`, OWNER, String(TTL_MS), 'PERSISTENT'];
const REDIS_COMMAND = (prefix: string): string[] => ['SET', `${prefix}__rand_int__`, 'v', 'NX', 'PX', String(TTL_MS)];

/** Every process of the systems under test (idle ones too: they heartbeat on the same cores). */
const systemPids = (ctx: SweepContext): (number | undefined)[] => [...ctx.cluster.nodes.map((n) => n.child?.pid), ctx.redis.child.pid, ...ctx.etcd.pids()];

async function sweepRun(ctx: SweepContext, system: System, p: Point, run: number): Promise<SweepRun> {
  const meter = otherCpuMeter(() => systemPids(ctx));
  const result = await sweepMeasure(ctx, system, p, run);
  return { ...result, otherCores: meter.stop() };
}

async function sweepMeasure(ctx: SweepContext, system: System, p: Point, run: number): Promise<Omit<SweepRun, 'otherCores'>> {
  const requests = sweepRequests(system, p, ctx.options);
  const prefix = `s${run}c${p.clients}p${p.pipeline}:`;
  if (system === 'etcd') {
    const target = await etcdLockTarget({ endpoint: ctx.etcd.endpoints[0]!, clients: p.clients, ttlSeconds: TTL_MS / 1000, owner: OWNER });
    try {
      const keyspace = requests * KEYSPACE_PER_REQUEST;
      const result = await closedLoop(target, { concurrency: p.clients, requests, key: () => randomKey(prefix, keyspace) });
      ctx.etcd.assertAlive();
      const errors = errorCount(result.errors);
      return { rps: result.rps, p50Ms: result.latency.p50Ms, p99Ms: result.latency.p99Ms, requests, excluded: errors > 0 ? `${errors} errors, e.g. ${[...result.errors.keys()][0]}` : null };
    } finally {
      await target.close();
    }
  }
  if (system === 'redis') {
    const sample = await runRedisBenchmarkOrErrorReply(benchmarkArgs(ctx.redis.port, p.clients, p.pipeline, requests, REDIS_COMMAND(prefix)), benchmarkTimeoutMs(requests));
    return { ...sample, requests, excluded: sample.error === null ? null : `error replies, e.g. ${sample.error}` };
  }
  const before = await waitForLeadership(ctx.cluster, { balanced: true, preferred: true, stableMs: 1000, timeoutMs: 60_000 });
  const args = benchmarkArgs(ctx.cluster.node(TARGET_NODE).port, p.clients, p.pipeline, requests, RAFTLOCK_COMMAND(prefix));
  const sample = await runRedisBenchmarkOrErrorReply(args, benchmarkTimeoutMs(requests));
  return { ...sample, requests, excluded: await runProblem(ctx.cluster, before, sample.error) };
}

async function measureSweep(options: Options): Promise<SweepSamples> {
  let cluster: ProcessCluster | undefined;
  let redis: ServerProcess | undefined;
  let etcd: EtcdCluster | undefined;
  const samples: SweepSamples = new Map();
  try {
    cluster = await ProcessCluster.start({ nodes: NODES, partitions: options.partitions });
    await waitForLeadership(cluster, { balanced: true, preferred: true, stableMs: 2000, timeoutMs: 60_000 });
    redis = await startRedisServer({ extraArgs: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    etcd = await EtcdCluster.start({ members: NODES });
    const ctx: SweepContext = { cluster, redis, etcd, options };
    const points = sweepPoints(options);
    for (let run = 1; run <= options.runs; run++) {
      for (const [i, p] of points.entries()) {
        // The systems take turns, in an order that rotates with the point and the run, so machine noise hits all.
        const order = SYSTEMS.map((_, k) => SYSTEMS[(k + i + run) % SYSTEMS.length]!).filter((s) => s !== 'etcd' || p.pipeline === 1);
        for (const system of order) {
          const r = await sweepRun(ctx, system, p, run);
          const key = sweepKey(system, p);
          samples.set(key, [...(samples.get(key) ?? []), r]);
          console.log(`sweep run ${run}/${options.runs}  clients ${String(p.clients).padStart(3)}  pipeline ${String(p.pipeline).padStart(2)}  ${system.padEnd(8)} ` +
            `${fmtInt(r.rps).padStart(9)} rps  p50 ${fmtMs(r.p50Ms)} ms  p99 ${fmtMs(r.p99Ms)} ms  (${fmtInt(r.requests)} requests; other processes ${fmtMs(r.otherCores)} cores)${r.excluded === null ? '' : `  EXCLUDED: ${r.excluded}`}`);
        }
      }
    }
    return samples;
  } finally {
    await Promise.all([cluster?.close(), redis?.stop(), etcd?.close()]);
  }
}

interface PointSummary {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  counted: number;
  runs: number;
}

function summarizePoint(samples: SweepSamples, system: System, p: Point): PointSummary {
  const runs = samples.get(sweepKey(system, p)) ?? [];
  const good = runs.filter((r) => r.excluded === null);
  return { rps: median(good.map((r) => r.rps)), p50Ms: median(good.map((r) => r.p50Ms)), p99Ms: median(good.map((r) => r.p99Ms)), counted: good.length, runs: runs.length };
}

// ---- Report -----------------------------------------------------------------------------------


function tracedSection(results: TracedResult[], options: Options): string[] {
  const lines = [
    '## Where the time goes: traced workloads',
    '',
    `redis-benchmark with ${TRACED_CLIENTS} connections to ${TARGET_NODE}, unpipelined, ${fmtInt(options.requests)} requests per workload, keys drawn from ` +
      `${fmtInt(options.requests * KEYSPACE_PER_REQUEST)} (\`-r\`), all ${NODES} nodes tracing with \`--trace --trace-sample-ratio ${options.sampleRatio}\`. ` +
      'Throughput and latency are redis-benchmark\'s, for all requests; the stages are the spans of the sampled commands, received by the harness\'s OTLP receiver. ' +
      `"${'server (entry node)'}" is the server span on ${TARGET_NODE} (the whole command as the node the client hit saw it, forwarding included); ` +
      '"server (leader, forwarded)" the leader\'s server span of a command another node forwarded to it; `forward` the entry node waiting for the leader; ' +
      '`raft.commit` propose to commit (a quorum has the entry fsync\'d); `wal.fsync` the log write and fdatasync holding the entry; `apply` the state machine; ' +
      '`reply.write` the reply handed to the socket. "other processes, cores" is the CPU that processes outside this benchmark used during the workload ' +
      '(other work on the machine; 0.00: none). A workload whose run does not count (an error reply, or a partition changed leader or term during it; ' +
      `redis-benchmark stops at the first error reply) is run again on fresh keys, up to ${TRACED_ATTEMPTS} attempts; GET reads the keys of the SET NX PX run that counted.`,
    '',
    '| workload | requests/s | p50 ms | p99 ms | commands traced | spans | other processes, cores | run |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...results.map((r) => `| ${r.workload.label} | ${fmtInt(r.sample.rps)} | ${fmtMs(r.sample.p50Ms)} | ${fmtMs(r.sample.p99Ms)} | ${fmtInt(r.structure.commands)} | ${fmtInt(r.spans)} | ${fmtMs(r.otherCores)} | ` +
      `${r.excluded === null ? 'counted' : `did not count: ${r.excluded}`}${r.retried.length === 0 ? '' : ` (after ${r.retried.length} attempt(s) that did not: ${r.retried.join('; ')})`} |`),
    '',
  ];
  for (const r of results) {
    lines.push(`### ${r.workload.label}`, '', '```sh', `redis-benchmark ${benchmarkArgs(0, TRACED_CLIENTS, 1, options.requests, r.workload.args(r.prefix)).join(' ').replace('-p 0', '-p P')}`, '```', '',
      ...stageRows(r.stages), '');
    if (r.dropped > 0) lines.push(`The receiver kept only the first spans: ${fmtInt(r.dropped)} more were counted and dropped.`, '');
  }
  lines.push(
    '### Trace structure',
    '',
    'Per workload: the sampled commands (root server spans), how many of their traces hold each child stage, the traces that cross the peer hop ' +
      '(a `forward` span on the entry node whose child server span came from another node), and spans whose parent never arrived.',
    '',
    `| workload | commands | ${STAGES.join(' | ')} | crossing nodes | orphan spans |`,
    `|---|---:|${STAGES.map(() => '---:|').join('')}---:|---:|`,
    ...results.map((r) => `| ${r.workload.label} | ${fmtInt(r.structure.commands)} | ${STAGES.map((s) => fmtInt(r.structure.withStage[s] ?? 0)).join(' | ')} | ` +
      `${fmtInt(r.structure.crossNode)} | ${fmtInt(r.structure.orphans)} |`),
    '',
  );
  return lines;
}

function sweepTable(samples: SweepSamples, points: Point[], axis: 'clients' | 'pipeline'): string[] {
  const withEtcd = axis === 'clients';
  const systems = SYSTEMS.filter((s) => withEtcd || s !== 'etcd');
  const header = `| ${axis === 'clients' ? 'clients' : 'pipeline'} | ${systems.map((s) => `${s} rps | ${s} p50 ms | ${s} p99 ms`).join(' | ')} | raftlock / redis | ${withEtcd ? 'raftlock / etcd | ' : ''}runs counted (${systems.join(', ')}) | other processes, cores (most) |`;
  const rows = points.map((p) => {
    const sum = Object.fromEntries(systems.map((s) => [s, summarizePoint(samples, s, p)])) as Record<System, PointSummary>;
    return `| ${axis === 'clients' ? p.clients : p.pipeline} | ${systems.map((s) => `${fmtInt(sum[s].rps)} | ${fmtMs(sum[s].p50Ms)} | ${fmtMs(sum[s].p99Ms)}`).join(' | ')} | ` +
      `${fmtRatio(sum.raftlock.rps / sum.redis.rps)} | ${withEtcd ? `${fmtRatio(sum.raftlock.rps / sum.etcd.rps)} | ` : ''}${systems.map((s) => `${sum[s].counted}/${sum[s].runs}`).join(', ')} | ` +
      `${fmtMs(Math.max(...systems.flatMap((s) => (samples.get(sweepKey(s, p)) ?? []).map((r) => r.otherCores))))} |`;
  });
  return [header, `|---|${systems.map(() => '---:|---:|---:|').join('')}---:|${withEtcd ? '---:|' : ''}---|---:|`, ...rows];
}

function sweepSection(samples: SweepSamples, options: Options): string[] {
  const { byClients, byPipeline } = sweepAxes(options);
  const notes = [...samples.entries()].flatMap(([key, runs]) => runs.flatMap((r, i) => (r.excluded === null ? [] : [`- ${key.replace(/\|/g, ', ')}, run ${i + 1}: ${r.excluded}`])));
  const example = { clients: PIPELINE_SWEEP_CLIENTS, pipeline: 16 };
  return [
    '## Throughput and latency against clients and pipeline depth (tracing off)',
    '',
    `raftlock: a fresh ${NODES}-node cluster without \`--trace\`, ${options.partitions} partitions, every connection to ${TARGET_NODE}. ` +
      'redis-server: Debian\'s, `redis-server --port P --bind 127.0.0.1 --dir <tmp> --save \'\' --appendonly yes --appendfsync always` ' +
      '(fsync before every reply that wrote, like raftlock\'s PERSISTENT writes and bench/run.ts\'s durable baseline). ' +
      `etcd: ${NODES} members (${etcdVersion().replace('etcd Version: ', 'etcd ')}, bench/lib/etcd.ts), the transaction ` +
      '`Txn(If(createRevision(key) = 0), Then(Put(key, "o", lease)), Else(Range(key)))` from the `etcd3` client, one gRPC connection and lease per client, ' +
      'one request in flight per client (the closed loop of bench/lib/load.ts). raftlock and etcd acknowledge a write once a majority of 3 has it fsync\'d; ' +
      'redis-server is one process that fsyncs its own AOF and replicates to nobody: the upper bound of one durable node, not a like-for-like replicated system.',
    '',
    `Each point is measured ${options.runs} time(s); the systems take turns in an order that rotates every point and run. All three stay up during the sweep on ` +
      'the same cores. Requests per point: 1000 per request in flight (clients × pipeline), at least ' +
      `${fmtInt(options.requestsMin)}, at most ${fmtInt(options.requests)} (etcd: ${fmtInt(Math.max(options.requestsMin, Math.floor(options.requests / 10)))}, it is ~10× slower); ` +
      `keys are drawn from ${KEYSPACE_PER_REQUEST}× the requests under a fresh prefix per run, so about 95% of the requests take a free lock (a durable write) on every system. ` +
      'Medians over the runs that count (a raftlock run does not count if a partition changed leader or term or an error reply came back; any system\'s run with errors does not count). ' +
      '"other processes, cores" is the most CPU that processes outside this benchmark (other work on the machine) used during any run of the point, from /proc/stat less ' +
      'the benchmark\'s own processes: 0.00 means the machine ran nothing else, and the larger it is, the less the numbers of that point can be trusted.',
    '',
    'Example (50 clients, pipeline 16; P = the port, the prefix changes per run):',
    '',
    '```sh',
    `redis-benchmark ${benchmarkArgs(0, example.clients, example.pipeline, sweepRequests('raftlock', example, options), RAFTLOCK_COMMAND('s1c50p16:')).join(' ').replace('-p 0', '-p P')}`,
    `redis-benchmark ${benchmarkArgs(0, example.clients, example.pipeline, sweepRequests('redis', example, options), REDIS_COMMAND('s1c50p16:')).join(' ').replace('-p 0', '-p P')}`,
    '```',
    '',
    '### Against client count (no pipelining)',
    '',
    ...sweepTable(samples, byClients, 'clients'),
    '',
    `### Against pipeline depth (${PIPELINE_SWEEP_CLIENTS} clients)`,
    '',
    'etcd has no counterpart of RESP pipelining (its gRPC client has one request per call; more in flight means more calls, which the client-count table shows), so it is not in this table.',
    '',
    ...sweepTable(samples, byPipeline, 'pipeline'),
    '',
    ...(notes.length === 0 ? ['No sweep run was excluded.'] : ['Runs left out of the medians:', '', ...notes]),
    '',
    '![throughput and p99 latency against clients and pipeline depth](chart.svg)',
    '',
  ];
}

function chart(samples: SweepSamples, options: Options): string {
  const series = (systems: System[], points: Point[], x: (p: Point) => number, y: (s: PointSummary) => number): Series[] =>
    systems.map((s) => ({ label: SYSTEM_LABEL[s], color: SYSTEM_COLOR[s], points: points.map((p) => ({ x: x(p), y: y(summarizePoint(samples, s, p)) })) }));
  const { byClients, byPipeline } = sweepAxes(options);
  const noEtcd = 'etcd: no pipelining (see the clients panels)';
  const panels: Panel[] = [
    { title: 'Throughput vs clients (no pipelining)', xLabel: 'clients', yLabel: 'requests/s', xLog: true, yLog: true, series: series(SYSTEMS, byClients, (p) => p.clients, (s) => s.rps) },
    { title: 'p99 latency vs clients (no pipelining)', xLabel: 'clients', yLabel: 'p99 ms', xLog: true, yLog: true, series: series(SYSTEMS, byClients, (p) => p.clients, (s) => s.p99Ms) },
    { title: `Throughput vs pipeline depth (${PIPELINE_SWEEP_CLIENTS} clients)`, xLabel: 'pipeline depth', yLabel: 'requests/s', xLog: true, yLog: true, series: series(['raftlock', 'redis'], byPipeline, (p) => p.pipeline, (s) => s.rps), note: noEtcd },
    { title: `p99 latency vs pipeline depth (${PIPELINE_SWEEP_CLIENTS} clients)`, xLabel: 'pipeline depth', yLabel: 'p99 ms', xLog: true, yLog: true, series: series(['raftlock', 'redis'], byPipeline, (p) => p.pipeline, (s) => s.p99Ms), note: noEtcd },
  ];
  return chartSvg({ title: `raftlock vs redis-server vs etcd on ${commandOutput('nproc', [])} cores (medians of ${options.runs} run(s))`, panels, columns: 2 });
}

function report(traced: TracedResult[] | null, sweep: SweepSamples | null, options: Options, run: { invocation: string; startLoad: number }): string {
  return [
    '# Traced raftlock: stage breakdown, and throughput and latency against clients and pipeline depth',
    '',
    `Produced by \`${run.invocation}\` (\`npm run bench:traced\` runs \`npm run build && node dist/bench/traced.js\`) on ${new Date().toISOString()}.`,
    '',
    '## Machine',
    '',
    ...machineFacts([
      { name: 'redis-server', version: commandOutput('redis-server', ['--version']) },
      { name: 'redis-benchmark', version: commandOutput('redis-benchmark', ['--version']) },
      { name: 'etcd', version: etcdVersion().replace('etcd Version: ', '') },
    ]),
    loadFact(run.startLoad),
    '',
    `Everything runs on these ${commandOutput('nproc', [])} cores: the ${NODES} raftlock nodes, redis-server, the ${NODES} etcd members, redis-benchmark, the Node.js etcd client ` +
      'and (traced workloads) the harness\'s OTLP receiver. A production cluster has a machine per node; these numbers compare the systems here, not on their own hardware.',
    '',
    `raftlock: \`${SERVER_COMMAND} --node-id nI --port P --http-port 0 --cluster-port C --peers n1=...,n2=...,n3=... --data-dir <tmp> --partitions ${options.partitions}\` ` +
      '(bench/lib/cluster.ts); traced nodes add `--trace --trace-sample-ratio R` and export with the OpenTelemetry SDK\'s OTLP exporter, configured by ' +
      '`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:<receiver> OTEL_EXPORTER_OTLP_PROTOCOL=http/json OTEL_SERVICE_NAME=raftlock OTEL_BSP_SCHEDULE_DELAY=200 ' +
      'OTEL_BSP_MAX_QUEUE_SIZE=65536 OTEL_BSP_MAX_EXPORT_BATCH_SIZE=4096 OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none` (bench/lib/tracing.ts). ' +
      'Before each raftlock measurement the harness waits until the nodes agree on the leaders, every partition is led by its preferred node ' +
      '(leadership is balanced and no transfer is pending) and that has held for 1 s.',
    '',
    ...(traced === null ? ['The traced workloads were skipped (`--no-traced`).', ''] : tracedSection(traced, options)),
    ...(sweep === null ? ['The sweep was skipped (`--no-sweep`).', ''] : sweepSection(sweep, options)),
  ].join('\n');
}

function preflight(options: Options): void {
  const problems = missingTools(['redis-benchmark', ...(options.sweep ? ['redis-server'] : [])]).map((m) => `${m} is missing`);
  if (options.sweep) {
    const etcd = etcdProblem();
    if (etcd !== null) problems.push(etcd);
  }
  if (!existsSync(RAFTLOCK_MAIN)) problems.push(`${RAFTLOCK_MAIN} does not exist: run npm run build (npm run bench:traced builds first)`);
  else if (options.traced) {
    const tracing = tracingProblem();
    if (tracing !== null) problems.push(`${tracing}; the traced workloads need it (--no-traced runs the sweep alone)`);
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv);
  preflight(options);
  const invocation = `node dist/bench/traced.js ${process.argv.slice(2).join(' ')}`.trim();
  const startLoad = loadavg()[0]!;
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  const traced = options.traced ? await measureTraced(options) : null;
  const sweep = options.sweep ? await measureSweep(options) : null;
  if (sweep !== null) {
    const { byClients, byPipeline } = sweepAxes(options);
    console.log(['', ...sweepTable(sweep, byClients, 'clients'), '', ...sweepTable(sweep, byPipeline, 'pipeline')].join('\n'));
  }
  mkdirSync(options.out, { recursive: true });
  writeFileSync(join(options.out, 'REPORT.md'), report(traced, sweep, options, { invocation, startLoad }));
  if (sweep !== null) writeFileSync(join(options.out, 'chart.svg'), chart(sweep, options));
  console.log(`\nwrote ${relative(process.cwd(), options.out) || options.out}/REPORT.md${sweep === null ? '' : ' and chart.svg'}`);
}

main().catch((error: unknown) => {
  console.error(`bench:traced failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
