/**
 * Direct checks of DESIGN.md §3.1 (mutual exclusion) and §3.2 (fencing) over a
 * lock history, without the linearizability search: no search means no
 * budget and no 'unknown', it shares no code with the model, and each finding
 * names the replies that prove it.
 *
 * Every finding is certain. Each grant (owner, token) gets the interval during
 * which the history proves the owner held it: from the latest instant the
 * grant can have happened (before the first reply that shows it) to the
 * earliest instant its lease can have ended (expiry by the least ttl that can
 * have set it, or the earliest unlock by the owner that can have released it).
 * Instants are log times when recorded, else [call, ret] read as lease-clock
 * time. Several ops can share one whole-ms instant (a release and the next
 * grant, say), so intervals are half-open, [granted, ended): a lease held
 * through instant E (now <= expiry) ends at E + 1, a release at u ends it at
 * u, and two holders overlap only when their intervals share a positive
 * length. An ephemeral lease the server lost in a failover still counts as
 * held: its owner does not know, so nobody else may be granted it (§3.6).
 *
 * Independence has a limit: the intervals assume the lease semantics
 * of DESIGN.md §2 (expiry = now + ttl, held while now <= expiry).
 */

import {
  formatOp, formatPartition, partitionHistory, prepareHistory, type HistoryOptions, type LockOp, type PartitionKey,
} from './history.js';

export interface MutexOptions extends HistoryOptions {
  /** As ModelOptions.timeSlackMs: widens [call, ret] of ops without logTime. */
  timeSlackMs?: number;
}

export type MutexViolationKind = 'two-holders' | 'token-reused' | 'token-not-increasing';

export interface MutexViolation {
  readonly kind: MutexViolationKind;
  readonly partition: PartitionKey;
  readonly message: string;
  /** The replies that prove it. */
  readonly ops: readonly LockOp[];
}

export type MutexResult =
  | { ok: true; grants: number }
  | { ok: false; violations: MutexViolation[]; explanation: string };

/** Findings reported per history; past this many the rest add nothing a reader can act on. */
export const MUTEX_VIOLATIONS_MAX = 20;

/** One grant of a lock, merged over every reply that shows (owner, token). */
interface Grant {
  readonly owner: string;
  readonly token: bigint;
  readonly observers: LockOp[];
  /** Earliest instant the grant can have happened. */
  grantedFrom: number;
  /** Latest instant the grant can have happened. */
  grantedBy: number;
  /** The owner surely held the lock during [grantedBy, heldUntil). */
  heldUntil: number;
}

export function checkMutex(history: readonly LockOp[], options: MutexOptions = {}): MutexResult {
  const prepared = prepareHistory(history, options);
  const slack = options.timeSlackMs ?? 0;
  const violations: MutexViolation[] = [];
  let grantCount = 0;
  for (const { key, ops } of partitionHistory(prepared).values()) {
    const grants = collectGrants(ops, slack);
    grantCount += grants.length;
    findOverlaps(key, grants, violations);
    findReusedTokens(key, grants, violations);
    findTokenOrder(key, grants, violations);
  }
  if (violations.length === 0) return { ok: true, grants: grantCount };
  const shown = violations.slice(0, MUTEX_VIOLATIONS_MAX);
  const more = violations.length > shown.length ? [`... and ${violations.length - shown.length} more`] : [];
  const explanation = [...shown.map((v) => v.message), ...more].join('\n');
  return { ok: false, violations: shown, explanation };
}

function earliest(op: LockOp, slack: number): number {
  return op.logTime ?? op.call - slack;
}

function latest(op: LockOp, slack: number): number {
  return op.logTime ?? (op.ret === undefined ? Infinity : op.ret + slack);
}

/** Groups the replies that show an owner holding a token. */
function collectGrants(ops: readonly LockOp[], slack: number): Grant[] {
  const grants = new Map<string, Grant>();
  const byOwner = new Map<string, LockOp[]>();
  for (const op of ops) {
    if (op.input.kind !== 'get') pushTo(byOwner, op.input.owner, op);
    const shown = shownHolder(op);
    if (shown === undefined) continue;
    const name = `${shown.token}\u0000${shown.owner}`;
    let grant = grants.get(name);
    if (grant === undefined) {
      grant = { ...shown, observers: [], grantedFrom: -Infinity, grantedBy: Infinity, heldUntil: -Infinity };
      grants.set(name, grant);
    }
    grant.observers.push(op);
  }
  for (const grant of grants.values()) bound(grant, byOwner.get(grant.owner) ?? [], slack);
  return [...grants.values()];
}

/** The (owner, token) a reply proves held at the op's instant, if any. */
function shownHolder(op: LockOp): { owner: string; token: bigint } | undefined {
  const output = op.output;
  if (op.input.kind === 'get') {
    return typeof output === 'object' && output !== null ? { owner: output.owner, token: output.token } : undefined;
  }
  if (typeof output !== 'bigint') return undefined;
  return { owner: op.input.owner, token: output };
}

/**
 * Computes when the grant surely began and ended from the owner's ops. Ops
 * without a reply may be the actual grant, an extend or an unlock (even one
 * sent long before and delayed), so they count wherever they could only
 * shorten the interval.
 */
