/**
 * Client histories of raftlock lock commands (DESIGN.md §2), as recorded by the
 * deterministic simulator and by real-process fault-injection tests, and read
 * by the linearizability checker (checker.ts) and the mutex checker (mutex.ts).
 *
 * Times are integer milliseconds. `call` and `ret` are read from the
 * recorder's clock (the simulator's global clock, or the test process's
 * monotonic clock); `logTime` is the server's log time at which it applied the
 * operation, when the recorder knows it. An op's instant on the lease clock is
 * its logTime, else some instant in [call, ret]: so within one lock, either
 * every op that took effect carries logTime (see logTimeComplete) or the
 * recorder's clock must be the lease clock (up to the checkers' timeSlackMs).
 */

export type Durability = 'persistent' | 'ephemeral';

interface Target {
  readonly resource: string;
  readonly durability: Durability;
}

/** The commands of DESIGN.md §2: KLOCK, KUNLOCK, KEXTEND, KGETLOCK. */
export type LockInput =
  | (Target & { readonly kind: 'lock'; readonly owner: string; readonly ttlMs: number })
  | (Target & { readonly kind: 'unlock'; readonly owner: string })
  | (Target & { readonly kind: 'extend'; readonly owner: string; readonly ttlMs: number })
  | (Target & { readonly kind: 'get' });

/** KGETLOCK's reply when the lock is held. */
export interface LockInfoOutput {
  readonly owner: string;
  readonly token: bigint;
  readonly remainingMs: number;
}

/** lock/extend: token or null; unlock: boolean; get: null or LockInfoOutput. */
export type LockOutput = bigint | null | boolean | LockInfoOutput;

export interface LockOp {
  readonly id: number;
  readonly client: string;
  /** Invocation time. */
  readonly call: number;
  /** Reply time; undefined when no reply was seen (timeout, crash): it may or may not have taken effect. */
  readonly ret: number | undefined;
  readonly input: LockInput;
  /** Undefined exactly when ret is undefined. */
  readonly output: LockOutput | undefined;
  /**
   * Log time at which the server applied (or, for get, served) the operation.
   * Set it only when the operation did take effect; the checkers then use it
   * instead of [call, ret] as the operation's instant on the lease clock.
   */
  readonly logTime?: number;
}

/** A partition of the history: operations on one lock in one namespace. */
export interface PartitionKey {
  readonly durability: Durability;
  readonly resource: string;
}

export function partitionKeyOf(input: LockInput): PartitionKey {
  return { durability: input.durability, resource: input.resource };
}

export function formatPartition(key: PartitionKey): string {
  return `${key.durability} ${JSON.stringify(key.resource)}`;
}

/** Groups operations by (durability, resource), keeping history order inside each group. */
export function partitionHistory(history: readonly LockOp[]): Map<string, { key: PartitionKey; ops: LockOp[] }> {
  const groups = new Map<string, { key: PartitionKey; ops: LockOp[] }>();
  for (const op of history) {
    const name = `${op.input.durability}\u0000${op.input.resource}`;
    let group = groups.get(name);
    if (group === undefined) {
      group = { key: partitionKeyOf(op.input), ops: [] };
      groups.set(name, group);
    }
    group.ops.push(op);
  }
  return groups;
}

export function formatOutput(output: LockOutput | undefined): string {
  if (output === undefined) return '?';
  if (output === null) return 'nil';
  if (typeof output === 'bigint' || typeof output === 'boolean') return String(output);
  return `[${JSON.stringify(output.owner)}, ${output.token}, ${output.remainingMs}ms]`;
}

export function formatInput(input: LockInput): string {
  const owner = input.kind === 'get' ? '' : ` owner=${JSON.stringify(input.owner)}`;
  const ttl = input.kind === 'lock' || input.kind === 'extend' ? ` ttl=${input.ttlMs}` : '';
  return `${input.kind} ${JSON.stringify(input.resource)}${owner}${ttl} ${input.durability}`;
}

/** One line per operation, e.g. `#3 c2 lock "r" owner="b" ttl=100 persistent -> 1 [call 20, ret 30, log 25]`. */
export function formatOp(op: LockOp): string {
  const ret = op.ret === undefined ? 'no reply' : `ret ${op.ret}`;
  const log = op.logTime === undefined ? '' : `, log ${op.logTime}`;
  return `#${op.id} ${op.client} ${formatInput(op.input)} -> ${formatOutput(op.output)} [call ${op.call}, ${ret}${log}]`;
}

/**
 * Throws a TypeError naming the first malformed operation. A malformed history
 * is a bug in the recorder, not a finding about the server, so it must not be
 * reported as a linearizability violation.
 */
export function validateHistory(history: readonly LockOp[]): void {
  const ids = new Set<number>();
  for (const op of history) {
    const problem = opProblem(op) ?? (ids.has(op.id) ? 'duplicate id' : undefined);
    if (problem !== undefined) throw new TypeError(`malformed history op: ${problem}: ${formatOpSafely(op)}`);
    ids.add(op.id);
  }
}

export interface HistoryOptions {
  /**
   * The recorder set logTime on every op the server applied or served (the
   * simulator can: it sees inside the servers). Then an op without logTime
   * never took effect and is left out, which removes the guessing that makes
   * lost replies expensive to check; an answered op without logTime is a
   * recording bug. Real-process tests cannot know this and leave it false.
   */
  logTimeComplete?: boolean;
}

