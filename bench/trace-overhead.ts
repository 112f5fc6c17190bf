// Tracing overhead: the same redis-benchmark workloads against raftlock with tracing off, on at 1%
// sampling, on at 100%, and (with --without DIR) this commit built without the tracing code
// (bench/notrace.patch takes it out). Each variant is loaded at the same time as "off" (both
// servers warmed up, one redis-benchmark each), and the commands each completed in the same window
// are compared: noise that comes and goes hits both alike. Prints the median ratios to "off";
// --write puts them in the "Tracing overhead" section of bench/RESULTS.md.
// Reproduce: npm run bench:trace-overhead -- --without /tmp/raftlock-notrace --write, where
//   /tmp/raftlock-notrace is made as WITHOUT_RECIPE says:
//   git worktree add /tmp/raftlock-notrace HEAD && cd /tmp/raftlock-notrace &&
//   git apply /path/to/raftlock/bench/notrace.patch && npm ci && npm run build
import { Command, InvalidArgumentError } from 'commander';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { ProcessCluster } from './lib/cluster.js';
import { runProblem, waitForLeadership } from './lib/leaders.js';
import { missingTools, RAFTLOCK_MAIN, REPO_ROOT, sleep, startRaftlock } from './lib/proc.js';
import { errorReplyIn, runRedisBenchmarkOrErrorReply } from './lib/redis-benchmark.js';
import { callOnce } from './lib/resp-client.js';
import { cpuMeter, otherCpuMeter } from './lib/cpu.js';
import { commandOutput, fmtInt, fmtRatio, loadFact, machineFacts, writeSection } from './lib/report.js';
import { median } from './lib/stats.js';
import { positiveInt, quickPicker } from './lib/args.js';
import { OtlpReceiver } from './lib/otlp-receiver.js';
import { traceArgs, tracingProblem } from './lib/tracing.js';

const NODES = 3;
const CLIENTS = 50;
const KEYSPACE = 100_000;
const TARGET_NODE = 'n1';
/** How the --without build is made: this commit, the tracing code taken out by bench/notrace.patch. */
const WITHOUT_RECIPE = (dir: string): string =>
  `git worktree add ${dir} HEAD && cd ${dir} && git apply ${join(REPO_ROOT, 'bench', 'notrace.patch')} && npm ci && npm run build`;
/** redis-benchmark -n for a load that runs until it is stopped. */
const ENDLESS_REQUESTS = 1_000_000_000;
/** Both loads run this long before the window opens (connections made, queues full). */
const RAMP_MS = 2000;
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
  seconds: number;
  warmup: number;
  partitions: number;
  without: string | null;
  variants: VariantName[];
  write: boolean;
  quick: boolean;
}

/** One variant's side of a pair: what it served while both were loaded. */
interface Side {
  /** Commands per second its entry node completed in the window (INFO stats total_commands_processed). */
  rate: number;
  /** CPU time (user + system) its server processes used per command of the window, µs. */
  cpuUsPerRequest: number;
}

/** A variant and "off" loaded at the same time over the same window. */
interface Pair {
  off: Side;
  variant: Side;
  /** Spans the variant's receiver got during the window (traced variants). */
  spans: number;
  /** Cores that everything but the pair's servers and load generators used during the window. */
  otherCores: number;
  excluded: string | null;
}

/** Pairs by `${workload}|${variant}`, in round order. */
type Samples = Map<string, Pair[]>;
const sampleKey = (w: Workload, v: VariantName): string => `${w.label}|${v}`;

function variantList(value: string): VariantName[] {
  const names = value.split(',').map((v) => v.trim());
  for (const n of names) if (!VARIANT_NAMES.includes(n as VariantName)) throw new InvalidArgumentError(`expected some of ${VARIANT_NAMES.join(',')}`);
  return VARIANT_NAMES.filter((n) => names.includes(n));
}

