// Runs redis-benchmark and reads its --csv result.
import { runCommand } from './proc.js';

export interface BenchmarkSample {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** The first error reply redis-benchmark showed (it runs with -e), or null. */
  error: string | null;
}

/** The first error reply in redis-benchmark's output (it prints "Error from server: ..."), or null. */
export function errorReplyIn(output: string): string | null {
  return /Error from server[^:]*: (.*)/.exec(output)?.[1] ?? null;
}

/** Splits one line of redis-benchmark's CSV ("a","b",...). */
function csvFields(line: string): string[] {
  return [...line.matchAll(/"((?:[^"]|"")*)"/g)].map((m) => m[1]!.replace(/""/g, '"'));
}

/** Parses redis-benchmark --csv output: a header line, then one row for the one test run. */
export function parseBenchmarkCsv(output: string): Omit<BenchmarkSample, 'error'> {
  const lines = output.split(/\r?\n|\r/).filter((l) => l.startsWith('"'));
  const headerAt = lines.findIndex((l) => l.startsWith('"test"'));
  if (headerAt < 0 || lines[headerAt + 1] === undefined) throw new Error('no CSV result in redis-benchmark output');
  const header = csvFields(lines[headerAt]!);
  const row = csvFields(lines[headerAt + 1]!);
  const field = (name: string): number => Number(row[header.indexOf(name)]);
  const rps = field('rps');
  if (!Number.isFinite(rps) || rps <= 0) throw new Error(`no positive rps in redis-benchmark output row ${lines[headerAt + 1]}`);
  return { rps, p50Ms: field('p50_latency_ms'), p99Ms: field('p99_latency_ms') };
}

/** Runs redis-benchmark once; rejects on a non-zero exit or a timeout. Error replies are returned, not thrown. */
export async function runRedisBenchmark(args: string[], timeoutMs: number): Promise<BenchmarkSample> {
  const result = await runCommand('redis-benchmark', args, { timeoutMs });
  const output = result.stdout + result.stderr;
  if (result.code !== 0) throw new Error(`${result.command} exited with ${result.code ?? result.signal}\n${output}`);
  const error = errorReplyIn(output);
  try {
    return { ...parseBenchmarkCsv(result.stdout), error };
  } catch (e) {
    throw new Error(`${result.command}: ${(e as Error).message}\n${output}`);
  }
}

/**
 * runRedisBenchmark, except that a run redis-benchmark stopped at an error reply (version 7 exits at
 * the first, whatever -e says) resolves with NaN numbers and that reply, for the caller to exclude.
 */
export async function runRedisBenchmarkOrErrorReply(args: string[], timeoutMs: number): Promise<BenchmarkSample> {
  try {
    return await runRedisBenchmark(args, timeoutMs);
  } catch (error) {
    const reply = errorReplyIn((error as Error).message);
    if (reply === null) throw error;
    return { rps: NaN, p50Ms: NaN, p99Ms: NaN, error: reply };
  }
}