function bound(grant: Grant, mine: readonly LockOp[], slack: number): void {
  const showsToken = (op: LockOp) => op.output === undefined || op.output === grant.token;
  grant.grantedBy = least(grant.observers.map((op) => latest(op, slack)), Infinity);
  // A lock op surely after grantedBy is a re-lock, which leaves the expiry alone.
  const grants = mine.filter((op) => op.input.kind === 'lock' && showsToken(op) && earliest(op, slack) <= grant.grantedBy);
  // No lock op at all (a get showed it): the grant may be as old as anything.
  const from = least(grants.map((op) => earliest(op, slack)), -Infinity);
  grant.grantedFrom = from;
  const extends_ = mine.filter((op) => op.input.kind === 'extend' && showsToken(op) && latest(op, slack) >= from);
  grant.heldUntil = Math.max(
    Math.min(expiryLeast(grants, extends_, from, slack) + 1, releaseLeast(mine, from, slack)),
    // Each reply showing the grant proves it was held at that op's instant
    // (and maybe released by a later op at the same instant).
    -least(grant.observers.map((op) => -earliest(op, slack)), Infinity),
  );
}

/**
 * The lease ends at t + ttl of the last op that set its expiry: the grant
 * (one of `grants`; the others are re-locks, which set nothing) or an extend
 * after it. Once an extend was answered, the last setter is an extend no
 * earlier than it; either way the least t + ttl over the setters that can be
 * last bounds the expiry from below.
 */
function expiryLeast(grants: readonly LockOp[], extends_: readonly LockOp[], from: number, slack: number): number {
  const answered = extends_.filter((op) => op.output !== undefined).map((op) => earliest(op, slack));
  const notBefore = Math.max(from, -least(answered.map((t) => -t), Infinity));
  const setters = answered.length > 0 ? extends_ : [...grants, ...extends_];
  const last = setters.filter((op) => latest(op, slack) >= notBefore);
  return least(last.map((op) => Math.max(earliest(op, slack), notBefore) + ttlOf(op)), -Infinity);
}

/** The earliest instant an unlock by the owner (answered 1, or unanswered) can have released the grant. */
function releaseLeast(mine: readonly LockOp[], from: number, slack: number): number {
  const unlocks = mine.filter((op) => op.input.kind === 'unlock' && op.output !== false && latest(op, slack) >= from);
  return least(unlocks.map((op) => Math.max(earliest(op, slack), from)), Infinity);
}

/** The smallest value, or ifNone for an empty list (Math.min would say Infinity, and spreads are bounded). */
function least(values: readonly number[], ifNone: number): number {
  let out = Infinity;
  for (const value of values) if (value < out) out = value;
  return values.length === 0 ? ifNone : out;
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

function ttlOf(op: LockOp): number {
  return op.input.kind === 'lock' || op.input.kind === 'extend' ? op.input.ttlMs : 0;
}

function describeGrant(grant: Grant): string {
  const evidence = grant.observers.slice(0, 2).map((op) => `\n      ${formatOp(op)}`).join('');
  const held = `surely held during [${grant.grantedBy}, ${grant.heldUntil})`;
  return `${JSON.stringify(grant.owner)} token ${grant.token} (${held})${evidence}`;
}

/** §3.1: two owners surely holding unexpired grants at one instant. */
function findOverlaps(key: PartitionKey, grants: Grant[], out: MutexViolation[]): void {
  const held = grants.filter((grant) => grant.grantedBy < grant.heldUntil).sort((a, b) => a.grantedBy - b.grantedBy);
  let active: Grant[] = [];
  for (const grant of held) {
    active = active.filter((other) => other.heldUntil > grant.grantedBy);
    for (const other of active) {
      if (other.owner === grant.owner) continue;
      const until = Math.min(other.heldUntil, grant.heldUntil);
      out.push({
        kind: 'two-holders',
        partition: key,
        message: `two holders: ${formatPartition(key)} held by both during [${grant.grantedBy}, ${until}):\n`
          + `    ${describeGrant(other)}\n    ${describeGrant(grant)}`,
        ops: [...other.observers, ...grant.observers],
      });
    }
    active.push(grant);
  }
}

/** §3.2: a token is never reused by another owner. */
function findReusedTokens(key: PartitionKey, grants: Grant[], out: MutexViolation[]): void {
  const byToken = new Map<bigint, Grant[]>();
  for (const grant of grants) pushTo(byToken, grant.token, grant);
  for (const [token, same] of byToken) {
    if (same.length < 2) continue;
    out.push({
      kind: 'token-reused',
      partition: key,
      message: `token reused: ${formatPartition(key)} token ${token} was held by ${same.length} owners:\n`
        + same.map((grant) => `    ${describeGrant(grant)}`).join('\n'),
      ops: same.flatMap((grant) => grant.observers),
    });
  }
}

/** §3.2: a grant surely made after another has a larger token. */
function findTokenOrder(key: PartitionKey, grants: Grant[], out: MutexViolation[]): void {
  const byEnd = [...grants].sort((a, b) => a.grantedBy - b.grantedBy);
  const byStart = [...grants].sort((a, b) => a.grantedFrom - b.grantedFrom);
  let next = 0;
  let largest: Grant | undefined;
  for (const later of byStart) {
    while (next < byEnd.length && byEnd[next]!.grantedBy < later.grantedFrom) {
      const earlier = byEnd[next]!;
      if (largest === undefined || earlier.token > largest.token) largest = earlier;
      next += 1;
    }
    if (largest === undefined || largest.token < later.token) continue;
    out.push({
      kind: 'token-not-increasing',
      partition: key,
      message: `token not increasing: ${formatPartition(key)} token ${later.token} was granted after token ${largest.token}:\n`
        + `    ${describeGrant(largest)}\n    ${describeGrant(later)}`,
      ops: [...largest.observers, ...later.observers],
    });
  }
}
