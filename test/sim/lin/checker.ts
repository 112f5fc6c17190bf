/**
 * Linearizability checker for raftlock lock histories (DESIGN.md §3.5).
 *
 * Wing & Gong's search: repeatedly pick an operation that may come next (its
 * call precedes every unlinearized reply), apply it to the sequential model,
 * and backtrack when a reply is reached whose operation could not be placed.
 * Lowe's improvement memoises (set of linearized ops, model state) pairs: a
 * pair seen before has already been fully explored. Locks never interact, so
 * the history is checked one (durability, resource) partition at a time
 * (P-compositionality), which turns one exponential search into many small ones.
 *
 * Operations without a reply may be linearized anywhere after their call, or
 * never; together with concurrency they are what makes the search expensive.
 * Refinements, each of which only removes branches that cannot succeed:
 * - unanswered ops are tried after the answered candidates, a placement of one
 *   that changes nothing but the clock is not tried (model.ts), and a
 *   configuration is skipped when one with the same answered ops and states
 *   but a subset of the unanswered ones was explored;
 * - no op may take effect after the deadline (logTime, else ret) of an
 *   answered op that is still to be placed;
 * - tokens only grow, so a state whose newest token exceeds one that a pending
 *   reply still has to show is dropped at once.
 * Histories from the simulator should set logTimeComplete, which drops the
 * unanswered ops that never ran and leaves almost nothing to guess.
 *
 * The search is bounded by a step budget per partition and answers 'unknown'
 * rather than run on.
 */

import {
  formatOp, formatPartition, partitionHistory, prepareHistory, type HistoryOptions, type LockOp, type PartitionKey,
} from './history.js';
import {
  DEFAULT_MODEL_OPTIONS, INITIAL_STATE, describeState, opWindow, stateKey, step, type LeaseState, type ModelOptions,
} from './model.js';

export interface CheckOptions extends Partial<ModelOptions>, HistoryOptions {
  /** Model steps (one op applied to one candidate state) allowed per partition. */
  stepsMaxPerPartition?: number;
}

/** About a second or two of search, and a few hundred MB of cache at most. */
export const DEFAULT_STEPS_MAX_PER_PARTITION = 1_000_000;

export type CheckResult =
  | { ok: true; partitions: number; steps: number }
  | {
    ok: false;
    partition: PartitionKey;
    /** Printable: the longest linearizable prefix found and why each next op could not follow it. */
    explanation: string;
    /** That prefix, in linearization order. */
    prefix: LockOp[];
    /** The answered ops that could come next in real-time order but that the model rejected. */
    unplaced: LockOp[];
  }
  | { ok: 'unknown'; partition: PartitionKey; reason: string };

/**
 * Checks a whole history. A failing partition wins over one that ran out of
 * budget, since a definite violation is the more useful report.
 */
export function checkHistory(history: readonly LockOp[], options: CheckOptions = {}): CheckResult {
  const ops = prepareHistory(history, options);
  const model: ModelOptions = {
    ephemeralLoss: options.ephemeralLoss ?? DEFAULT_MODEL_OPTIONS.ephemeralLoss,
    timeSlackMs: options.timeSlackMs ?? DEFAULT_MODEL_OPTIONS.timeSlackMs,
  };
  const stepsMax = options.stepsMaxPerPartition ?? DEFAULT_STEPS_MAX_PER_PARTITION;
  let unknown: CheckResult | undefined;
  let steps = 0;
  const groups = [...partitionHistory(ops).values()];
  for (const { key, ops: all } of groups) {
    // A read without a reply changes nothing whether or not it ran.
    const searched = all.filter((op) => op.ret !== undefined || op.input.kind !== 'get');
    const search = new PartitionSearch(searched, model, stepsMax);
    const outcome = search.run();
    steps += search.steps;
    if (outcome === 'fail') return search.failure(key);
    if (outcome === 'budget' && unknown === undefined) {
      const reason = `${formatPartition(key)}: gave up after ${stepsMax} model steps over ${searched.length} ops`;
      unknown = { ok: 'unknown', partition: key, reason };
    }
  }
  return unknown ?? { ok: true, partitions: groups.length, steps };
}

/** A node of a doubly linked list of ops or events. */
interface Entry {
  readonly op: number;
  readonly isCall: boolean;
  /** For a call: its reply, or null when none was seen. */
  match: Entry | null;
  /** For an answered call: its nodes in the deadline list and (if its reply shows a token) the token list. */
  readonly aux: Entry[];
  prev: Entry | null;
  next: Entry | null;
}

function newEntry(op: number, isCall: boolean): Entry {
  return { op, isCall, match: null, aux: [], prev: null, next: null };
}