function parseOptions(argv: string[]): Options {
  const program = new Command()
    .name('npm run bench:trace-overhead --')
    .description('throughput with tracing off, on at 1% and 100% sampling, and without the tracing code: each variant loaded at the same time as "off", ratios of what they served')
    .option('--rounds <n>', 'pairs per variant and workload (each variant with a fresh "off" of its own)', positiveInt, 6)
    .option('--seconds <n>', 'length of each measured window', positiveInt, 10)
    .option('--warmup <n>', 'requests of each workload every variant serves before the first round', positiveInt, 200_000)
    .option('--partitions <n>', 'partitions of the cluster workload', positiveInt, 8)
    .option('--without <dir>', 'a checkout of this commit with bench/notrace.patch applied, built (npm ci && npm run build): runs node DIR/dist/src/server/main.js')
    .option('--variants <list>', `which of ${VARIANT_NAMES.join(',')} to measure (default: all, "without" only with --without)`, variantList)
    .option('--write', 'write the "Tracing overhead" section of bench/RESULTS.md')
    .option('--quick', 'a short check that everything works: 1 round of 2 s windows; never writes')
    .parse(argv);
  const raw = program.opts<{ rounds: number; seconds: number; warmup: number; partitions: number; without?: string; variants?: VariantName[]; write?: boolean; quick?: boolean }>();
  const quick = raw.quick === true;
  const pick = quickPicker(program, quick);
  const without = raw.without === undefined ? null : resolve(raw.without);
  const variants = raw.variants ?? VARIANT_NAMES.filter((v) => v !== 'without' || without !== null);
  if (variants.includes('without') && without === null) throw new InvalidArgumentError('the "without" variant needs --without DIR');
  if (!variants.includes('off')) throw new InvalidArgumentError('the variants must include "off": ratios are to it');
  return {
    rounds: pick('rounds', raw.rounds, 1),
    seconds: pick('seconds', raw.seconds, 2),
    warmup: pick('warmup', raw.warmup, 2_000),
    partitions: raw.partitions,
    without, variants, write: raw.write === true && !quick, quick,
  };
}

function variantOf(name: VariantName, options: Options): Variant {
  if (name === 'without') {
    const dir = options.without!;
    const commit = commandOutput('git', ['-C', dir, 'rev-parse', '--short', 'HEAD']);
    return { name, label: `without tracing code (commit ${commit} + bench/notrace.patch)`, main: join(dir, 'dist', 'src', 'server', 'main.js'), args: [], traced: false };
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

/** A server under test: its RESP port, its processes, and what made a run not count. */
interface Target {
  port: number;
  pids: () => (number | undefined)[];
  /** Where this variant's spans go (traced variants). */
  receiver: OtlpReceiver | null;
  /** Called before a measured run: returns what the run's verdict needs afterwards. */
  before: () => Promise<unknown>;
  /** Why the run does not count (null: it does), given its error reply and before()'s value. */
  problem: (error: string | null, before: unknown) => Promise<string | null>;
  close: () => Promise<void>;
}

/**
 * A warm-up run of `requests` on keys of their own, once the cluster's leaders settled. An error
 * reply (redis-benchmark stops at the first) starts it again, up to three times.
 */
async function warmUp(target: Target, w: Workload, requests: number, label: string): Promise<void> {
  let error: string | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    await target.before();
    error = (await runRedisBenchmarkOrErrorReply(benchmarkArgs(target.port, w, requests, 'warm:'), Math.max(120_000, requests * 2))).error;
    if (error === null) return;
  }
  throw new Error(`${label}: the warm-up of ${w.label} got error replies three times, the last: ${error}`);
}

/** Commands a node has completed for its clients so far (INFO stats total_commands_processed). */
async function commandsProcessed(port: number): Promise<number> {
  const info = await callOnce(port, ['INFO', 'stats']);
  const count = typeof info === 'string' ? /^total_commands_processed:(\d+)/m.exec(info)?.[1] : undefined;
  if (count === undefined) throw new Error(`INFO stats on port ${port} has no total_commands_processed: ${String(info)}`);
  return Number(count);
}

/** redis-benchmark loading a target until stop(); stop() resolves with the first error reply it saw, if any. */
function startLoad(port: number, w: Workload, prefix: string): { pid: number | undefined; stop: () => Promise<string | null> } {
  const child = spawn('redis-benchmark', benchmarkArgs(port, w, ENDLESS_REQUESTS, prefix), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString('latin1'); });
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString('latin1'); });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let stopped = false;
  return {
    pid: child.pid,
    stop: async () => {
      const early = child.exitCode !== null || child.signalCode !== null;
      if (!stopped && !early) child.kill('SIGTERM');
      stopped = true;
      await exited;
      const reply = errorReplyIn(output);
      if (reply !== null) return reply;
      return early ? `redis-benchmark stopped before the window ended: ${output.trim().slice(-300)}` : null;
    },
  };
}

