// Cluster benchmark: a 3-node raftlock cluster on this machine, loaded through one node by
// redis-benchmark (KLOCK PERSISTENT and EPHEMERAL), against a 3-member etcd cluster doing the same
// put-if-absent with a lease as one transaction, in the same run; then latency at half the peak
// throughput with an open-loop generator. Also measures KLOCK from a cluster-aware client
// (redis-benchmark --cluster), which sends each key straight to its partition's leader.
// Writes the "cluster" section of bench/RESULTS-cluster.md.
// Reproduce: npm run bench:cluster   (= npm run build && node dist/bench/cluster.js [--runs N] ...)
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ProcessCluster } from './lib/cluster.js';
import { EtcdCluster, etcdLockTarget, etcdProblem, etcdVersion } from './lib/etcd.js';
import { partitionTags, runProblem, waitEphemeralReady, waitForLeadership, type Leadership } from './lib/leaders.js';
import { closedLoop, errorCount, medianLatency, openLoop, raftlockLockTarget, randomKey, type LatencySummary, type LockTarget, type OpenLoopResult } from './lib/load.js';
import { missingTools, RAFTLOCK_MAIN, REPO_ROOT, SERVER_COMMAND } from './lib/proc.js';
import { runRedisBenchmark } from './lib/redis-benchmark.js';
import { cpuMeter, exitedChildrenCpuSeconds } from './lib/cpu.js';
import { commandOutput, fmtInt, fmtMs, fmtRatio, machineFacts, writeSection } from './lib/report.js';
import { median } from './lib/stats.js';
import { positiveInt, quickPicker } from './lib/args.js';

const NODES = 3;
const CLIENTS = 50;
const PIPELINE = 16;
const KEYSPACE = 100_000;
const TTL_MS = 30_000;
const OWNER = 'o';
/** The node every client connects to; it leads its share of the partitions and forwards the rest. */
const TARGET_NODE = 'n1';

type Mode = 'PERSISTENT' | 'EPHEMERAL';
/** PERSISTENT and EPHEMERAL go through one node; the -direct ones come from a cluster-aware client. */
type Workload = Mode | 'etcd' | 'PERSISTENT-direct' | 'EPHEMERAL-direct';
const WORKLOADS: Workload[] = ['PERSISTENT', 'EPHEMERAL', 'etcd', 'PERSISTENT-direct', 'EPHEMERAL-direct'];
/** The workloads of the issue's setup, also measured for latency at half their peak. */
const MAIN_WORKLOADS: (Mode | 'etcd')[] = ['PERSISTENT', 'EPHEMERAL', 'etcd'];
const LABEL: Record<Workload, string> = {
  PERSISTENT: 'raftlock KLOCK PERSISTENT',
  EPHEMERAL: 'raftlock KLOCK EPHEMERAL',
  etcd: 'etcd txn put-if-absent with lease',
  'PERSISTENT-direct': 'raftlock KLOCK PERSISTENT, cluster-aware client',
  'EPHEMERAL-direct': 'raftlock KLOCK EPHEMERAL, cluster-aware client',
};
const modeOf = (w: Exclude<Workload, 'etcd'>): Mode => (w === 'PERSISTENT' || w === 'PERSISTENT-direct' ? 'PERSISTENT' : 'EPHEMERAL');
const direct = (w: Workload): boolean => w.endsWith('-direct');
/** The issue's targets: throughput in requests/s, and the ratio to etcd. */
const TARGET_RPS: Partial<Record<Workload, number>> = { PERSISTENT: 40_000, EPHEMERAL: 150_000 };
const TARGET_RATIO = 3;

interface Options {
  partitions: number;
  runs: number;
  requests: number;
  latencySeconds: number;
  latencyRuns: number;
  warmupSeconds: number;
  out: string;
  quick: boolean;
}

interface Run {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Why this run is left out of the medians (errors, a leader change), or null. */
  excluded: string | null;
  /** Cores the three server processes used during the run (1.0 = one core busy). */
  serverCores: number;
  /** Cores the load generator used: redis-benchmark, or the Node.js etcd client. */
  generatorCores: number;
}

