// End-to-end benchmark: redis-benchmark with identical parameters against raftlock and redis-server
// (Debian) in the same run, interleaved so that machine noise hits both. Writes bench/RESULTS.md.
// Reproduce: npm run bench   (= npm run build && node dist/bench/run.js [--runs N] [--requests N])
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { missingTools, RAFTLOCK_MAIN, REPO_ROOT, SERVER_COMMAND, runCommand, startRaftlock, startRedisServer, type ServerProcess } from './lib/proc.js';
import { positiveInt } from './lib/args.js';
import { commandOutput, machineFacts, writeHead } from './lib/report.js';

/**
 * 'redis' is redis-server in memory (no persistence); 'redis-fsync' is
 * redis-server with appendonly yes and appendfsync always, the fair baseline
 * for raftlock's PERSISTENT writes, which are fdatasync'd before the reply.
 */
type ServerName = 'raftlock' | 'redis' | 'redis-fsync';

interface Workload {
  label: string;
  /** redis-benchmark arguments that select the workload. */
  args: string[];
  servers: ServerName[];
  /** The redis-server workload and server this one's ratio is measured against. */
  baseline: string;
  baselineServer: Exclude<ServerName, 'raftlock'>;
  /** Minimum raftlock/redis ratio by pipeline depth, if an issue sets one. */
  targets?: Record<number, number>;
}

/** Single-node issue: in-memory paths against in-memory redis-server. */
const MEMORY_TARGETS = { 1: 0.5, 16: 0.45 };
/** Raft and storage issue: durable PERSISTENT KLOCK against redis-server with fsync always, -P 16. */
const DURABLE_TARGETS = { 16: 0.5 };
const SET_NX_PX = ['SET', 'lock:__rand_int__', 'v', 'NX', 'PX', '30000'];
const WORKLOADS: Workload[] = [
  { label: 'PING', args: ['-t', 'ping_mbulk'], servers: ['raftlock', 'redis'], baseline: 'PING', baselineServer: 'redis' },
  { label: 'SET NX PX', args: SET_NX_PX, servers: ['raftlock', 'redis', 'redis-fsync'], baseline: 'SET NX PX', baselineServer: 'redis-fsync' },
  {
    label: 'KLOCK EPHEMERAL',
    args: ['KLOCK', 'lock:__rand_int__', 'o', '30000', 'EPHEMERAL'],
    servers: ['raftlock'],
    baseline: 'SET NX PX',
    baselineServer: 'redis',
    targets: MEMORY_TARGETS,
  },
  {
    label: 'KLOCK PERSISTENT',
    args: ['KLOCK', 'lock:__rand_int__', 'o', '30000', 'PERSISTENT'],
    servers: ['raftlock'],
    baseline: 'SET NX PX',
    baselineServer: 'redis-fsync',
    targets: DURABLE_TARGETS,
  },
];

const SERVER_LABEL: Record<ServerName, string> = {
  raftlock: 'raftlock',
  redis: 'redis-server (in memory)',
  'redis-fsync': 'redis-server (appendfsync always)',
};
const PIPELINES = [1, 16];
const CLIENTS = 50;
const KEYSPACE = 100_000;

interface Options {
  runs: number;
  requests: number;
  out: string;
  check: boolean;
}

interface Sample {
  rps: number;
  p50Ms: number | null;
}

/** Samples by `${workload}|${pipeline}|${server}`, in run order. */
type Samples = Map<string, Sample[]>;

const sampleKey = (label: string, pipeline: number, server: ServerName): string => `${label}|${pipeline}|${server}`;

function parseOptions(argv: string[]): Options {
  const program = new Command()
    .name('npm run bench --')
    .description('redis-benchmark against raftlock and redis-server in the same run; writes bench/RESULTS.md')
    .option('--runs <n>', 'measurements of each workload per server (medians are reported)', positiveInt, 5)
    .option('--requests <n>', 'requests per measurement (redis-benchmark -n)', positiveInt, 200_000)
    .option('--quick', 'a short run: 2 runs of 20000 requests, written to bench/out/RESULTS-quick.md')
    .option('--out <file>', 'where to write the results (default bench/RESULTS.md)')
    .option('--check', 'exit with code 1 if a target is missed')
    .parse(argv);
  const raw = program.opts<{ runs: number; requests: number; quick?: boolean; out?: string; check?: boolean }>();
  const explicit = (name: string): boolean => program.getOptionValueSource(name) === 'cli';
  const runs = raw.quick === true && !explicit('runs') ? 2 : raw.runs;
  const requests = raw.quick === true && !explicit('requests') ? 20_000 : raw.requests;
  const defaultOut = raw.quick === true ? join('bench', 'out', 'RESULTS-quick.md') : join('bench', 'RESULTS.md');
  return { runs, requests, out: join(REPO_ROOT, raw.out ?? defaultOut), check: raw.check === true };
}