interface Lists {
  /** Calls and replies of answered ops by time (calls first at equal times: touching intervals are concurrent). */
  readonly answered: Entry;
  /** Calls of unanswered ops by call time. They are optional and block nothing, so they are tried last. */
  readonly unanswered: Entry;
  /** Answered ops by the latest instant they can take effect at (logTime, else ret). */
  readonly deadlines: Entry;
  /** Answered ops whose reply shows a token, by that token. */
  readonly tokens: Entry;
}

function buildLists(ops: readonly LockOp[], latest: readonly number[]): Lists {
  const events: { time: number; order: number; entry: Entry }[] = [];
  const unanswered: Entry[] = [];
  const deadlines: Entry[] = [];
  const tokens: Entry[] = [];
  ops.forEach((op, index) => {
    const call = newEntry(index, true);
    if (op.ret === undefined) {
      unanswered.push(call);
      return;
    }
    call.match = newEntry(index, false);
    call.aux.push(newEntry(index, false));
    deadlines.push(call.aux[0]!);
    if (shownToken(op) !== undefined) {
      call.aux.push(newEntry(index, false));
      tokens.push(call.aux[1]!);
    }
    events.push({ time: op.call, order: 0, entry: call }, { time: op.ret, order: 1, entry: call.match });
  });
  events.sort((a, b) => a.time - b.time || a.order - b.order || a.entry.op - b.entry.op);
  unanswered.sort((a, b) => ops[a.op]!.call - ops[b.op]!.call || a.op - b.op);
  deadlines.sort((a, b) => latest[a.op]! - latest[b.op]! || a.op - b.op);
  tokens.sort((a, b) => compareBigint(shownToken(ops[a.op]!)!, shownToken(ops[b.op]!)!) || a.op - b.op);
  const lists = [events.map((event) => event.entry), unanswered, deadlines, tokens].map(link);
  return { answered: lists[0]!, unanswered: lists[1]!, deadlines: lists[2]!, tokens: lists[3]! };
}

/** The token a reply shows (lock, extend or get), if any. */
function shownToken(op: LockOp): bigint | undefined {
  const output = op.output;
  if (typeof output === 'bigint') return output;
  return typeof output === 'object' && output !== null ? output.token : undefined;
}

function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Links entries behind a new head sentinel. */
function link(entries: readonly Entry[]): Entry {
  const head = newEntry(-1, false);
  let last = head;
  for (const entry of entries) {
    entry.prev = last;
    last.next = entry;
    last = entry;
  }
  return head;
}

/** Removes a call, its reply and its other nodes from their lists; unlift() puts them back (dancing links). */
function lift(entry: Entry): void {
  for (const node of [entry, entry.match, ...entry.aux]) {
    if (node === null) continue;
    node.prev!.next = node.next;
    if (node.next !== null) node.next.prev = node.prev;
  }
}

function unlift(entry: Entry): void {
  for (const node of [...entry.aux].reverse().concat(entry.match === null ? [] : [entry.match], [entry])) {
    node.prev!.next = node;
    if (node.next !== null) node.next.prev = node;
  }
}

/**
 * Where the search is among the candidates for the next op: first the
 * answered calls before the earliest pending reply, then the unanswered calls
 * invoked no later than that reply (`limit`).
 */
interface Cursor {
  readonly phase: 'answered' | 'unanswered';
  readonly entry: Entry | null;
  readonly limit: number;
}

class PartitionSearch {
  steps = 0;
  private readonly lists: Lists;
  /** Per op: the latest instant it can take effect at. */
  private readonly latest: number[];
  private readonly placed: PlacedSet;
  private readonly seen = new Memo();
  private readonly stack: { cursor: Cursor; entry: Entry; states: LeaseState[] }[] = [];
  private states: LeaseState[] = [INITIAL_STATE];
  /** The longest linearized sequence met, for the explanation. */
  private best: number[] = [];

  constructor(
    private readonly ops: readonly LockOp[],
    private readonly model: ModelOptions,
    private readonly stepsMax: number,
  ) {
    this.latest = ops.map((op) => opWindow(op, model)[1]);
    this.lists = buildLists(ops, this.latest);
    this.placed = new PlacedSet(ops.length);
  }