/**
 * Loads `off` and `variant` at the same time: each gets its own redis-benchmark, the two compete for
 * the same cores, and the window counts what each completed. Noise that comes and goes over
 * seconds (other work on the machine, CPU frequency) hits both alike.
 */
async function measurePair(off: Target, variant: Target, w: Workload, options: Options, prefix: string, variantFirst: boolean): Promise<Pair> {
  const befores = [await off.before(), await variant.before()];
  const targets = [off, variant];
  const loads: ReturnType<typeof startLoad>[] = [];
  for (const i of variantFirst ? [1, 0] : [0, 1]) loads[i] = startLoad(targets[i]!.port, w, prefix);
  try {
    await sleep(RAMP_MS);
    const pids = (): (number | undefined)[] => [...off.pids(), ...variant.pids(), ...loads.map((l) => l.pid)];
    const other = otherCpuMeter(pids);
    const cpu = [cpuMeter(off.pids), cpuMeter(variant.pids)];
    const start = await Promise.all([commandsProcessed(off.port), commandsProcessed(variant.port)]);
    variant.receiver?.clear();
    const startedAt = performance.now();
    await sleep(options.seconds * 1000);
    const end = await Promise.all([commandsProcessed(off.port), commandsProcessed(variant.port)]);
    const seconds = (performance.now() - startedAt) / 1000;
    const otherCores = other.stop();
    const spans = variant.receiver?.spansReceived ?? 0;
    const side = (i: number): Side => {
      const commands = end[i]! - start[i]!;
      return { rate: commands / seconds, cpuUsPerRequest: (cpu[i]!.usedSeconds() / commands) * 1e6 };
    };
    const sides = [side(0), side(1)];
    const errors = await Promise.all(loads.map((l) => l.stop()));
    const excluded = (await off.problem(errors[0]!, befores[0])) ?? (await variant.problem(errors[1]!, befores[1]));
    return { off: sides[0]!, variant: sides[1]!, spans, otherCores, excluded };
  } finally {
    await Promise.all(loads.map((l) => l.stop()));
  }
}

/** Stops a variant's receiver; throws if the SDK sent it anything but OTLP JSON. */
async function closeReceiver(receiver: OtlpReceiver | null): Promise<void> {
  if (receiver === null) return;
  try {
    receiver.assertJson();
  } finally {
    await receiver.close();
  }
}

async function startTarget(v: Variant, topology: Workload['topology'], options: Options): Promise<Target> {
  // The SDK's defaults otherwise (5 s batches, a 2048-span queue): what a user who sets only the endpoint gets.
  const receiver = v.traced ? await OtlpReceiver.start({ keepSpans: false }) : null;
  const env = receiver?.env() ?? {};
  try {
    if (topology === 'cluster') {
      const cluster = await ProcessCluster.start({ nodes: NODES, partitions: options.partitions, main: v.main, args: v.args, env });
      return {
        port: cluster.node(TARGET_NODE).port,
        pids: () => cluster.nodes.map((n) => n.child?.pid),
        receiver,
        before: () => waitForLeadership(cluster, { balanced: true, preferred: true, stableMs: 1000, timeoutMs: 60_000 }),
        problem: (error, before) => runProblem(cluster, before as Awaited<ReturnType<typeof waitForLeadership>>, error),
        close: async () => { await cluster.close(); await closeReceiver(receiver); },
      };
    }
    const server = await startRaftlock({ main: v.main, extraArgs: v.args, env });
    return {
      port: server.port,
      pids: () => [server.child.pid],
      receiver,
      before: () => Promise.resolve(null),
      problem: (error) => {
        if (server.exitStatus !== null) throw new Error(`${server.describe()} exited during the run:\n${server.stderr}`);
        return Promise.resolve(error === null ? null : `error replies, e.g. ${error}`);
      },
      close: async () => { await server.stop(); await closeReceiver(receiver); },
    };
  } catch (error) {
    await receiver?.close();
    throw error;
  }
}

