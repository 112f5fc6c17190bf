/** Arguments kept per entry; the last kept one says how many more there were (Redis's limits). */
export const SLOWLOG_ARGC_MAX = 32;
/** Bytes kept per argument; the rest is replaced by "... (N more bytes)". */
export const SLOWLOG_ARG_BYTES_MAX = 128;

export const SLOWLOG_DEFAULTS = { slowerThanUs: 10_000, maxLen: 128 } as const;

export interface SlowlogEntry {
  readonly id: number;
  /** Unix time (s) when the command finished. */
  readonly timeSeconds: number;
  readonly durationUs: number;
  /** Trimmed and redacted copy of argv (binary strings). */
  readonly argv: readonly string[];
  readonly addr: string;
  readonly name: string;
}

export interface SlowCommand {
  /** The command's full name ('auth', 'client|list'), for redaction. */
  readonly command: string;
  readonly argv: readonly string[];
  readonly durationUs: number;
  readonly addr: string;
  readonly name: string;
  readonly wallMs: number;
}

/**
 * The slow log (SLOWLOG): the latest commands that took at least
 * slowerThanUs from decoding to reply, newest first, at most maxLen of them.
 * Both settings change at run time (CONFIG SET), so they live here rather
 * than in the server's fixed settings.
 */
export class Slowlog {
  /** slowlog-log-slower-than (µs): negative turns the log off, 0 logs every command. */
  slowerThanUs: number;
  private maxLenValue: number;
  /** Oldest first. */
  private entries: SlowlogEntry[] = [];
  private nextId = 0;

  constructor(settings: { slowerThanUs: number; maxLen: number } = SLOWLOG_DEFAULTS) {
    this.slowerThanUs = settings.slowerThanUs;
    this.maxLenValue = settings.maxLen;
  }

  /** slowlog-max-len; lowering it drops the oldest entries at once. */
  get maxLen(): number {
    return this.maxLenValue;
  }

  set maxLen(n: number) {
    this.maxLenValue = n;
    this.trim();
  }

  get length(): number {
    return this.entries.length;
  }

  /** Whether a command that took durationUs goes to the log: the only check on every command. */
  logs(durationUs: number): boolean {
    return this.slowerThanUs >= 0 && durationUs >= this.slowerThanUs;
  }

  push(command: SlowCommand): void {
    this.entries.push({
      id: this.nextId++,
      timeSeconds: Math.floor(command.wallMs / 1000),
      durationUs: Math.round(command.durationUs),
      argv: trimArgv(command.command, command.argv),
      addr: command.addr,
      name: command.name,
    });
    this.trim();
  }

  /** The newest `count` entries, newest first. */
  newest(count: number): SlowlogEntry[] {
    return this.entries.slice(Math.max(0, this.entries.length - count)).reverse();
  }

  reset(): void {
    this.entries = [];
  }

  private trim(): void {
    if (this.entries.length > this.maxLenValue) this.entries.splice(0, this.entries.length - this.maxLenValue);
  }
}

/**
 * What the log keeps of argv, as Redis does: at most SLOWLOG_ARGC_MAX
 * arguments (the last one kept becomes "... (N more arguments)"), each cut to
 * SLOWLOG_ARG_BYTES_MAX bytes plus "... (N more bytes)", and passwords
 * (AUTH's arguments, HELLO's after AUTH) replaced by "(redacted)".
 */
export function trimArgv(command: string, argv: readonly string[]): string[] {
  const kept = Math.min(argv.length, SLOWLOG_ARGC_MAX);
  const secret = secretArguments(command, argv);
  const out: string[] = [];
  for (let j = 0; j < kept; j++) {
    const arg = argv[j]!;
    if (kept < argv.length && j === kept - 1) out.push(`... (${argv.length - kept + 1} more arguments)`);
    else if (secret.has(j)) out.push('(redacted)');
    else if (arg.length > SLOWLOG_ARG_BYTES_MAX) out.push(`${arg.slice(0, SLOWLOG_ARG_BYTES_MAX)}... (${arg.length - SLOWLOG_ARG_BYTES_MAX} more bytes)`);
    else out.push(arg);
  }
  return out;
}

function secretArguments(command: string, argv: readonly string[]): Set<number> {
  const secret = new Set<number>();
  if (command === 'auth') for (let j = 1; j < argv.length; j++) secret.add(j);
  if (command === 'hello') {
    for (let j = 2; j + 2 < argv.length; j++) {
      if (argv[j]!.toUpperCase() === 'AUTH') secret.add(j + 1).add(j + 2);
    }
  }
  return secret;
}