interface LatencyRun {
  result: OpenLoopResult;
  serverCores: number;
  excluded: string | null;
}

function parseOptions(argv: string[]): Options {
  const program = new Command()
    .name('npm run bench:cluster --')
    .description('3-node raftlock cluster vs 3-member etcd cluster on this machine; writes bench/RESULTS-cluster.md')
    .option('--partitions <n>', 'raftlock partitions (Raft groups)', positiveInt, 8)
    .option('--runs <n>', 'throughput measurements of each workload (medians are reported)', positiveInt, 5)
    .option('--requests <n>', 'requests per throughput measurement (redis-benchmark -n; the same for etcd)', positiveInt, 200_000)
    .option('--latency-seconds <n>', 'measured length of each open-loop latency run', positiveInt, 10)
    .option('--latency-runs <n>', 'open-loop latency runs of each workload', positiveInt, 3)
    .option('--quick', 'a short check that everything works: 1 run of 20000 requests, 3 s latency runs; writes bench/out/RESULTS-cluster-quick.md')
    .option('--out <file>', 'results file (default bench/RESULTS-cluster.md)')
    .parse(argv);
  const raw = program.opts<{ partitions: number; runs: number; requests: number; latencySeconds: number; latencyRuns: number; quick?: boolean; out?: string }>();
  const quick = raw.quick === true;
  const pick = quickPicker(program, quick);
  return {
    partitions: raw.partitions,
    runs: pick('runs', raw.runs, 1),
    requests: pick('requests', raw.requests, 20_000),
    latencySeconds: pick('latencySeconds', raw.latencySeconds, 3),
    latencyRuns: pick('latencyRuns', raw.latencyRuns, 1),
    warmupSeconds: quick ? 1 : 2,
    out: join(REPO_ROOT, raw.out ?? (quick ? join('bench', 'out', 'RESULTS-cluster-quick.md') : join('bench', 'RESULTS-cluster.md'))),
    quick,
  };
}

/**
 * With cluster, redis-benchmark reads the slot map (CLUSTER SLOTS), spreads its clients over the
 * nodes that lead partitions, and replaces {tag} in each key by a hash tag of a slot its node leads.
 */
function redisBenchmarkArgs(port: number, mode: Mode, prefix: string, options: Options, cluster = false): string[] {
  return [
    ...(cluster ? ['--cluster'] : []),
    '-h', '127.0.0.1', '-p', String(port), '-c', String(CLIENTS), '-n', String(options.requests), '-r', String(KEYSPACE),
    '-P', String(PIPELINE), '-e', '--csv', '-q', 'KLOCK', `${prefix}${cluster ? '{tag}:' : ''}__rand_int__`, OWNER, String(TTL_MS), mode,
  ];
}

interface Context {
  cluster: ProcessCluster;
  etcd: EtcdCluster;
  tags: string[];
  options: Options;
}

/** Waits for balanced, stable leaders (and EPHEMERAL readiness); returns them to compare after the run. */
async function beforeRaftlockRun(ctx: Context, mode: Mode): Promise<Leadership> {
  const leadership = await waitForLeadership(ctx.cluster, { balanced: true, preferred: true, stableMs: 1000, timeoutMs: 60_000 });
  if (mode === 'EPHEMERAL') await waitEphemeralReady(ctx.cluster.node(TARGET_NODE).port, ctx.tags, 60_000);
  return leadership;
}

const raftlockPids = (ctx: Context): (number | undefined)[] => ctx.cluster.nodes.map((n) => n.child?.pid);

