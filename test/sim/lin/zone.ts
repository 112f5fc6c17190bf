/**
 * The timing part of the lease model as a difference-bound matrix over integer
 * milliseconds. When an operation has no log time, the checker may place it at
 * any instant t in [call, ret]; picking one concrete t per operation would make
 * the search guess, and a wrong guess would report a false violation. Every
 * timing rule of the lease model is a bound on a difference of two times
 * (t >= previous t, t <= expiry, expiry = t + ttl, remaining = expiry - t),
 * so the set of all consistent choices is a zone, and closing it with
 * shortest paths decides exactly whether some choice works.
 *
 * A stored zone relates three values: ZERO (the constant 0), CLOCK (the
 * instant of the last linearized operation) and EXPIRY (the holder's expiry).
 * While an operation is applied, a fourth value T (its instant) joins them.
 * d[i * size + j] is an upper bound on x_i - x_j; Infinity means unbounded.
 */

const ZERO = 0;
const CLOCK = 1;
const EXPIRY = 2;
const T = 3;
const STORED = 3;
const WORKING = 4;

// Plain arrays rather than Float64Array: the matrices are tiny and short-lived,
// and typed-array allocation dominated the checker's profile.
export interface Zone {
  /** Closed 3x3 matrix; never mutated once built. */
  readonly d: readonly number[];
}

/** A zone extended with T, the instant of the operation being applied. */
export interface OpZone {
  readonly d: readonly number[];
}

/** Nothing known: no operation linearized yet and no holder. */
export const UNCONSTRAINED: Zone = { d: unconstrained(STORED) };

function unconstrained(size: number): number[] {
  const d = new Array<number>(size * size).fill(Infinity);
  for (let i = 0; i < size; i++) d[i * size + i] = 0;
  return d;
}

export function zoneKey(zone: Zone): string {
  return zone.d.join(',');
}

/** [lowest, highest] value of EXPIRY (±Infinity when unbounded). */
export function expiryRange(zone: Zone): [number, number] {
  return [-zone.d[ZERO * STORED + EXPIRY]!, zone.d[EXPIRY * STORED + ZERO]!];
}

/** The earliest instant the last linearized operation can have run at (-Infinity before any). */
export function clockLeast(zone: Zone): number {
  return -zone.d[ZERO * STORED + CLOCK]!;
}

/**
 * Starts applying an operation whose instant lies in [lo, hi] and is not
 * before the previous operation's. Undefined when no such instant exists.
 */
export function openOp(zone: Zone, lo: number, hi: number): OpZone | undefined {
  const d = unconstrained(WORKING);
  for (let i = 0; i < STORED; i++) {
    for (let j = 0; j < STORED; j++) d[i * WORKING + j] = zone.d[i * STORED + j]!;
  }
  let work: OpZone | undefined = { d };
  work = constrain(work, T, ZERO, hi);
  if (work !== undefined) work = constrain(work, ZERO, T, -lo);
  if (work !== undefined) work = constrain(work, CLOCK, T, 0);
  return work;
}

/** Adds x - y <= c to a closed matrix, keeping it closed; undefined if that empties the zone. */
function constrain(work: OpZone, x: number, y: number, c: number): OpZone | undefined {
  const d = work.d;
  if (c >= d[x * WORKING + y]!) return work;
  if (c + d[y * WORKING + x]! < 0) return undefined;
  const next = d.slice();
  for (let i = 0; i < WORKING; i++) {
    const viaX = d[i * WORKING + x]! + c;
    if (viaX === Infinity) continue;
    for (let j = 0; j < WORKING; j++) {
      const candidate = viaX + d[y * WORKING + j]!;
      if (candidate < next[i * WORKING + j]!) next[i * WORKING + j] = candidate;
    }
  }
  return { d: next };
}

/** The operation ran while the lease was still held: t <= expiry. */
export function whileHeld(work: OpZone): OpZone | undefined {
  return constrain(work, T, EXPIRY, 0);
}

/** The operation ran after the lease expired: t > expiry, i.e. expiry - t <= -1 in whole ms. */
export function afterExpiry(work: OpZone): OpZone | undefined {
  return constrain(work, EXPIRY, T, -1);
}

/** A get saw remainingMs: expiry - t = remainingMs exactly. */
export function withRemaining(work: OpZone, remainingMs: number): OpZone | undefined {
  const upper = constrain(work, EXPIRY, T, remainingMs);
  return upper === undefined ? undefined : constrain(upper, T, EXPIRY, -remainingMs);
}

/** [lowest, highest] value of expiry - t: what a get could report as remaining. */
export function remainingRange(work: OpZone): [number, number] {
  return [-work.d[T * WORKING + EXPIRY]!, work.d[EXPIRY * WORKING + T]!];
}

/** [lowest, highest] instant of the operation being applied. */
export function opTimeRange(work: OpZone): [number, number] {
  return [-work.d[ZERO * WORKING + T]!, work.d[T * WORKING + ZERO]!];
}

/**
 * Finishes the operation: its instant becomes CLOCK, and EXPIRY is kept,
 * forgotten (no holder: nothing depends on it) or set to t + ttlMs.
 * Dropping a variable from a closed matrix leaves it closed, and so does
 * renaming T + ttlMs as EXPIRY, so the result needs no further closure.
 *
 * CLOCK only ever bounds later instants from below, so a smaller CLOCK allows
 * everything a larger one does: the upper bounds on CLOCK are dropped (which
 * keeps the matrix closed). Orders of concurrent ops that differ only in how
 * late the last one ran then reach the same zone, and the search's cache
 * recognises them as one configuration.
 */
export function closeOp(work: OpZone, expiry: 'keep' | 'free' | { ttlMs: number }): Zone {
  const from = [ZERO, T, expiry === 'free' ? -1 : expiry === 'keep' ? EXPIRY : T];
  const offset = [0, 0, typeof expiry === 'object' ? expiry.ttlMs : 0];
  const d = unconstrained(STORED);
  for (let i = 0; i < STORED; i++) {
    for (let j = 0; j < STORED; j++) {
      if (i === j || from[i] === -1 || from[j] === -1) continue;
      d[i * STORED + j] = work.d[from[i]! * WORKING + from[j]!]! + offset[i]! - offset[j]!;
    }
  }
  d[CLOCK * STORED + ZERO] = Infinity;
  d[CLOCK * STORED + EXPIRY] = Infinity;
  return { d };
}
