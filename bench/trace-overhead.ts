// Tracing overhead: the same redis-benchmark workloads against raftlock with tracing off, on at 1%
// sampling, on at 100%, and (with --without DIR) the server built from a checkout without the
// tracing code; the variants take turns round-robin for N rounds, on fresh processes each time.
// Prints medians and ratios to "off"; --write puts them in the "Tracing overhead" section of
// bench/RESULTS.md.
// Reproduce: npm run bench:trace-overhead -- --without /tmp/raftlock-notrace --write
//   where /tmp/raftlock-notrace is made with
//   git worktree add /tmp/raftlock-notrace 5c975f3 && (cd /tmp/raftlock-notrace && npm ci && npm run build)
import { Command, InvalidArgumentError } from 'commander';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { ProcessCluster } from './lib/cluster.js';
import { runProblem, waitForLeadership } from './lib/leaders.js';
import { missingTools, RAFTLOCK_MAIN, REPO_ROOT, startRaftlock } from './lib/proc.js';
import { runRedisBenchmarkOrErrorReply } from './lib/redis-benchmark.js';
import { cpuMeter, otherCpuMeter } from './lib/cpu.js';
import { commandOutput, fmtInt, fmtRatio, loadFact, machineFacts, writeSection } from './lib/report.js';
import { median, roundOrder } from './lib/stats.js';
import { positiveInt, quickPicker } from './lib/args.js';
import { OtlpReceiver } from './lib/otlp-receiver.js';
import { traceArgs, tracingProblem } from './lib/tracing.js';

const NODES = 3;
const CLIENTS = 50;
const KEYSPACE = 100_000;
const TARGET_NODE = 'n1';
/** The issue's target: 1% sampling keeps at least this share of the throughput with tracing off. */
const SAMPLED_TARGET = 0.95;

type VariantName = 'without' | 'off' | '1%' | '100%';
const VARIANT_NAMES: VariantName[] = ['without', 'off', '1%', '100%'];
const SAMPLE_RATIO: Partial<Record<VariantName, number>> = { '1%': 0.01, '100%': 1 };

interface Variant {
  name: VariantName;
  label: string;
  main: string;
  args: string[];
  traced: boolean;
}

interface Workload {
  label: string;
  topology: 'cluster' | 'single';
  pipeline: number;
  command: string[];
}

const KLOCK = ['KLOCK', 'lock:__rand_int__', 'o', '30000', 'PERSISTENT'];
const WORKLOADS: Workload[] = [
  { label: `${NODES}-node cluster KLOCK PERSISTENT, -P 16`, topology: 'cluster', pipeline: 16, command: KLOCK },
  { label: 'single node SET NX PX', topology: 'single', pipeline: 1, command: ['SET', 'lock:__rand_int__', 'v', 'NX', 'PX', '30000'] },
  { label: 'single node KLOCK PERSISTENT', topology: 'single', pipeline: 1, command: KLOCK },
];

interface Options {
  rounds: number;
  requests: number;
  partitions: number;
  without: string | null;
  variants: VariantName[];
  write: boolean;
  quick: boolean;
}

interface Run {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Spans the receiver got while the run lasted (traced variants). */
  spans: number;
  /** Cores that processes outside this benchmark used during the measured run (other work on the machine). */
  otherCores: number;
  /** CPU time (user + system) the server processes used per request of the measured run, µs. */
  cpuUsPerRequest: number;
  excluded: string | null;
}

/** Runs by `${workload}|${variant}`, in round order. */
type Samples = Map<string, Run[]>;
const sampleKey = (w: Workload, v: VariantName): string => `${w.label}|${v}`;

function variantList(value: string): VariantName[] {
  const names = value.split(',').map((v) => v.trim());
  for (const n of names) if (!VARIANT_NAMES.includes(n as VariantName)) throw new InvalidArgumentError(`expected some of ${VARIANT_NAMES.join(',')}`);
  return VARIANT_NAMES.filter((n) => names.includes(n));
}