async function throughputRun(ctx: Context, workload: Workload, run: number): Promise<Run> {
  const prefix = `t${run}${workload[0]!.toLowerCase()}${direct(workload) ? 'd' : ''}:`;
  if (workload === 'etcd') {
    const target = await etcdLockTarget({ endpoint: ctx.etcd.endpoints[0]!, clients: CLIENTS, ttlSeconds: TTL_MS / 1000, owner: OWNER });
    try {
      const meter = cpuMeter(() => ctx.etcd.pids());
      const result = await closedLoop(target, { concurrency: CLIENTS * PIPELINE, requests: ctx.options.requests, key: () => randomKey(prefix, KEYSPACE) });
      const serverCores = meter.stop();
      ctx.etcd.assertAlive();
      const errors = errorCount(result.errors);
      return {
        rps: result.rps, p50Ms: result.latency.p50Ms, p99Ms: result.latency.p99Ms, serverCores, generatorCores: result.generatorCores,
        excluded: errors > 0 ? `${errors} errors, e.g. ${[...result.errors.keys()][0]}` : null,
      };
    } finally {
      await target.close();
    }
  }
  const mode = modeOf(workload);
  const before = await beforeRaftlockRun(ctx, mode);
  const args = redisBenchmarkArgs(ctx.cluster.node(TARGET_NODE).port, mode, prefix, ctx.options, direct(workload));
  const meter = cpuMeter(() => raftlockPids(ctx));
  const childrenBefore = exitedChildrenCpuSeconds();
  const startedAt = performance.now();
  const sample = await runRedisBenchmark(args, Math.max(120_000, ctx.options.requests * 2));
  const serverCores = meter.stop();
  const generatorCores = (exitedChildrenCpuSeconds() - childrenBefore) / ((performance.now() - startedAt) / 1000);
  return { rps: sample.rps, p50Ms: sample.p50Ms, p99Ms: sample.p99Ms, serverCores, generatorCores, excluded: await runProblem(ctx.cluster, before, sample.error) };
}

type Samples = Record<Workload, Run[]>;

async function measureThroughput(ctx: Context): Promise<Samples> {
  const samples: Samples = { PERSISTENT: [], EPHEMERAL: [], etcd: [], 'PERSISTENT-direct': [], 'EPHEMERAL-direct': [] };
  for (let run = 1; run <= ctx.options.runs; run++) {
    const order = run % 2 === 1 ? WORKLOADS : [...WORKLOADS].reverse();
    for (const workload of order) {
      const result = await throughputRun(ctx, workload, run);
      samples[workload].push(result);
      const cores = `  cores: servers ${result.serverCores.toFixed(2)}, generator ${result.generatorCores.toFixed(2)}`;
      console.log(`throughput run ${run}/${ctx.options.runs}  ${LABEL[workload].padEnd(48)} ${fmtInt(result.rps).padStart(9)} rps  p50 ${result.p50Ms.toFixed(2)} ms${cores}${result.excluded === null ? '' : `  EXCLUDED: ${result.excluded}`}`);
    }
  }
  return samples;
}

const counted = (runs: Run[]): Run[] => runs.filter((r) => r.excluded === null);

/** The median throughput of the runs that count, NaN if none does. */
function medianRps(runs: Run[]): number {
  return median(counted(runs).map((r) => r.rps));
}

async function latencyRun(ctx: Context, workload: Mode | 'etcd', rate: number, run: number): Promise<LatencyRun> {
  const prefix = `l${run}${workload[0]!.toLowerCase()}:`;
  const load = { ratePerSec: rate, durationMs: ctx.options.latencySeconds * 1000, warmupMs: ctx.options.warmupSeconds * 1000, key: () => randomKey(prefix, KEYSPACE) };
  let target: LockTarget;
  let before: Leadership | null = null;
  if (workload === 'etcd') {
    target = await etcdLockTarget({ endpoint: ctx.etcd.endpoints[0]!, clients: CLIENTS, ttlSeconds: TTL_MS / 1000, owner: OWNER });
  } else {
    before = await beforeRaftlockRun(ctx, workload);
    target = await raftlockLockTarget({ port: ctx.cluster.node(TARGET_NODE).port, connections: CLIENTS, owner: OWNER, ttlMs: TTL_MS, mode: workload });
  }
  try {
    const meter = cpuMeter(() => (workload === 'etcd' ? ctx.etcd.pids() : raftlockPids(ctx)));
    const result = await openLoop(target, load);
    const serverCores = meter.stop();
    const errors = errorCount(result.errors);
    const firstError = errors > 0 ? [...result.errors.keys()][0]! : null;
    let excluded: string | null;
    if (before !== null) excluded = await runProblem(ctx.cluster, before, firstError);
    else {
      ctx.etcd.assertAlive();
      excluded = firstError === null ? null : `${errors} errors, e.g. ${firstError}`;
    }
    if (excluded === null && result.unanswered > 0) excluded = `${result.unanswered} requests unanswered`;
    return { result, serverCores, excluded };
  } finally {
    await target.close();
  }
}