  run(): 'ok' | 'fail' | 'budget' {
    let cursor: Cursor = this.start();
    while (this.lists.answered.next !== null) {
      if (this.steps > this.stepsMax) return 'budget';
      const entry = cursor.entry;
      if (cursor.phase === 'answered' && entry!.isCall) {
        cursor = this.tryLinearize(entry!, cursor) ? this.start() : { ...cursor, entry: entry!.next };
      } else if (cursor.phase === 'answered') {
        // The earliest pending reply: no answered op after it may go next.
        cursor = { phase: 'unanswered', entry: this.lists.unanswered.next, limit: this.ops[entry!.op]!.ret! };
      } else if (entry !== null && this.ops[entry.op]!.call <= cursor.limit) {
        cursor = this.tryLinearize(entry, cursor) ? this.start() : { ...cursor, entry: entry.next };
      } else {
        // Every candidate failed here: undo the last choice and try the one after it.
        const top = this.stack.pop();
        if (top === undefined) return 'fail';
        this.states = top.states;
        this.placed.flip(top.entry.op, this.ops[top.entry.op]!.ret !== undefined);
        unlift(top.entry);
        cursor = { ...top.cursor, entry: top.entry.next };
      }
    }
    // Every answered op is placed; unanswered ones may never have happened.
    return 'ok';
  }

  private start(): Cursor {
    return { phase: 'answered', entry: this.lists.answered.next, limit: Infinity };
  }

  /**
   * Every answered op still to be placed comes later, so no op placed now can
   * take effect after the earliest of their deadlines. Bounding the instant
   * here, rather than when that op is reached, stops an unanswered op from
   * being placed far in the future, which would only fail much deeper.
   */
  private notAfter(): number {
    const first = this.lists.deadlines.next;
    return first === null ? Infinity : this.latest[first.op]!;
  }

  /**
   * Tokens only grow, so a state whose newest token exceeds a token some
   * pending reply still has to show is a dead end, however far away that
   * reply is. Dropping such states at once spares the search from exploring
   * every order of the ops in between first.
   */
  private viable(states: LeaseState[]): LeaseState[] {
    const first = this.lists.tokens.next;
    if (first === null) return states;
    const least = shownToken(this.ops[first.op]!)!;
    return states.filter((state) => state.token <= least);
  }

  private tryLinearize(entry: Entry, cursor: Cursor): boolean {
    this.steps += this.states.length;
    const op = this.ops[entry.op]!;
    const stepped = stepAll(this.states, op, this.model, this.notAfter());
    if (stepped.length === 0) return false;
    lift(entry);
    const next = this.viable(stepped);
    this.placed.flip(entry.op, op.ret !== undefined);
    if (next.length === 0 || !this.seen.add(this.placed, next.map(stateKey).sort().join('\n'))) {
      this.placed.flip(entry.op, op.ret !== undefined);
      unlift(entry);
      return false;
    }
    this.stack.push({ cursor, entry, states: this.states });
    this.states = next;
    if (this.stack.length > this.best.length) this.best = this.stack.map((frame) => frame.entry.op);
    return true;
  }

  /** Replays the longest prefix and asks the model why each possible next op fails. */
  failure(key: PartitionKey): CheckResult {
    const placed = new Set<number>();
    let states: LeaseState[] = [INITIAL_STATE];
    for (const index of this.best) {
      states = stepAll(states, this.ops[index]!, this.model, this.deadlineAfter(placed));
      placed.add(index);
    }
    const rest = this.ops.filter((_op, index) => !placed.has(index));
    const firstReply = rest.reduce((least, op) => Math.min(least, op.ret ?? Infinity), Infinity);
    const unplaced = rest.filter((op) => op.ret !== undefined && op.call <= firstReply);
    const prefix = this.best.map((index) => this.ops[index]!);
    const notAfter = this.deadlineAfter(placed);
    const explanation = explain({ key, prefix, states, unplaced, rest, total: this.ops.length, model: this.model, notAfter });
    return { ok: false, partition: key, explanation, prefix, unplaced };
  }

  /** notAfter() for a given placed set, recomputed from scratch (for the explanation only). */
  private deadlineAfter(placed: ReadonlySet<number>): number {
    let least = Infinity;
    this.ops.forEach((op, index) => {
      if (op.ret !== undefined && !placed.has(index)) least = Math.min(least, this.latest[index]!);
    });
    return least;
  }
}

/**
 * The model is nondeterministic, so the search tracks the set of states some
 * choice reaches (a deterministic model over sets), with duplicates merged.
 */
function stepAll(states: readonly LeaseState[], op: LockOp, model: ModelOptions, notAfter: number): LeaseState[] {
  const next = new Map<string, LeaseState>();
  for (const state of states) {
    for (const successor of step(state, op, model, notAfter)) next.set(stateKey(successor), successor);
  }
  return [...next.values()];
}

const PREFIX_LINES_MAX = 30;

interface Explained {
  key: PartitionKey;
  prefix: LockOp[];
  states: LeaseState[];
  /** Candidates for the next op. */
  unplaced: LockOp[];
  /** Every op not in the prefix. */
  rest: LockOp[];
  total: number;
  model: ModelOptions;
  notAfter: number;
}

