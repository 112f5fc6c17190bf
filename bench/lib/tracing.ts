// Traced raftlock processes for the tracing benchmarks and their smoke test: whether a server build
// has tracing, its flags, a 3-node cluster exporting to an in-harness OTLP receiver, and the spans
// of one workload (the exporters flushed, the traces of other commands left out).
import { spawnSync } from 'node:child_process';
import { ProcessCluster } from './cluster.js';
import { tracesOf, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver.js';
import { RAFTLOCK_MAIN } from './proc.js';

/** Why the server at `main` cannot be traced (it has no --trace flag, or does not run), or null. */
export function tracingProblem(main = RAFTLOCK_MAIN): string | null {
  const result = spawnSync(process.execPath, [main, '--help'], { encoding: 'utf8', timeout: 30_000 });
  if (result.error !== undefined || result.status !== 0) {
    return `\`node ${main} --help\` failed (${result.error?.message ?? `exit ${result.status}`}): run npm run build\n${result.stderr}`;
  }
  if (!/--trace\b/.test(result.stdout)) return `the server build ${main} has no --trace flag (\`node ${main} --help\`): it was built without tracing`;
  return null;
}

/** The server flags that turn tracing on at a sampling ratio (0..1). */
export function traceArgs(sampleRatio: number): string[] {
  return ['--trace', '--trace-sample-ratio', String(sampleRatio)];
}

/**
 * The exporter env of a traced benchmark run: OTLP JSON to `receiver`, a 200 ms batch delay so spans
 * arrive soon after a workload, and a queue large enough that a sampled burst is not dropped.
 */
export function benchmarkTraceEnv(receiver: OtlpReceiver): Record<string, string> {
  return receiver.env({ scheduleDelayMs: 200, queueSizeMax: 65_536, exportBatchSizeMax: 4096 });
}

/** A cluster whose nodes trace at `sampleRatio` into `receiver` (benchmarkTraceEnv). */
export function startTracedCluster(options: {
  receiver: OtlpReceiver;
  sampleRatio: number;
  nodes?: number;
  partitions: number;
}): Promise<ProcessCluster> {
  const problem = tracingProblem();
  if (problem !== null) return Promise.reject(new Error(problem));
  return ProcessCluster.start({
    nodes: options.nodes ?? 3, partitions: options.partitions, args: traceArgs(options.sampleRatio), env: benchmarkTraceEnv(options.receiver),
  });
}

/** How long the exporters must stay silent before a workload's spans count as all received. */
const QUIET_MS = 1000;
const FLUSH_TIMEOUT_MS = 30_000;

/**
 * Runs `load` with the receiver emptied first (after the exporters went quiet, so the spans of what
 * ran before stay out), waits until they are quiet again, and returns the traces whose root is the
 * server span of `command`.
 */
export async function spansOfWorkload<T>(receiver: OtlpReceiver, command: string, load: () => Promise<T>): Promise<{ result: T; spans: ReceivedSpan[] }> {
  await receiver.waitQuiet(QUIET_MS, FLUSH_TIMEOUT_MS);
  receiver.clear();
  const result = await load();
  await receiver.waitQuiet(QUIET_MS, FLUSH_TIMEOUT_MS);
  receiver.assertJson();
  return { result, spans: tracesOf(receiver.spans, command) };
}