async function measureLatency(ctx: Context, peaks: Record<Workload, number>): Promise<Record<Workload, LatencyRun[]>> {
  const runs: Record<Workload, LatencyRun[]> = { PERSISTENT: [], EPHEMERAL: [], etcd: [], 'PERSISTENT-direct': [], 'EPHEMERAL-direct': [] };
  for (let run = 1; run <= ctx.options.latencyRuns; run++) {
    const order = run % 2 === 1 ? MAIN_WORKLOADS : [...MAIN_WORKLOADS].reverse();
    for (const workload of order) {
      if (!Number.isFinite(peaks[workload])) continue;
      const rate = Math.round(peaks[workload] / 2);
      const r = await latencyRun(ctx, workload, rate, run);
      runs[workload].push(r);
      const l = r.result.latency;
      console.log(
        `latency run ${run}/${ctx.options.latencyRuns}  ${LABEL[workload].padEnd(34)} at ${fmtInt(rate)}/s (sent ${fmtInt(r.result.sentRate)}/s): ` +
          `p50 ${l.p50Ms.toFixed(2)} ms  p99 ${l.p99Ms.toFixed(2)} ms  max ${l.maxMs.toFixed(1)} ms  cores: servers ${r.serverCores.toFixed(2)}, generator ${r.result.generatorCores.toFixed(2)}` +
          (r.excluded === null ? '' : `  EXCLUDED: ${r.excluded}`),
      );
    }
  }
  return runs;
}

const fmtCores = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');
const verdict = (met: boolean | null): string => (met === null ? 'n/a' : met ? 'met' : 'missed');

interface Summary {
  samples: Samples;
  peaks: Record<Workload, number>;
  latency: Record<Workload, LatencyRun[]>;
}

const THROUGHPUT_HEADER = '| workload | requests/s | p50 ms | p99 ms | vs etcd | server cores | generator cores | runs counted | targets (issue) |';
const LATENCY_HEADER = '| workload | rate asked/s | sent/s | p50 ms | p99 ms | p99.9 ms | max ms | lag ms | server cores | generator cores | runs counted |';

function throughputRows(s: Summary): string[] {
  return WORKLOADS.map((w) => {
    const runs = counted(s.samples[w]);
    const ratio = w === 'etcd' ? NaN : s.peaks[w] / s.peaks.etcd;
    const rpsTarget = TARGET_RPS[w];
    let targets = '—';
    if (direct(w)) targets = 'not the issue\'s setup (its targets are for clients of one node, above)';
    else if (w !== 'etcd') {
      targets = `≥ ${fmtInt(rpsTarget!)} rps: ${verdict(Number.isFinite(s.peaks[w]) ? s.peaks[w] >= rpsTarget! : null)}; ` +
        `≥ ${TARGET_RATIO}× etcd: ${verdict(Number.isFinite(ratio) ? ratio >= TARGET_RATIO : null)}`;
    }
    return `| ${LABEL[w]} | ${fmtInt(s.peaks[w])} | ${fmtMs(median(runs.map((r) => r.p50Ms)))} | ${fmtMs(median(runs.map((r) => r.p99Ms)))} | ` +
      `${w === 'etcd' ? '1×' : fmtRatio(ratio)} | ${fmtCores(median(runs.map((r) => r.serverCores)))} | ${fmtCores(median(runs.map((r) => r.generatorCores)))} | ` +
      `${runs.length}/${s.samples[w].length} | ${targets} |`;
  });
}

