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

/** An entry as the ring holds it: overwritten in place once the ring is full. */
type MutableEntry = { -readonly [K in keyof SlowlogEntry]: SlowlogEntry[K] };

/**
 * The slow log (SLOWLOG): the latest commands that took at least
 * slowerThanUs from decoding to reply, newest first, at most maxLen of them.
 * Both settings change at run time (CONFIG SET), so they live here rather
 * than in the server's fixed settings.
 */
export class Slowlog {
  /** slowlog-log-slower-than (µs): negative turns the log off, 0 logs every command. */
  slowerThanUs: number;
  /**
   * A ring of at most maxLen entries, grown as entries come: the oldest is at `start` (0 until it
   * is full). Under saturation every command may be slow; a push then overwrites the oldest entry
   * in place, allocating nothing (entries handed out by newest() are read before the next push).
   */
  private ring: MutableEntry[] = [];
  private start = 0;
  private capacity: number;
  private nextId = 0;

  constructor(settings: { slowerThanUs: number; maxLen: number } = SLOWLOG_DEFAULTS) {
    this.slowerThanUs = settings.slowerThanUs;
    this.capacity = settings.maxLen;
  }

  /** slowlog-max-len; lowering it drops the oldest entries at once. */
  get maxLen(): number {
    return this.capacity;
  }

  set maxLen(n: number) {
    this.ring = this.entries(n).reverse();
    this.start = 0;
    this.capacity = n;
  }

  get length(): number {
    return this.ring.length;
  }

  /** Whether a command that took durationUs goes to the log: the only check on every command. */
  logs(durationUs: number): boolean {
    return this.slowerThanUs >= 0 && durationUs >= this.slowerThanUs;
  }

  /**
   * Logs a command that took durationUs and finished at wallMs (Unix ms). command: its full name
   * ('auth', 'client|list'), for redaction; addr and name: its client's.
   */
  push(command: string, argv: readonly string[], durationUs: number, addr: string, name: string, wallMs: number): void {
    const id = this.nextId++;
    if (this.capacity === 0) return;
    const timeSeconds = Math.floor(wallMs / 1000);
    const trimmed = trimArgv(command, argv);
    durationUs = Math.round(durationUs);
    if (this.ring.length < this.capacity) {
      this.ring.push({ id, timeSeconds, durationUs, argv: trimmed, addr, name });
      return;
    }
    const entry = this.ring[this.start]!;
    entry.id = id;
    entry.timeSeconds = timeSeconds;
    entry.durationUs = durationUs;
    entry.argv = trimmed;
    entry.addr = addr;
    entry.name = name;
    this.start = (this.start + 1) % this.capacity;
  }

  /** The newest `count` entries, newest first. */
  newest(count: number): SlowlogEntry[] {
    return this.entries(count);
  }

  private entries(count: number): MutableEntry[] {
    const out: MutableEntry[] = [];
    const size = this.ring.length;
    for (let i = size - 1; i >= 0 && out.length < count; i--) out.push(this.ring[(this.start + i) % size]!);
    return out;
  }

  reset(): void {
    this.ring = [];
    this.start = 0;
  }
}

/**
 * What the log keeps of argv, as Redis does: at most SLOWLOG_ARGC_MAX
 * arguments (the last one kept becomes "... (N more arguments)"), each cut to
 * SLOWLOG_ARG_BYTES_MAX bytes plus "... (N more bytes)", and passwords
 * (AUTH's arguments, HELLO's after AUTH) replaced by "(redacted)". An argv
 * with nothing to trim or redact is kept as it is (nothing changes a
 * command's argv once it ran), not copied.
 */
export function trimArgv(command: string, argv: readonly string[]): readonly string[] {
  const secret = secretArguments(command, argv);
  if (secret === null && argv.length <= SLOWLOG_ARGC_MAX && !argv.some(tooLong)) return argv;
  const kept = Math.min(argv.length, SLOWLOG_ARGC_MAX);
  const out: string[] = [];
  for (let j = 0; j < kept; j++) {
    const arg = argv[j]!;
    if (kept < argv.length && j === kept - 1) out.push(`... (${argv.length - kept + 1} more arguments)`);
    else if (secret?.has(j) === true) out.push('(redacted)');
    else if (arg.length > SLOWLOG_ARG_BYTES_MAX) out.push(`${arg.slice(0, SLOWLOG_ARG_BYTES_MAX)}... (${arg.length - SLOWLOG_ARG_BYTES_MAX} more bytes)`);
    else out.push(arg);
  }
  return out;
}

const tooLong = (arg: string): boolean => arg.length > SLOWLOG_ARG_BYTES_MAX;

/** The positions of passwords in argv; null for a command that takes none. */
function secretArguments(command: string, argv: readonly string[]): Set<number> | null {
  if (command !== 'auth' && command !== 'hello') return null;
  const secret = new Set<number>();
  if (command === 'auth') for (let j = 1; j < argv.length; j++) secret.add(j);
  if (command === 'hello') {
    for (let j = 2; j + 2 < argv.length; j++) {
      if (argv[j]!.toUpperCase() === 'AUTH') secret.add(j + 1).add(j + 2);
    }
  }
  return secret;
}