function parseOptions(argv: string[]): Options {
  const program = new Command()
    .name('npm run bench:trace-overhead --')
    .description('throughput with tracing off, on at 1% and 100% sampling, and without the tracing code, round-robin; medians and ratios to off')
    .option('--rounds <n>', 'rounds; each measures every variant once, in an order that rotates, every second round backwards', positiveInt, 6)
    .option('--requests <n>', 'requests per measurement (redis-benchmark -n)', positiveInt, 200_000)
    .option('--partitions <n>', 'partitions of the cluster workload', positiveInt, 8)
    .option('--without <dir>', 'a checkout without the tracing code, built (npm ci && npm run build): runs node DIR/dist/src/server/main.js')
    .option('--variants <list>', `which of ${VARIANT_NAMES.join(',')} to measure (default: all, "without" only with --without)`, variantList)
    .option('--write', 'write the "Tracing overhead" section of bench/RESULTS.md')
    .option('--quick', 'a short check that everything works: 1 round of 20000 requests; never writes')
    .parse(argv);
  const raw = program.opts<{ rounds: number; requests: number; partitions: number; without?: string; variants?: VariantName[]; write?: boolean; quick?: boolean }>();
  const quick = raw.quick === true;
  const pick = quickPicker(program, quick);
  const without = raw.without === undefined ? null : resolve(raw.without);
  const variants = raw.variants ?? VARIANT_NAMES.filter((v) => v !== 'without' || without !== null);
  if (variants.includes('without') && without === null) throw new InvalidArgumentError('the "without" variant needs --without DIR');
  if (!variants.includes('off')) throw new InvalidArgumentError('the variants must include "off": ratios are to it');
  return {
    rounds: pick('rounds', raw.rounds, 1),
    requests: pick('requests', raw.requests, 20_000),
    partitions: raw.partitions,
    without, variants, write: raw.write === true && !quick, quick,
  };
}

function variantOf(name: VariantName, options: Options): Variant {
  if (name === 'without') {
    const dir = options.without!;
    const commit = commandOutput('git', ['-C', dir, 'rev-parse', '--short', 'HEAD']);
    return { name, label: `without tracing code (commit ${commit})`, main: join(dir, 'dist', 'src', 'server', 'main.js'), args: [], traced: false };
  }
  if (name === 'off') return { name, label: 'tracing off', main: RAFTLOCK_MAIN, args: [], traced: false };
  return { name, label: `tracing on, ${name} sampled`, main: RAFTLOCK_MAIN, args: traceArgs(SAMPLE_RATIO[name]!), traced: true };
}

function benchmarkArgs(port: number, w: Workload, requests: number, prefix: string): string[] {
  return [
    '-h', '127.0.0.1', '-p', String(port), '-c', String(CLIENTS), '-n', String(requests), '-r', String(KEYSPACE),
    ...(w.pipeline > 1 ? ['-P', String(w.pipeline)] : []), '-e', '--csv', '-q', ...w.command.map((a) => a.replace('lock:', prefix)),
  ];
}

/** A short run first (JIT warm-up, first connections), then the measured one on keys of their own. */
async function measure(
  server: { port: number; pids: () => (number | undefined)[] }, w: Workload, options: Options, receiver: OtlpReceiver,
): Promise<Omit<Run, 'excluded'> & { error: string | null }> {
  const timeoutMs = Math.max(120_000, options.requests * 2);
  await runRedisBenchmarkOrErrorReply(benchmarkArgs(server.port, w, Math.max(1000, Math.floor(options.requests / 10)), 'warm:'), timeoutMs);
  receiver.clear();
  const meter = otherCpuMeter(server.pids);
  const serverCpu = cpuMeter(server.pids);
  const sample = await runRedisBenchmarkOrErrorReply(benchmarkArgs(server.port, w, options.requests, 'lock:'), timeoutMs);
  const otherCores = meter.stop();
  const cpuUsPerRequest = (serverCpu.usedSeconds() / options.requests) * 1e6;
  return { rps: sample.rps, p50Ms: sample.p50Ms, p99Ms: sample.p99Ms, spans: receiver.spansReceived, otherCores, cpuUsPerRequest, error: sample.error };
}