function latencyRows(s: Summary): string[] {
  return WORKLOADS.filter((w) => s.latency[w].length > 0).map((w) => {
    const all = s.latency[w];
    const counting = all.filter((r) => r.excluded === null);
    const good = counting.map((r) => r.result);
    const l: LatencySummary = medianLatency(good.map((r) => r.latency));
    return `| ${LABEL[w]} | ${fmtInt(all[0]!.result.targetRate)} | ${fmtInt(median(good.map((r) => r.sentRate)))} | ${fmtMs(l.p50Ms)} | ${fmtMs(l.p99Ms)} | ` +
      `${fmtMs(l.p999Ms)} | ${fmtMs(l.maxMs)} | ${fmtMs(median(good.map((r) => r.scheduleLagMaxMs)))} | ${fmtCores(median(counting.map((r) => r.serverCores)))} | ` +
      `${fmtCores(median(good.map((r) => r.generatorCores)))} | ${good.length}/${all.length} |`;
  });
}

function everyRunRows(s: Summary, runs: number): string[] {
  const rows = WORKLOADS.map((w) => `| ${LABEL[w]} | ${s.samples[w].map((r) => `${fmtInt(r.rps)}${r.excluded === null ? '' : ' (excluded)'}`).join(' | ')} | ${fmtInt(s.peaks[w])} |`);
  return [`| workload | ${Array.from({ length: runs }, (_, i) => `run ${i + 1}`).join(' | ')} | median |`, `|---|${'---:|'.repeat(runs + 1)}`, ...rows];
}

function exclusionNotes(s: Summary): string[] {
  const notes: string[] = [];
  for (const w of WORKLOADS) {
    s.samples[w].forEach((r, i) => r.excluded !== null && notes.push(`- ${LABEL[w]}, throughput run ${i + 1}: ${r.excluded}`));
    s.latency[w].forEach((r, i) => r.excluded !== null && notes.push(`- ${LABEL[w]}, latency run ${i + 1}: ${r.excluded}`));
  }
  return notes.length === 0 ? ['No run was excluded: no error replies, and no partition changed leader or term during a raftlock run.'] : ['Runs left out of the medians:', '', ...notes];
}