/** A server process counts as idle below this share of a core (an idle cluster node heartbeats). */
const IDLE_CORES_PER_PROCESS = 0.06;
const SETTLE_WINDOW_MS = 500;
const SETTLE_TIMEOUT_MS = 20_000;

/**
 * Waits until every server process of the benchmark is idle over a window: what a run left behind
 * (a snapshot of the table it grew, spans still to export) must not land in the next variant's
 * run. Returns the milliseconds waited; gives up (and says so) after SETTLE_TIMEOUT_MS.
 */
async function settle(targets: Iterable<Target>): Promise<number> {
  const pids = [...targets].flatMap((t) => t.pids());
  const started = performance.now();
  for (;;) {
    const meter = cpuMeter(() => pids);
    await sleep(SETTLE_WINDOW_MS);
    if (meter.stop() <= IDLE_CORES_PER_PROCESS * pids.length) return performance.now() - started;
    if (performance.now() - started > SETTLE_TIMEOUT_MS) {
      console.log(`  (the server processes were still busy after ${SETTLE_TIMEOUT_MS} ms; measuring anyway)`);
      return performance.now() - started;
    }
  }
}

/**
 * Per topology and variant, a fresh "off" and the variant start together, serve the same warm-up
 * and then the same rounds, and stop: both sides of every pair have the same history (table and
 * log sizes, snapshots due), whichever variants ran before.
 */
async function measureAll(options: Options): Promise<Samples> {
  const samples: Samples = new Map();
  const off = variantOf('off', options);
  const others = options.variants.filter((n) => n !== 'off').map((n) => variantOf(n, options));
  for (const topology of ['cluster', 'single'] as const) {
    const workloads = WORKLOADS.filter((w) => w.topology === topology);
    for (const v of others) {
      const targets: Target[] = [];
      try {
        targets.push(await startTarget(off, topology, options));
        targets.push(await startTarget(v, topology, options));
        for (const w of workloads) {
          await warmUp(targets[0]!, w, options.warmup, off.label);
          await warmUp(targets[1]!, w, options.warmup, v.label);
        }
        for (let round = 1; round <= options.rounds; round++) {
          for (const w of workloads) {
            await settle(targets);
            // Which load starts first alternates from round to round.
            const pair = await measurePair(targets[0]!, targets[1]!, w, options, `r${round}:`, round % 2 === 0);
            const key = sampleKey(w, v.name);
            samples.set(key, [...(samples.get(key) ?? []), pair]);
            console.log(`round ${round}/${options.rounds}  ${w.label.padEnd(40)} ${v.label.padEnd(36)} ${fmtInt(pair.variant.rate).padStart(8)}/s ` +
              `vs off ${fmtInt(pair.off.rate).padStart(8)}/s  ${fmtRatio(pair.variant.rate / pair.off.rate, 3)}` +
              `  server CPU ${pair.variant.cpuUsPerRequest.toFixed(1)} vs ${pair.off.cpuUsPerRequest.toFixed(1)} µs/request  other processes ${pair.otherCores.toFixed(2)} cores` +
              `${v.traced ? `  ${fmtInt(pair.spans)} spans exported` : ''}${pair.excluded === null ? '' : `  EXCLUDED: ${pair.excluded}`}`);
          }
        }
      } finally {
        for (const target of targets) await target.close();
      }
    }
  }
  return samples;
}

const counted = (pairs: Pair[] | undefined): Pair[] => (pairs ?? []).filter((r) => r.excluded === null);

/** A variant's ratios to off, one per counted pair: by commands served, or by server CPU per command (off's over the variant's). */
function ratios(samples: Samples, w: Workload, v: VariantName, by: 'rate' | 'cpu' = 'rate'): number[] {
  return counted(samples.get(sampleKey(w, v))).map((p) => (by === 'rate' ? p.variant.rate / p.off.rate : p.off.cpuUsPerRequest / p.variant.cpuUsPerRequest));
}

/** max/min − 1 of the ratios: how much the same comparison varied from round to round. */
function spread(values: number[]): number {
  return values.length < 2 ? NaN : Math.max(...values) / Math.min(...values) - 1;
}