async function measureCluster(v: Variant, env: Record<string, string>, options: Options, receiver: OtlpReceiver): Promise<[Workload, Run][]> {
  const cluster = await ProcessCluster.start({ nodes: NODES, partitions: options.partitions, main: v.main, args: v.args, env });
  try {
    const results: [Workload, Run][] = [];
    for (const w of WORKLOADS.filter((x) => x.topology === 'cluster')) {
      const before = await waitForLeadership(cluster, { balanced: true, preferred: true, stableMs: 1000, timeoutMs: 60_000 });
      const { error, ...run } = await measure({ port: cluster.node(TARGET_NODE).port, pids: () => cluster.nodes.map((n) => n.child?.pid) }, w, options, receiver);
      results.push([w, { ...run, excluded: await runProblem(cluster, before, error) }]);
    }
    return results;
  } finally {
    await cluster.close();
  }
}

async function measureSingle(v: Variant, env: Record<string, string>, options: Options, receiver: OtlpReceiver): Promise<[Workload, Run][]> {
  const server = await startRaftlock({ main: v.main, extraArgs: v.args, env });
  try {
    const results: [Workload, Run][] = [];
    for (const w of WORKLOADS.filter((x) => x.topology === 'single')) {
      const { error, ...run } = await measure({ port: server.port, pids: () => [server.child.pid] }, w, options, receiver);
      if (server.exitStatus !== null) throw new Error(`${server.describe()} exited during the run:\n${server.stderr}`);
      results.push([w, { ...run, excluded: error === null ? null : `error replies, e.g. ${error}` }]);
    }
    return results;
  } finally {
    await server.stop();
  }
}

async function measureAll(options: Options, receiver: OtlpReceiver): Promise<Samples> {
  const samples: Samples = new Map();
  const variants = options.variants.map((n) => variantOf(n, options));
  // The SDK's defaults otherwise (5 s batches, a 2048-span queue): what a user who sets only the endpoint gets.
  const tracedEnv = receiver.env();
  for (let round = 1; round <= options.rounds; round++) {
    const order = roundOrder(variants, round);
    for (const v of order) {
      const env = v.traced ? tracedEnv : {};
      for (const [w, run] of [...await measureCluster(v, env, options, receiver), ...await measureSingle(v, env, options, receiver)]) {
        const key = sampleKey(w, v.name);
        samples.set(key, [...(samples.get(key) ?? []), run]);
        console.log(`round ${round}/${options.rounds}  ${w.label.padEnd(40)} ${v.label.padEnd(36)} ${fmtInt(run.rps).padStart(9)} rps  p50 ${run.p50Ms.toFixed(2)} ms` +
          `  server CPU ${run.cpuUsPerRequest.toFixed(1)} µs/request  other processes ${run.otherCores.toFixed(2)} cores` +
          `${v.traced ? `  ${fmtInt(run.spans)} spans exported` : ''}${run.excluded === null ? '' : `  EXCLUDED: ${run.excluded}`}`);
      }
    }
  }
  return samples;
}

const counted = (runs: Run[] | undefined): Run[] => (runs ?? []).filter((r) => r.excluded === null);
const medianRps = (samples: Samples, w: Workload, v: VariantName): number => median(counted(samples.get(sampleKey(w, v))).map((r) => r.rps));

/** max/min − 1 of a variant's counted runs: how much the same thing varied from round to round. */
function spread(samples: Samples, w: Workload, v: VariantName): number {
  const rps = counted(samples.get(sampleKey(w, v))).map((r) => r.rps);
  return rps.length < 2 ? NaN : Math.max(...rps) / Math.min(...rps) - 1;
}

