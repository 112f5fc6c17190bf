// Command-line argument parsers shared by the benchmarks.
import { InvalidArgumentError } from 'commander';

/** commander argParser: an integer >= 1. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}