const verdict = (x: number): string => (Number.isFinite(x) ? (x >= SAMPLED_TARGET ? 'met' : 'missed') : 'n/a');

function summaryTable(samples: Samples, options: Options): string[] {
  const vs = options.variants.filter((v) => v !== 'off');
  const header = `| workload | ${vs.map((v) => `${v === 'without' ? 'without' : v} / off`).join(' | ')} | ${vs.map((v) => `${v === 'without' ? 'without' : v} / off by CPU`).join(' | ')} | targets |`;
  const rows = WORKLOADS.map((w) => {
    const targets: string[] = [];
    if (vs.includes('1%')) {
      const byRate = median(ratios(samples, w, '1%'));
      const byCpu = median(ratios(samples, w, '1%', 'cpu'));
      targets.push(`1% ≥ ${SAMPLED_TARGET}× off: ${verdict(byRate)} (by CPU per command: ${verdict(byCpu)})`);
    }
    if (vs.includes('without')) {
      const without = ratios(samples, w, 'without');
      // Within noise: the median ratio differs from 1 by no more than the ratios' own spread.
      targets.push(`off within noise of without: ${without.length < 2 ? 'n/a' : Math.abs(median(without) - 1) <= spread(without) ? 'yes' : 'no'}`);
    }
    return `| ${w.label} | ${vs.map((v) => fmtRatio(median(ratios(samples, w, v)), 3)).join(' | ')} | ${vs.map((v) => fmtRatio(median(ratios(samples, w, v, 'cpu')), 3)).join(' | ')} | ${targets.join('; ') || '—'} |`;
  });
  return [header, `|---|${vs.map(() => '---:|').join('')}${vs.map(() => '---:|').join('')}---|`, ...rows];
}

function everyPairTable(samples: Samples, options: Options): string[] {
  const rows = WORKLOADS.flatMap((w) => options.variants.filter((v) => v !== 'off').map((v) => {
    const cells = (samples.get(sampleKey(w, v)) ?? []).map((p) => `${fmtRatio(p.variant.rate / p.off.rate, 3)}: ${fmtInt(p.variant.rate)} / ${fmtInt(p.off.rate)}, ` +
      `${p.variant.cpuUsPerRequest.toFixed(1)} / ${p.off.cpuUsPerRequest.toFixed(1)} µs [${p.otherCores.toFixed(2)}]${SAMPLE_RATIO[v] === undefined ? '' : ` (${fmtInt(p.spans)} spans)`}` +
      `${p.excluded === null ? '' : ' (excluded)'}`);
    return `| ${w.label} | ${v} | ${cells.join(' | ')} | ${fmtRatio(median(ratios(samples, w, v)), 3)} |`;
  }));
  return [`| workload | variant | ${Array.from({ length: options.rounds }, (_, i) => `round ${i + 1}`).join(' | ')} | median |`, `|---|---|${'---:|'.repeat(options.rounds + 1)}`, ...rows];
}