function explain(input: Explained): string {
  const { key, prefix, states, unplaced } = input;
  const lines = [
    `not linearizable: ${formatPartition(key)}`,
    `longest linearizable prefix (${prefix.length} of ${input.total} ops):`,
  ];
  const shown = prefix.slice(-PREFIX_LINES_MAX);
  if (shown.length < prefix.length) lines.push(`  ... ${prefix.length - shown.length} earlier ops`);
  shown.forEach((op, i) => lines.push(`  ${prefix.length - shown.length + i + 1}. ${formatOp(op)}`));
  lines.push('model state after it:');
  for (const state of states) lines.push(`  ${describeState(state)}`);
  lines.push('ops that could not be placed next:');
  for (const op of unplaced) {
    lines.push(`  ${formatOp(op)}`);
    for (const state of states) {
      const from = states.length > 1 ? `from "${describeState(state)}": ` : '';
      lines.push(`    ${from}${whyNot(state, op, input)}`);
    }
  }
  return lines.join('\n');
}

function whyNot(state: LeaseState, op: LockOp, input: Explained): string {
  const why: string[] = [];
  const successors = step(state, op, input.model, input.notAfter, why);
  if (successors.length === 0) return why.join('; ');
  const blocker = input.rest.filter((other) => other !== op && shownToken(other) !== undefined)
    .sort((a, b) => compareBigint(shownToken(a)!, shownToken(b)!))[0];
  const least = blocker === undefined ? undefined : shownToken(blocker)!;
  if (least !== undefined && successors.every((successor) => successor.token > least)) {
    const newest = successors.map((successor) => successor.token).sort(compareBigint)[0];
    const never = `#${blocker!.id} has yet to show token ${least}, and tokens never go back`;
    return `placing it makes the newest token ${newest}, but ${never}`;
  }
  // The cache can refute an op the model accepts: the search already met an
  // equivalent configuration by another order, and nothing could follow it.
  return 'it fits here, but no order of the remaining ops can follow it';
}

/**
 * The ops placed so far: answered ones with an incrementally maintained
 * 64-bit hash (two 32-bit halves), unanswered ones as a plain bit set.
 */
class PlacedSet {
  readonly answered: Uint32Array;
  readonly unanswered: Uint32Array;
  hashLow = 0;
  hashHigh = 0;

  constructor(size: number) {
    this.answered = new Uint32Array(Math.ceil(size / 32));
    this.unanswered = new Uint32Array(Math.ceil(size / 32));
  }

  flip(index: number, answered: boolean): void {
    const bit = 1 << (index & 31);
    if (!answered) {
      this.unanswered[index >>> 5]! ^= bit;
      return;
    }
    this.answered[index >>> 5]! ^= bit;
    this.hashLow = (this.hashLow ^ mix(2 * index + 1)) >>> 0;
    this.hashHigh = (this.hashHigh ^ mix(2 * index + 2)) >>> 0;
  }
}

/** A fixed pseudo-random 32-bit value per integer, so hashes (and runs) are deterministic. */
function mix(value: number): number {
  let x = Math.imul(value ^ 0x7a3d91e7, 0x5c2e6b4f);
  x ^= x >>> 16;
  x = Math.imul(x, 0x3b9f2d95);
  x ^= x >>> 15;
  return x >>> 0;
}

/**
 * Lowe's cache of explored configurations, extended for unanswered ops. A
 * configuration is (answered ops placed, unanswered ops placed, model
 * states). It is not worth exploring if one with the same answered ops and
 * states, but a subset of its unanswered ops, was already explored: that one
 * can do everything this one can, by leaving the extra unanswered ops out.
 * Exact comparison of the sets (not just the hash) means a hash collision
 * costs time, never a wrongly pruned branch.
 */
class Memo {
  private readonly buckets = new Map<string, { answered: Uint32Array; unanswered: Uint32Array }[]>();

  /** True if the configuration is new (and is now recorded). */
  add(placed: PlacedSet, statesKey: string): boolean {
    const key = `${placed.hashLow}:${placed.hashHigh}:${statesKey}`;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = [];
      this.buckets.set(key, bucket);
    }
    const covered = bucket.some((seen) => sameWords(seen.answered, placed.answered)
      && subsetWords(seen.unanswered, placed.unanswered));
    if (covered) return false;
    bucket.push({ answered: placed.answered.slice(), unanswered: placed.unanswered.slice() });
    return true;
  }
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function subsetWords(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if ((a[i]! & ~b[i]!) !== 0) return false;
  return true;
}