/** Validates the history and drops ops that certainly had no effect. */
export function prepareHistory(history: readonly LockOp[], options: HistoryOptions): LockOp[] {
  validateHistory(history);
  if (options.logTimeComplete !== true) return [...history];
  const answeredUntimed = history.find((op) => op.ret !== undefined && op.logTime === undefined);
  if (answeredUntimed !== undefined) {
    throw new TypeError(`malformed history op: logTimeComplete but an answered op has no logTime: ${formatOp(answeredUntimed)}`);
  }
  return history.filter((op) => op.logTime !== undefined);
}

function opProblem(op: LockOp): string | undefined {
  if (!Number.isSafeInteger(op.id)) return 'id must be an integer';
  if (!Number.isSafeInteger(op.call)) return 'call must be an integer ms';
  if (op.ret !== undefined && (!Number.isSafeInteger(op.ret) || op.ret < op.call)) return 'ret must be an integer ms >= call';
  if (op.logTime !== undefined && !Number.isSafeInteger(op.logTime)) return 'logTime must be an integer ms';
  if ((op.ret === undefined) !== (op.output === undefined)) return 'output must be present exactly when ret is';
  const input = op.input;
  if (input.durability !== 'persistent' && input.durability !== 'ephemeral') return 'unknown durability';
  if ((input.kind === 'lock' || input.kind === 'extend') && !(Number.isSafeInteger(input.ttlMs) && input.ttlMs >= 1)) {
    return 'ttlMs must be a positive integer';
  }
  return op.output === undefined ? undefined : outputProblem(input, op.output);
}

/** Checks that an output has the type its command replies with. */
export function outputProblem(input: LockInput, output: LockOutput): string | undefined {
  switch (input.kind) {
    case 'lock':
    case 'extend':
      return output === null || typeof output === 'bigint' ? undefined : `${input.kind} replies with a bigint token or null`;
    case 'unlock':
      return typeof output === 'boolean' ? undefined : 'unlock replies with a boolean';
    case 'get':
      if (output === null) return undefined;
      if (typeof output !== 'object' || typeof output.owner !== 'string' || typeof output.token !== 'bigint') {
        return 'get replies with null or {owner, token: bigint, remainingMs}';
      }
      return Number.isSafeInteger(output.remainingMs) ? undefined : 'get remainingMs must be an integer';
  }
}

function formatOpSafely(op: LockOp): string {
  try {
    return formatOp(op);
  } catch {
    return String(op?.id);
  }
}

interface RecordedOp {
  id: number;
  client: string;
  call: number;
  ret: number | undefined;
  input: LockInput;
  output: LockOutput | undefined;
  logTime?: number;
  /** 'open' until a reply is recorded or the caller gives up on it. */
  state: 'open' | 'done' | 'unknown';
}

/**
 * Records a history as the client side sees it. Ids are assigned in
 * invocation order; times come from the injected clock, widened to whole
 * milliseconds (call rounded down, ret up) so an interval only ever grows:
 * a wider interval can hide a violation but never invent one.
 */
export class HistoryRecorder {
  private readonly recorded = new Map<number, RecordedOp>();
  private nextId = 0;

  constructor(private readonly clockMs: () => number) {}

  /** Call just before the request is sent; returns the op id. */
  invoke(client: string, input: LockInput): number {
    const id = this.nextId;
    this.nextId += 1;
    const call = Math.floor(this.clockMs());
    this.recorded.set(id, { id, client, call, ret: undefined, input, output: undefined, state: 'open' });
    return id;
  }

  /** Call when the reply arrives. */
  complete(id: number, output: LockOutput): void {
    const op = this.open(id);
    const problem = outputProblem(op.input, output);
    if (problem !== undefined) throw new TypeError(`op #${id}: ${problem}`);
    op.ret = Math.max(op.call, Math.ceil(this.clockMs()));
    op.output = output;
    op.state = 'done';
  }

  /**
   * The client gave up (timeout, connection reset, crash, or an error that
   * does not say whether the command ran, such as -CLUSTERDOWN after a
   * request timeout). The op stays in the history with no reply.
   */
  failUnknown(id: number): void {
    this.open(id).state = 'unknown';
  }

  /**
   * The command certainly did not run (e.g. -TRYAGAIN before it was proposed,
   * a syntax error). Such an op constrains nothing, so it is dropped.
   */
  failNoEffect(id: number): void {
    this.open(id);
    this.recorded.delete(id);
  }

  /** The server applied (or served) op id at this log time; any time before or after the reply. */
  setLogTime(id: number, logTime: number): void {
    const op = this.recorded.get(id);
    if (op === undefined) throw new RangeError(`no op #${id}`);
    if (!Number.isSafeInteger(logTime)) throw new RangeError(`op #${id}: logTime must be an integer ms, got ${logTime}`);
    op.logTime = logTime;
  }

  /** A snapshot of the history; ops still open count as unknown outcome. */
  history(): LockOp[] {
    const out: LockOp[] = [];
    for (const op of this.recorded.values()) {
      const { state: _state, logTime, ...rest } = op;
      out.push(logTime === undefined ? rest : { ...rest, logTime });
    }
    return out;
  }

  private open(id: number): RecordedOp {
    const op = this.recorded.get(id);
    if (op === undefined) throw new RangeError(`no op #${id}`);
    if (op.state !== 'open') throw new RangeError(`op #${id} already ${op.state === 'done' ? 'completed' : 'given up'}`);
    return op;
  }
}