function sectionMarkdown(samples: Samples, options: Options, run: { invocation: string; startLoad: number }): string {
  const notes = [...samples.entries()].flatMap(([key, pairs]) => pairs.flatMap((r, i) => (r.excluded === null ? [] : [`- ${key.replace('|', ', ')}, round ${i + 1}: ${r.excluded}`])));
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
    'Variants: **off** is this build without `--trace`; **1%** and **100%** add `--trace --trace-sample-ratio 0.01` / `1` and export to an OTLP/HTTP receiver in the harness, one per variant ' +
      '(`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:<port> OTEL_EXPORTER_OTLP_PROTOCOL=http/json OTEL_SERVICE_NAME=raftlock OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none`, ' +
      'the SDK\'s batching defaults otherwise: a 2048-span queue, batches every 5 s; the receiver answers `{}` and counts the spans without decoding them)' +
      (without === null ? '.' : `; **without** is \`node ${options.without}/dist/src/server/main.js\`: the same commit with \`bench/notrace.patch\` applied, ` +
        'which takes the tracing code out of every command\'s path (the sampling decision, the trace checks in the connection, the replica and the forwarding hop) and the `--trace` flags out of the server ' +
        `(\`${WITHOUT_RECIPE('/tmp/raftlock-notrace')}\`).`),
    '',
    `Workloads: KLOCK PERSISTENT with \`-P 16\` through ${TARGET_NODE} of a ${NODES}-node cluster (${options.partitions} partitions, every partition led by its preferred node before each window), ` +
      'and SET NX PX and KLOCK PERSISTENT unpipelined against a single node. ' +
      'For each topology and variant, a fresh off and the variant start together, serve the same warm-up and rounds, and stop (so both sides of a pair have the same history: table and log sizes, snapshots due); ' +
      `each first serves ${options.warmup} requests of every workload on keys of their own (JIT warm-up; the SDK's exporter loads its HTTP code on its first export). ` +
      '**Each variant is measured at the same time as off**: two redis-benchmarks, one per server, start together and run until stopped; ' +
      `after ${RAMP_MS / 1000} s the window opens and for ${options.seconds} s counts the commands each entry node completed (INFO stats total_commands_processed). ` +
      'The two compete for the same two cores, so a server that needs more CPU per command completes fewer of them, and noise that comes and goes over seconds ' +
      '(other work on the machine, the CPU\'s speed) hits both alike: on this machine, runs of one variant after another varied by ±15–30% from one run to the next, which no single-digit overhead shows through. ' +
      `The ratio of a pair is the variant's commands over off's in that window; the rows "by CPU" divide off's server CPU time per command (user + system, all its processes, /proc) by the variant's. ` +
      `Before each pair the benchmark waits until every server process is idle (under ${IDLE_CORES_PER_PROCESS} of a core each over ${SETTLE_WINDOW_MS} ms: an idle cluster node still heartbeats), ` +
      'so that what a window left behind (a snapshot, spans to export) stays out of the next. ' +
      `${options.rounds} round(s) per variant; which of the two loads starts first alternates from round to round; ` +
      'medians over the pairs that count (no error reply; in the cluster no leader or term change during the window). ' +
      `Targets: 1% sampling ≥ ${SAMPLED_TARGET}× off; off within noise of the build without tracing (the median ratio differs from 1 by no more than the ratios' spread, max/min − 1).`,
    '',
    '```sh',
    ...WORKLOADS.map((w) => `redis-benchmark ${benchmarkArgs(0, w, ENDLESS_REQUESTS, 'lock:').join(' ').replace('-p 0', '-p P')}   # stopped after the window`),
    '```',
    '',
    '### Medians of the ratios to off',
    '',
    ...summaryTable(samples, options),
    '',
    '### Every pair',
    '',
    'Each cell: the ratio; the variant\'s and off\'s commands per second in the window (each with half the machine); their server CPU per command; ' +
      'in brackets the cores everything else used (the idle variants\' heartbeats and other work on the machine)' +
      '; for the traced variants the spans the receiver got in the window (the SDK exports in batches of 512 and drops spans when its 2048-span queue is full).',
    '',
    ...everyPairTable(samples, options),
    '',
    ...(notes.length === 0 ? ['No pair was excluded.'] : ['Pairs left out of the medians:', '', ...notes]),
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
      problems.push(`${main} does not exist: make the checkout with ${WITHOUT_RECIPE(options.without)}`);
    } else if (tracingProblem(main) === null) problems.push(`${main} has --trace: --without wants a build without the tracing code (${WITHOUT_RECIPE(options.without)})`);
    else if (commandOutput('git', ['-C', options.without, 'rev-parse', 'HEAD']) !== commandOutput('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD'])) {
      problems.push(`${options.without} is not a checkout of this commit: the ratio without / off would also measure what changed between them (${WITHOUT_RECIPE(options.without)})`);
    }
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv);
  preflight(options);
  const invocation = `node dist/bench/trace-overhead.js ${process.argv.slice(2).join(' ')}`.trim();
  const startLoad = loadavg()[0]!;
  console.log(`${options.rounds} round(s) × ${options.variants.length - 1} variants each loaded with off (${options.variants.join(', ')}) × ${WORKLOADS.length} workloads, ${options.seconds} s windows`);
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  const samples = await measureAll(options);
  console.log(['', ...summaryTable(samples, options), '', ...everyPairTable(samples, options)].join('\n'));
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