function resultsMarkdown(s: Summary, options: Options, invocation: string): string {
  const cmd = (mode: Mode, cluster = false): string =>
    `redis-benchmark ${redisBenchmarkArgs(0, mode, 't1' + mode[0]!.toLowerCase() + (cluster ? 'd' : '') + ':', options, cluster).join(' ').replace('-p 0', '-p P')}`;
  return [
    '## 3-node cluster: throughput through one node, etcd 3.4 as the baseline, latency at half the peak',
    '',
    `Produced by \`${invocation}\` (\`npm run bench:cluster\` runs \`npm run build && node dist/bench/cluster.js\`) on ${new Date().toISOString()}.`,
    '',
    '### Machine',
    '',
    ...machineFacts([
      { name: 'redis-benchmark', version: commandOutput('redis-benchmark', ['--version']) },
      { name: 'etcd', version: etcdVersion().replace('etcd Version: ', '') },
    ]),
    '',
    `All of it shares the ${commandOutput('nproc', [])} cores above: the ${NODES} raftlock nodes, the ${NODES} etcd members (the idle cluster keeps ` +
      'heartbeating while the other is measured) and the load generators (redis-benchmark; the Node.js etcd client; the Node.js open-loop generator). ' +
      'A production cluster runs one node per machine, so these numbers say how the two systems compare here, not what either does on its own hardware.',
    '',
    '### Method',
    '',
    `raftlock: ${NODES} node processes on loopback (\`${SERVER_COMMAND} --node-id nI --port P --cluster-port C --peers n1=...,n2=...,n3=... --data-dir <tmp> --partitions ${options.partitions}\`, ` +
      `started by bench/lib/cluster.ts), ${options.partitions} partitions. Before each raftlock measurement the benchmark waits until all nodes agree on the ` +
      `leaders, every partition is led by its preferred node (partition p by the (p mod ${NODES})-th node, where the cluster moves leaders once all nodes are up: ` +
      `${TARGET_NODE} leads ${Math.ceil(options.partitions / NODES)} of the ${options.partitions}) and that has held for 1 s, so every run sees the same placement; ` +
      'before an EPHEMERAL measurement also until every partition grants EPHEMERAL locks. ' +
      `Every client connects to ${TARGET_NODE}, which runs the commands of the partitions it leads and forwards the others to their leaders (one hop).`,
    '',
    `etcd: ${NODES} members of ${etcdVersion().replace('etcd Version: ', 'etcd ')} on loopback (\`etcd --name eI --data-dir <tmp> --listen-client-urls http://127.0.0.1:C ` +
      '--listen-peer-urls http://127.0.0.1:P --initial-cluster e1=...,e2=...,e3=... --initial-cluster-state new --logger zap --log-level warn`; ' +
      'otherwise defaults: heartbeat 100 ms, election 1000 ms, WAL fsync per batch). The load is one transaction per lock request, ' +
      '`Txn(If(createRevision(key) = 0), Then(Put(key, "o", lease)), Else(Range(key)))`, sent by the `etcd3` npm client (pinned in package.json, on @grpc/grpc-js) ' +
      `from ${CLIENTS} clients, each on its own gRPC connection to the first member, with its own ${TTL_MS / 1000} s lease (kept alive, revoked after the run); ` +
      `${CLIENTS * PIPELINE} requests in flight, spread round-robin over the clients — the counterpart of redis-benchmark's ${CLIENTS} connections × ${PIPELINE} pipelined.`,
    '',
    '"server cores" is the CPU time the three server processes used per second of the run (from /proc; 2.00 would be both cores busy), ' +
      '"generator cores" the same for the load generator (redis-benchmark, or the Node.js etcd client, which is much heavier per request). ' +
      'When servers and generator together stay well below the core count, the system is bound by something else (fsync latency, batching, ' +
      'or the other processes on the machine), not by CPU.',
    '',
    `Each workload is measured ${options.runs} time${options.runs === 1 ? '' : 's'} with ${fmtInt(options.requests)} requests; the order of the three flips every run. ` +
      `Keys are drawn at random from ${fmtInt(KEYSPACE)} per run, under a prefix of their own per run and workload (\`t1p:\`, \`t1e:\`, ...), so every ` +
      `measurement starts with no lock held and sees the same mix: with ${fmtInt(options.requests)} requests over ${fmtInt(KEYSPACE)} keys, ` +
      `${(100 * KEYSPACE * (1 - Math.exp(-options.requests / KEYSPACE)) / options.requests).toFixed(0)}% of the requests take a free lock (a write) and the rest find it ` +
      'held by the same owner (KLOCK returns the token from the leader\'s state; etcd runs the Else branch, which still goes through etcd\'s Raft log because the transaction has a put). ' +
      'PERSISTENT grants are fsync\'d on a quorum before the reply, like etcd\'s puts; EPHEMERAL grants live in the leader\'s memory (only horizon raises go through the log). ' +
      'Reported numbers are medians over the runs that count; a raftlock run does not count if redis-benchmark (run with `-e`) showed an error reply or ' +
      'if a partition changed leader or term during it, an etcd run if a request failed.',
    '',
    'The raftlock commands (P = n1\'s port; the prefix changes per run):',
    '',
    '```sh',
    cmd('PERSISTENT'),
    cmd('EPHEMERAL'),
    '```',
    '',
    'The "cluster-aware client" rows are the same load from `redis-benchmark --cluster`, as ioredis Cluster or node-redis cluster would send it: ' +
      `redis-benchmark reads the slot map from ${TARGET_NODE} (CLUSTER SLOTS), spreads its ${CLIENTS} connections over the ${NODES} nodes and gives each key ` +
      'a hash tag of a slot that its connection\'s node leads, so no command is forwarded. This is not the setup of the issue\'s targets (one entry node); ' +
      'it shows what the forwarding hop costs on this machine, where all three nodes share two cores:',
    '',
    '```sh',
    cmd('PERSISTENT', true),
    cmd('EPHEMERAL', true),
    '```',
    '',
    '### Throughput (medians)',
    '',
    THROUGHPUT_HEADER,
    '|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ...throughputRows(s),
    '',
    'p50 and p99 here are under saturation (closed loop, 800 in flight); the open-loop numbers below are the latency a client sees at a sustainable load.',
    '',
    '### Every throughput run (requests per second)',
    '',
    ...everyRunRows(s, options.runs),
    '',
    '### Latency at 50% of the peak (open loop)',
    '',
    `An open-loop generator (bench/lib/load.ts) sends the same requests at a fixed rate, half the median throughput above, over ${CLIENTS} connections ` +
      `(${CLIENTS} etcd clients), for ${options.warmupSeconds} s of warm-up and ${options.latencySeconds} s measured, ${options.latencyRuns} time(s) per workload. ` +
      'A request\'s latency counts from the moment it was due, so a stall of the generator or the server is charged to every request it delays. ' +
      '"sent/s" is the rate the generator achieved and "lag" how far it fell behind its schedule at worst: a large lag means the generator itself ' +
      'could not keep up on the shared cores. Quantiles are medians over the runs.',
    '',
    LATENCY_HEADER,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...latencyRows(s),
    '',
    ...exclusionNotes(s),
  ].join('\n');
}