function summaryTable(samples: Samples, options: Options): string[] {
  const vs = options.variants;
  const header = `| workload | ${vs.map((v) => `${v === 'without' ? 'without tracing code' : v === 'off' ? 'off' : `on ${v}`} rps`).join(' | ')} | ` +
    `${vs.filter((v) => v !== 'off').map((v) => `${v === 'without' ? 'without' : v} / off`).join(' | ')} | round-to-round spread (off) | targets |`;
  const rows = WORKLOADS.map((w) => {
    const off = medianRps(samples, w, 'off');
    const ratios = vs.filter((v) => v !== 'off').map((v) => fmtRatio(medianRps(samples, w, v) / off, 3));
    const targets: string[] = [];
    if (vs.includes('1%')) {
      const r = medianRps(samples, w, '1%') / off;
      const paired = median(roundRatios(samples, w, '1%').filter(Number.isFinite));
      const byCpu = median(roundRatios(samples, w, '1%', 'cpu').filter(Number.isFinite));
      const verdict = (x: number): string => (Number.isFinite(x) ? (x >= SAMPLED_TARGET ? 'met' : 'missed') : 'n/a');
      targets.push(`1% ≥ ${SAMPLED_TARGET}× off: ${verdict(r)} (by the per-round ratios: ${verdict(paired)}; by server CPU per request: ${verdict(byCpu)})`);
    }
    if (vs.includes('without')) {
      const r = off / medianRps(samples, w, 'without');
      const noise = Math.max(spread(samples, w, 'off'), spread(samples, w, 'without'));
      targets.push(`off within noise of without: ${Number.isFinite(r) && Number.isFinite(noise) ? (Math.abs(r - 1) <= noise ? 'yes' : 'no') : 'n/a'}`);
    }
    return `| ${w.label} | ${vs.map((v) => fmtInt(medianRps(samples, w, v))).join(' | ')} | ${ratios.join(' | ')} | ${Number.isFinite(spread(samples, w, 'off')) ? `${(100 * spread(samples, w, 'off')).toFixed(1)}%` : 'n/a'} | ${targets.join('; ') || '—'} |`;
  });
  return [header, `|---|${vs.map(() => '---:|').join('')}${vs.filter((v) => v !== 'off').map(() => '---:|').join('')}---:|---|`, ...rows];
}

/** Each round's run of a variant over that round's run of "off" (NaN where either does not count): noise that drifts slowly cancels out. */
function roundRatios(samples: Samples, w: Workload, v: VariantName, by: 'rps' | 'cpu' = 'rps'): number[] {
  const off = samples.get(sampleKey(w, 'off')) ?? [];
  // By CPU: off's server CPU per request over the variant's, the share of its throughput a CPU-bound server keeps.
  const ratio = (r: Run, o: Run): number => (by === 'rps' ? r.rps / o.rps : o.cpuUsPerRequest / r.cpuUsPerRequest);
  return (samples.get(sampleKey(w, v)) ?? []).map((r, i) => (r.excluded === null && off[i]?.excluded === null ? ratio(r, off[i]!) : NaN));
}

function roundRatioTable(samples: Samples, options: Options): string[] {
  const rows = WORKLOADS.flatMap((w) => options.variants.filter((v) => v !== 'off').flatMap((v) => (['rps', 'cpu'] as const).map((by) => {
    const ratios = roundRatios(samples, w, v, by);
    const label = by === 'rps' ? `${v} / off` : `${v} / off by server CPU per request (off's over ${v}'s)`;
    return `| ${w.label} | ${label} | ${ratios.map((r) => fmtRatio(r, 3)).join(' | ')} | ${fmtRatio(median(ratios.filter(Number.isFinite)), 3)} |`;
  })));
  return [`| workload | ratio | ${Array.from({ length: options.rounds }, (_, i) => `round ${i + 1}`).join(' | ')} | median |`, `|---|---|${'---:|'.repeat(options.rounds + 1)}`, ...rows];
}