function benchmarkArgs(port: number, workload: Workload, pipeline: number, options: Options): string[] {
  return [
    '-h', '127.0.0.1', '-p', String(port),
    '-c', String(CLIENTS), '-n', String(options.requests), '-r', String(KEYSPACE),
    ...(pipeline > 1 ? ['-P', String(pipeline)] : []),
    '--csv', '-q', ...workload.args,
  ];
}

/** Splits one line of redis-benchmark's CSV ("a","b",...). */
function csvFields(line: string): string[] {
  return [...line.matchAll(/"((?:[^"]|"")*)"/g)].map((m) => m[1]!.replace(/""/g, '"'));
}

/** Parses redis-benchmark --csv output: a header line, then one row per test (we run one). */
export function parseCsv(output: string): Sample {
  const lines = output.split(/\r?\n|\r/).filter((l) => l.startsWith('"'));
  const headerAt = lines.findIndex((l) => l.startsWith('"test"'));
  if (headerAt < 0 || lines[headerAt + 1] === undefined) throw new Error('no CSV result in redis-benchmark output');
  const header = csvFields(lines[headerAt]!);
  const row = csvFields(lines[headerAt + 1]!);
  const rps = Number(row[header.indexOf('rps')]);
  const p50At = header.indexOf('p50_latency_ms');
  const p50Ms = p50At >= 0 && row[p50At] !== undefined ? Number(row[p50At]) : null;
  if (!Number.isFinite(rps) || rps <= 0) throw new Error(`no positive rps in redis-benchmark output row ${lines[headerAt + 1]}`);
  return { rps, p50Ms: p50Ms !== null && Number.isFinite(p50Ms) ? p50Ms : null };
}