function preflight(): void {
  const problems = [...missingTools(['redis-benchmark']).map((m) => `${m} is missing`)];
  const etcd = etcdProblem();
  if (etcd !== null) problems.push(etcd);
  if (!existsSync(RAFTLOCK_MAIN)) problems.push(`${RAFTLOCK_MAIN} does not exist: run npm run build (npm run bench:cluster builds first)`);
  if (problems.length > 0) throw new Error(problems.join('\n'));
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv);
  preflight();
  const invocation = `node dist/bench/cluster.js ${process.argv.slice(2).join(' ')}`.trim();
  console.log(`${NODES}-node raftlock cluster (${options.partitions} partitions) and ${NODES}-member etcd cluster; ${options.runs} run(s) of ${options.requests} requests per workload`);
  let cluster: ProcessCluster | undefined;
  let etcd: EtcdCluster | undefined;
  const closeAll = async (): Promise<void> => {
    await Promise.all([cluster?.close(), etcd?.close()]);
  };
  process.once('SIGINT', () => void closeAll().then(() => process.exit(130)));
  process.once('SIGTERM', () => void closeAll().then(() => process.exit(143)));
  let summary: Summary;
  try {
    cluster = await ProcessCluster.start({ nodes: NODES, partitions: options.partitions });
    const leadership = await waitForLeadership(cluster, { balanced: true, preferred: true, stableMs: 2000, timeoutMs: 60_000 });
    console.log(`raftlock up: leaders ${leadership.leaders.join(',')}; clients use ${TARGET_NODE} (port ${cluster.node(TARGET_NODE).port})`);
    etcd = await EtcdCluster.start({ members: NODES });
    console.log(`etcd up: ${etcd.endpoints.join(' ')}; clients use ${etcd.endpoints[0]}`);
    const tags = await partitionTags(cluster.node(TARGET_NODE).port, options.partitions, 'p');
    const ctx: Context = { cluster, etcd, tags, options };
    const samples = await measureThroughput(ctx);
    const peaks = Object.fromEntries(WORKLOADS.map((w) => [w, medianRps(samples[w])])) as Record<Workload, number>;
    const latency = await measureLatency(ctx, peaks);
    summary = { samples, peaks, latency };
  } finally {
    await closeAll();
  }
  console.log(['', THROUGHPUT_HEADER, ...throughputRows(summary), '', LATENCY_HEADER, ...latencyRows(summary)].join('\n'));
  writeSection(options.out, { name: 'cluster', title: '# raftlock cluster benchmarks', markdown: resultsMarkdown(summary, options, invocation), order: ['cluster', 'failover'] });
  console.log(`wrote the cluster section of ${relative(process.cwd(), options.out) || options.out}`);
}

main().catch((error: unknown) => {
  console.error(`bench:cluster failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