function everyRunTable(samples: Samples, options: Options): string[] {
  const rows = WORKLOADS.flatMap((w) => options.variants.map((v) => {
    const runs = samples.get(sampleKey(w, v)) ?? [];
    const cells = runs.map((r) => `${fmtInt(r.rps)} [${r.otherCores.toFixed(2)}] ${r.cpuUsPerRequest.toFixed(1)} µs${SAMPLE_RATIO[v] === undefined ? '' : ` (${fmtInt(r.spans)} spans)`}${r.excluded === null ? '' : ' (excluded)'}`);
    return `| ${w.label} | ${v} | ${cells.join(' | ')} | ${fmtInt(medianRps(samples, w, v))} |`;
  }));
  return [`| workload | variant | ${Array.from({ length: options.rounds }, (_, i) => `round ${i + 1}`).join(' | ')} | median |`, `|---|---|${'---:|'.repeat(options.rounds + 1)}`, ...rows];
}

function sectionMarkdown(samples: Samples, options: Options, run: { invocation: string; startLoad: number }): string {
  const notes = [...samples.entries()].flatMap(([key, runs]) => runs.flatMap((r, i) => (r.excluded === null ? [] : [`- ${key.replace('|', ', ')}, round ${i + 1}: ${r.excluded}`])));
  const without = options.without === null ? null : variantOf('without', options);
  return [
    '## Tracing overhead',
    '',
    `Produced by \`${run.invocation}\` (\`npm run bench:trace-overhead\` runs \`npm run build && node dist/bench/trace-overhead.js\`) on ${new Date().toISOString()}.`,
    '',
    '### Machine',
    '',
    ...machineFacts([{ name: 'redis-benchmark', version: commandOutput('redis-benchmark', ['--version']) }]),
    loadFact(run.startLoad),
    '',
    '### Method',
    '',
    'Variants: **off** is this build without `--trace`; **1%** and **100%** add `--trace --trace-sample-ratio 0.01` / `1` and export to an OTLP/HTTP receiver in the harness ' +
      '(`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:<port> OTEL_EXPORTER_OTLP_PROTOCOL=http/json OTEL_SERVICE_NAME=raftlock OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none`, ' +
      'the SDK\'s batching defaults otherwise: a 2048-span queue, batches every 5 s; the receiver answers `{}` and counts the spans without decoding them)' +
      (without === null ? '.' : `; **without** is \`node ${options.without}/dist/src/server/main.js\`, ${without.label.replace('without tracing code ', 'a checkout ')} built with \`npm ci && npm run build\` ` +
        '(`git worktree add /tmp/raftlock-notrace 5c975f3 && cd /tmp/raftlock-notrace && npm ci && npm run build`). ' +
        `The ratio without / off covers all that changed between that commit and this build (\`git log --oneline ${commandOutput('git', ['-C', options.without!, 'rev-parse', '--short', 'HEAD'])}..HEAD\`), ` +
        'not the tracing code alone.'),
    '',
    `Workloads, each with redis-benchmark \`-c ${CLIENTS} -n ${options.requests} -r ${KEYSPACE}\`: KLOCK PERSISTENT with \`-P 16\` through ${TARGET_NODE} of a fresh ${NODES}-node cluster ` +
      `(${options.partitions} partitions, every partition led by its preferred node), and SET NX PX and KLOCK PERSISTENT unpipelined against a fresh single node. Every measurement follows a warm-up run of a tenth ` +
      'of the requests on other keys. Each round starts every variant\'s processes afresh, one variant after the other, in an order that every second round reverses and that rotates every two rounds (so that over each pair of rounds every variant has the same mean position); ' +
      `${options.rounds} round(s); medians over the runs that count (no error reply; in the cluster no leader or term change during the run). ` +
      `Target: 1% sampling ≥ ${SAMPLED_TARGET}× off; off within noise of the build without tracing (|off/without − 1| no larger than the round-to-round spread, max/min − 1, of either).`,
    '',
    '```sh',
    ...WORKLOADS.map((w) => `redis-benchmark ${benchmarkArgs(0, w, options.requests, 'lock:').join(' ').replace('-p 0', '-p P')}`),
    '```',
    '',
    '### Medians',
    '',
    ...summaryTable(samples, options),
    '',
    '### Ratios to off within each round',
    '',
    'Each round\'s run of a variant over the same round\'s run with tracing off: the machine\'s speed drifts over minutes, and the variants of one round ran close together. ' +
      'The rows "by server CPU per request" divide off\'s CPU time (user + system, all server processes, /proc) per request by the variant\'s: ' +
      'the throughput share a CPU-bound server keeps, less sensitive to how other work on the machine delays the benchmark than requests per second.',
    '',
    ...roundRatioTable(samples, options),
    '',
    '### Every run',
    '',
    'Requests per second; in brackets the cores that processes outside this benchmark used during the run (other work on the machine; 0.00: none); ' +
      'then the server processes\' CPU time per request; ' +
      'for the traced variants the spans the receiver got during the run (the SDK exports in batches of 512 and drops spans when its 2048-span queue is full).',
    '',
    ...everyRunTable(samples, options),
    '',
    ...(notes.length === 0 ? ['No run was excluded.'] : ['Runs left out of the medians:', '', ...notes]),
  ].join('\n');
}

