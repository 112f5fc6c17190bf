import type { CommandSpec } from '../commands/spec.js';
import { Histogram } from './histogram.js';

/**
 * Why a command was refused before it ran (Redis's rejected_calls): the
 * checks dispatch makes before any handler, in its order.
 */
export type Refusal = 'unknown_command' | 'unknown_subcommand' | 'arity' | 'noauth' | 'syntax';

export const REFUSALS: readonly Refusal[] = ['unknown_command', 'unknown_subcommand', 'arity', 'noauth', 'syntax'];

/** One command's counters, as INFO commandstats reports them. */
export class CommandStats {
  /** Runs, failed ones included; refused ones are not runs. */
  calls = 0;
  /** Time from decoding the command to its reply being ready, summed over the runs (fractional µs). */
  usec = 0;
  /** Refused before running: arity, NOAUTH, syntax. */
  rejectedCalls = 0;
  /** Ran and answered an error. */
  failedCalls = 0;
  /** Durations in ns; created on the first run, as Redis does, so unused commands cost no memory. */
  histogram: Histogram | null = null;

  constructor(readonly spec: CommandSpec) {}

  /** A run: `durationMs` from decoding to its reply, `failed` when the reply holds an error. */
  ran(durationMs: number, failed: boolean): void {
    this.calls += 1;
    this.usec += durationMs * 1000;
    if (failed) this.failedCalls += 1;
    (this.histogram ??= new Histogram()).record(durationMs * 1e6);
  }

  reset(): void {
    this.calls = 0;
    this.usec = 0;
    this.rejectedCalls = 0;
    this.failedCalls = 0;
    this.histogram = null;
  }
}

/**
 * Every command's statistics on one node, made when the server starts for
 * each command and subcommand of the table, so recording a command is a map
 * lookup by its spec and a few increments.
 */
export class CommandStatsTable {
  private readonly bySpec = new Map<CommandSpec, CommandStats>();
  /** Refusals by reason, unknown commands (which have no CommandStats) included. */
  readonly refusals: Record<Refusal, number> = { unknown_command: 0, unknown_subcommand: 0, arity: 0, noauth: 0, syntax: 0 };

  constructor(commands: readonly CommandSpec[]) {
    for (const spec of commands) {
      this.bySpec.set(spec, new CommandStats(spec));
      for (const sub of spec.subcommands ?? []) this.bySpec.set(sub, new CommandStats(sub));
    }
  }

  /** A command refused before it ran; spec is null when argv named no command. */
  refused(spec: CommandSpec | null, reason: Refusal): void {
    this.refusals[reason] += 1;
    if (spec === null) return;
    const stats = this.bySpec.get(spec);
    if (stats !== undefined) stats.rejectedCalls += 1;
  }

  /** The statistics of a command of the table (any spec dispatch reports). */
  of(spec: CommandSpec): CommandStats | undefined {
    return this.bySpec.get(spec);
  }

  /** Every command and subcommand, in table order (a container before its subcommands). */
  all(): IterableIterator<CommandStats> {
    return this.bySpec.values();
  }

  /** CONFIG RESETSTAT. */
  reset(): void {
    for (const stats of this.bySpec.values()) stats.reset();
    for (const reason of REFUSALS) this.refusals[reason] = 0;
  }
}
