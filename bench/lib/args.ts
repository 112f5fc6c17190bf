// Command-line argument parsers shared by the benchmarks.
import { InvalidArgumentError, type Command } from 'commander';

/** commander argParser: an integer >= 1. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** For --quick: picks an option's short value unless it was given on the command line. */
export function quickPicker(program: Command, quick: boolean): <T>(name: string, full: T, short: T) => T {
  return (name, full, short) => (quick && program.getOptionValueSource(name) !== 'cli' ? short : full);
}