function preflight(options: Options): void {
  const problems = missingTools(['redis-benchmark']).map((m) => `${m} is missing`);
  if (!existsSync(RAFTLOCK_MAIN)) problems.push(`${RAFTLOCK_MAIN} does not exist: run npm run build (npm run bench:trace-overhead builds first)`);
  else if (options.variants.some((v) => SAMPLE_RATIO[v] !== undefined)) {
    const tracing = tracingProblem();
    if (tracing !== null) problems.push(`${tracing}; the traced variants need it (--variants without,off measures the rest)`);
  }
  if (options.without !== null) {
    const main = join(options.without, 'dist', 'src', 'server', 'main.js');
    if (!existsSync(main)) {
      problems.push(`${main} does not exist: make the checkout with git worktree add ${options.without} 5c975f3 && cd ${options.without} && npm ci && npm run build`);
    } else if (tracingProblem(main) === null) problems.push(`${main} has --trace: --without wants a build without the tracing code`);
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv);
  preflight(options);
  const invocation = `node dist/bench/trace-overhead.js ${process.argv.slice(2).join(' ')}`.trim();
  const startLoad = loadavg()[0]!;
  console.log(`${options.rounds} round(s) × ${options.variants.length} variants (${options.variants.join(', ')}) × ${WORKLOADS.length} workloads, ${options.requests} requests each`);
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  const receiver = await OtlpReceiver.start({ keepSpans: false });
  let samples: Samples;
  try {
    samples = await measureAll(options, receiver);
    receiver.assertJson();
  } finally {
    await receiver.close();
  }
  console.log(['', ...summaryTable(samples, options), '', ...roundRatioTable(samples, options)].join('\n'));
  if (options.write) {
    const file = join(REPO_ROOT, 'bench', 'RESULTS.md');
    writeSection(file, { name: 'trace-overhead', title: '# raftlock vs redis-server: redis-benchmark results', markdown: sectionMarkdown(samples, options, { invocation, startLoad }), order: ['trace-overhead'] });
    console.log(`wrote the "Tracing overhead" section of ${relative(process.cwd(), file) || file}`);
  }
}

main().catch((error: unknown) => {
  console.error(`bench:trace-overhead failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