/** Runs redis-benchmark once; rejects on a non-zero exit, a server error or a timeout. */
async function runBenchmark(args: string[], timeoutMs: number): Promise<Sample> {
  const result = await runCommand('redis-benchmark', args, { timeoutMs });
  const output = result.stdout + result.stderr;
  if (result.code !== 0) throw new Error(`${result.command} exited with ${result.code ?? result.signal}\n${output}`);
  if (/Error from server|\bERR\b/.test(output)) throw new Error(`${result.command} reported errors:\n${output}`);
  try {
    return parseCsv(result.stdout);
  } catch (error) {
    throw new Error(`${result.command}: ${(error as Error).message}\n${output}`);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function assertAlive(servers: Record<ServerName, ServerProcess>): void {
  for (const server of Object.values(servers)) {
    const status = server.exitStatus;
    if (status !== null) {
      throw new Error(`${server.describe()} died during the benchmark (code ${status.code}, signal ${status.signal})\n--- stderr ---\n${server.stderr}`);
    }
  }
}

/** Every workload × pipeline × server, `runs` times; the server order alternates between runs. */
async function measure(servers: Record<ServerName, ServerProcess>, options: Options): Promise<Samples> {
  const samples: Samples = new Map();
  const timeoutMs = Math.max(120_000, options.requests * 5);
  for (let run = 1; run <= options.runs; run++) {
    for (const workload of WORKLOADS) {
      for (const pipeline of PIPELINES) {
        const order = run % 2 === 1 ? workload.servers : [...workload.servers].reverse();
        for (const name of order) {
          const sample = await runBenchmark(benchmarkArgs(servers[name].port, workload, pipeline, options), timeoutMs);
          assertAlive(servers);
          const key = sampleKey(workload.label, pipeline, name);
          samples.set(key, [...(samples.get(key) ?? []), sample]);
          console.log(`run ${run}/${options.runs}  ${workload.label.padEnd(16)} P=${String(pipeline).padEnd(3)} ${name.padEnd(9)} ${Math.round(sample.rps).toString().padStart(8)} rps`);
        }
      }
    }
  }
  return samples;
}

interface Row {
  workload: string;
  pipeline: number;
  raftlockRps: number;
  redisRps: number;
  redisWorkload: string;
  redisServer: Exclude<ServerName, 'raftlock'>;
  ratio: number;
  raftlockP50Ms: number | null;
  redisP50Ms: number | null;
  target: number | null;
}

function medianP50(samples: Sample[]): number | null {
  const values = samples.map((s) => s.p50Ms).filter((v): v is number => v !== null);
  return values.length === samples.length && values.length > 0 ? median(values) : null;
}

function summarize(samples: Samples): Row[] {
  const rows: Row[] = [];
  for (const workload of WORKLOADS) {
    for (const pipeline of PIPELINES) {
      const ours = samples.get(sampleKey(workload.label, pipeline, 'raftlock')) ?? [];
      const theirs = samples.get(sampleKey(workload.baseline, pipeline, workload.baselineServer)) ?? [];
      const raftlockRps = median(ours.map((s) => s.rps));
      const redisRps = median(theirs.map((s) => s.rps));
      rows.push({
        workload: workload.label,
        pipeline,
        raftlockRps,
        redisRps,
        redisWorkload: workload.baseline,
        redisServer: workload.baselineServer,
        ratio: raftlockRps / redisRps,
        raftlockP50Ms: medianP50(ours),
        redisP50Ms: medianP50(theirs),
        target: workload.targets?.[pipeline] ?? null,
      });
    }
  }
  return rows;
}

function verdict(row: Row): string {
  if (row.target === null) return '—';
  return `${row.ratio >= row.target ? 'PASS' : 'FAIL'} (≥ ${row.target}×)`;
}

const fmtRps = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmtMs = (n: number | null): string => (n === null ? 'n/a' : n.toFixed(3));

function printTable(rows: Row[]): void {
  const table = rows.map((r) => ({
    workload: r.workload,
    pipeline: r.pipeline,
    'raftlock rps (median)': fmtRps(r.raftlockRps),
    baseline: `${r.redisServer}${r.redisWorkload === r.workload ? '' : ` ${r.redisWorkload}`}`,
    'baseline rps (median)': fmtRps(r.redisRps),
    ratio: `${r.ratio.toFixed(2)}×`,
    'p50 ms raftlock': fmtMs(r.raftlockP50Ms),
    'p50 ms baseline': fmtMs(r.redisP50Ms),
    target: verdict(r),
  }));
  console.table(table);
}

function resultsMarkdown(rows: Row[], samples: Samples, options: Options, invocation: string): string {
  const lines = [
    '# raftlock vs redis-server: redis-benchmark results',
    '',
    `Produced by \`${invocation}\` (\`npm run bench\` runs \`npm run build && node dist/bench/run.js\`) on ${new Date().toISOString()}.`,
    '',
    'Single node. The 3-node cluster (against etcd 3.4 in the same run) and failover numbers are in [RESULTS-cluster.md](RESULTS-cluster.md); Redlock and EVALSHA (against redis-server in the same run) in [RESULTS-redlock.md](RESULTS-redlock.md); restart, Raft and WAL numbers in RESULTS-restart.md, RESULTS-raft.md and RESULTS-wal.md.',
    '',
    '## Machine',
    '',
    ...machineFacts([
      { name: 'redis-server', version: commandOutput('redis-server', ['--version']) },
      { name: 'redis-benchmark', version: commandOutput('redis-benchmark', ['--version']) },
    ]),
    '',
    '## Method',
    '',
    `All servers run on 127.0.0.1 on free ports: raftlock as \`${SERVER_COMMAND} --port P --bind 127.0.0.1 --data-dir <tmp>\`; ` +
      `redis-server in memory as \`redis-server --port P --bind 127.0.0.1 --dir <tmp> --save '' --appendonly no\`; ` +
      'and redis-server with the same flags plus `--appendonly yes --appendfsync always` (fsync before every reply). ' +
      `Each workload is measured ${options.runs} times per server with the same redis-benchmark arguments; ` +
      'measurements alternate between the servers (the order flips every run) so that machine noise hits all. ' +
      'Reported numbers are medians; the ratio is raftlock median / baseline median.',
    '',
    'raftlock\'s PERSISTENT writes (KLOCK PERSISTENT and the Redis keyspace, so SET NX PX too) are fdatasync\'d to the ' +
      'write-ahead log before the reply, so their baseline is redis-server with appendfsync always. EPHEMERAL locks live in ' +
      'memory, so KLOCK EPHEMERAL is compared with in-memory redis-server\'s SET NX PX.',
    '',
    'The commands (P = the server\'s port):',
    '',
    '```sh',
    ...WORKLOADS.flatMap((w) => PIPELINES.map((p) => `redis-benchmark ${benchmarkArgs(0, w, p, options).join(' ').replace('-p 0', '-p P')}`)),
    '```',
    '',
    `Locks live 30 s and \`-r ${KEYSPACE}\` draws from ${KEYSPACE} keys, so after the first measurement most SET NX PX requests ` +
      'find the key held and get a nil reply (KLOCK by the same owner gets its token back); both servers see the same sequence. Such requests change nothing: redis-server writes nothing to its AOF for them, and raftlock answers them from the leader\'s state under its lease without a log entry (when no write to the key is in flight), so the PERSISTENT `-P 16` numbers mostly measure that path plus the writes for keys whose lock expired.',
    '',
    '## Medians and targets',
    '',
    '| workload | pipeline | raftlock rps | baseline | baseline rps | ratio | p50 ms raftlock | p50 ms baseline | target |',
    '|---|---:|---:|---|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.workload} | ${r.pipeline} | ${fmtRps(r.raftlockRps)} | ${SERVER_LABEL[r.redisServer]}${r.redisWorkload === r.workload ? '' : ` ${r.redisWorkload}`} | ${fmtRps(r.redisRps)} | ${r.ratio.toFixed(2)}× | ${fmtMs(r.raftlockP50Ms)} | ${fmtMs(r.redisP50Ms)} | ${verdict(r)} |`),
    '',
    `Targets: KLOCK EPHEMERAL ≥ ${MEMORY_TARGETS[1]}× in-memory redis-server SET NX PX unpipelined and ≥ ${MEMORY_TARGETS[16]}× with \`-P 16\`; ` +
      `KLOCK PERSISTENT ≥ ${DURABLE_TARGETS[16]}× redis-server (appendfsync always) SET NX PX with \`-P 16\`.`,
    '',
    '## Every run (requests per second)',
    '',
    `| workload | pipeline | server | ${Array.from({ length: options.runs }, (_, i) => `run ${i + 1}`).join(' | ')} | median |`,
    `|---|---:|---|${'---:|'.repeat(options.runs + 1)}`,
  ];
  for (const w of WORKLOADS) {
    for (const p of PIPELINES) {
      for (const server of w.servers) {
        const values = (samples.get(sampleKey(w.label, p, server)) ?? []).map((s) => s.rps);
        lines.push(`| ${w.label} | ${p} | ${SERVER_LABEL[server]} | ${values.map(fmtRps).join(' | ')} | ${fmtRps(median(values))} |`);
      }
    }
  }
  return lines.join('\n') + '\n';
}

function preflight(): void {
  const missing = missingTools(['redis-server', 'redis-benchmark']);
  if (missing.length > 0) {
    throw new Error(`the benchmark needs ${missing.join(' and ')}, not found on PATH`);
  }
  if (!existsSync(RAFTLOCK_MAIN)) throw new Error(`${RAFTLOCK_MAIN} does not exist; run npm run build (npm run bench builds first)`);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv);
  preflight();
  const invocation = `node dist/bench/run.js ${process.argv.slice(2).join(' ')}`.trim();
  console.log(`${options.runs} runs × ${WORKLOADS.length} workloads × ${PIPELINES.length} pipeline depths, ${options.requests} requests each`);
  const started: ServerProcess[] = [];
  const stopAll = (): Promise<unknown> => Promise.all(started.map((s) => s.stop()));
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  process.once('SIGTERM', () => void stopAll().then(() => process.exit(143)));
  let rows: Row[];
  let samples: Samples;
  try {
    const raftlock = await startRaftlock();
    started.push(raftlock);
    const redis = await startRedisServer();
    started.push(redis);
    const redisFsync = await startRedisServer({ extraArgs: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    started.push(redisFsync);
    console.log(`raftlock on port ${raftlock.port}, redis-server on ${redis.port}, redis-server (fsync always) on ${redisFsync.port}`);
    samples = await measure({ raftlock, redis, 'redis-fsync': redisFsync }, options);
    rows = summarize(samples);
  } finally {
    await stopAll();
  }
  printTable(rows);
  writeHead(options.out, resultsMarkdown(rows, samples, options, invocation));
  console.log(`wrote ${relative(process.cwd(), options.out) || options.out}`);
  const failed = rows.filter((r) => r.target !== null && r.ratio < r.target);
  if (failed.length > 0) console.log(`targets missed: ${failed.map((r) => `${r.workload} P=${r.pipeline} (${r.ratio.toFixed(2)}× < ${r.target}×)`).join(', ')}`);
  else console.log('all targets met');
  if (options.check && failed.length > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
