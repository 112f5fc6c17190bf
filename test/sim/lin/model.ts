/**
 * Sequential specification of one raftlock lock (one resource in one
 * namespace): a lease mutex with log time, exactly as DESIGN.md §2 states it.
 *
 * - The first grant returns token 0 (PERSISTENT) and every grant to a new
 *   holder returns the previous token + 1; the counter survives unlock.
 *   EPHEMERAL tokens only have to increase (DESIGN.md: "not contiguous").
 * - Re-lock by the holder returns its token and leaves the expiry unchanged.
 * - Extend by the holder sets expiry = now + ttl and returns the token.
 * - A lease is expired when now > expiry; get reports remaining = expiry - now.
 *
 * "now" is the operation's logTime when recorded, else any instant in
 * [call, ret]; instants must not decrease along the linearization. zone.ts
 * keeps every consistent choice of instants at once, so the model never has
 * to guess one.
 *
 * The model is nondeterministic (an unanswered op may have granted or not,
 * a lease may or may not have expired by an uncertain instant), so step()
 * returns every successor state. An empty result means the op cannot be
 * linearized next from that state; `why` then says what was violated.
 */

import type { Durability, LockInfoOutput, LockOp, LockOutput } from './history.js';
import { formatOutput } from './history.js';
import {
  UNCONSTRAINED, afterExpiry, clockLeast, closeOp, expiryRange, openOp, opTimeRange, remainingRange,
  whileHeld, withRemaining, zoneKey, type OpZone, type Zone,
} from './zone.js';

export interface ModelOptions {
  /**
   * A new leader knows no EPHEMERAL locks (DESIGN.md §3.6). When true, the
   * model lets the server lose an EPHEMERAL lease at any instant: afterwards
   * get answers nil, unlock 0, extend nil, and lock may answer nil (the new
   * leader's lock-delay), but the lost lease still fences every grant until it
   * expires and tokens must still increase. So this admits unavailability,
   * never a second holder.
   */
  ephemeralLoss: boolean;
  /**
   * Widens [call, ret] by this much on each side for ops without logTime:
   * real-process tests read a client clock whose rate differs slightly from
   * the leader's monotonic clock.
   */
  timeSlackMs: number;
}

export const DEFAULT_MODEL_OPTIONS: ModelOptions = { ephemeralLoss: true, timeSlackMs: 0 };

/**
 * The model's state: { holder, token, expiresAt, lastToken } of the design,
 * where token and lastToken are one field (every grant goes to the new
 * holder, so the holder's token is always the newest token) and expiresAt is
 * symbolic, inside `zone`.
 */
export interface LeaseState {
  /** Owner of the newest grant while its lease may still run; null once released or seen expired. */
  readonly holder: string | null;
  /** EPHEMERAL only: the server lost this holder in a failover; the lease still fences until expiry. */
  readonly lost: boolean;
  /** Newest token granted; -1n before the first grant. A lower bound when tokenExact is false. */
  readonly token: bigint;
  /** False after an EPHEMERAL grant whose reply was lost: its token is only known to exceed the one before. */
  readonly tokenExact: boolean;
  /** Bounds on the last op's instant and the holder's expiry. */
  readonly zone: Zone;
}

export const INITIAL_STATE: LeaseState = { holder: null, lost: false, token: -1n, tokenExact: true, zone: UNCONSTRAINED };

export function stateKey(state: LeaseState): string {
  const holder = state.holder === null ? '-' : JSON.stringify(state.holder);
  return `${holder}|${state.lost ? 1 : 0}|${state.token}|${state.tokenExact ? 1 : 0}|${zoneKey(state.zone)}`;
}

export function describeState(state: LeaseState): string {
  const clockLo = clockLeast(state.zone);
  const clock = clockLo === -Infinity ? 'no op yet' : `next op at >= ${clockLo}`;
  const newest = state.token < 0n ? 'no token granted yet' : `newest token ${state.tokenExact ? '' : '>= '}${state.token}`;
  if (state.holder === null) return `free; ${newest}; ${clock}`;
  const expiry = range(...expiryRange(state.zone));
  const lost = state.lost ? ' (lost by the server in a failover; still fences until expiry)' : '';
  return `held by ${JSON.stringify(state.holder)}${lost} until ${expiry}; ${newest}; ${clock}`;
}

function range(lo: number, hi: number): string {
  return lo === hi ? String(lo) : `${lo}..${hi}`;
}

/** The instants op may take effect at, before the linearization's own ordering constraint. */
export function opWindow(op: LockOp, options: ModelOptions): [number, number] {
  if (op.logTime !== undefined) return [op.logTime, op.logTime];
  return [op.call - options.timeSlackMs, (op.ret ?? Infinity) + options.timeSlackMs];
}

/**
 * Every state op can lead to from state when linearized next, taking effect
 * no later than notAfter (the checker's bound from ops that must come later);
 * why collects reasons when there is none.
 */
export function step(state: LeaseState, op: LockOp, options: ModelOptions, notAfter = Infinity, why?: string[]): LeaseState[] {
  const [lo, own] = opWindow(op, options);
  const hi = Math.min(own, notAfter);
  const work = openOp(state.zone, lo, hi);
  if (work === undefined) {
    const bound = hi < own ? ` and by ${hi} (when an op that must follow it takes effect)` : '';
    const after = `at or after the previous op (>= ${clockLeast(state.zone)})`;
    why?.push(`it must take effect in ${range(lo, own)}, ${after}${bound}: no such instant`);
    return [];
  }
  const ctx: StepContext = { op, out: [], why, canLose: options.ephemeralLoss && op.input.durability === 'ephemeral' };
  if (state.holder === null) {
    applyFree(state, work, ctx);
    return dedupe(ctx.out);
  }
  const held = whileHeld(work);
  if (held !== undefined) {
    if (state.lost) applyLost(state, held, ctx);
    else applyHeld(state, held, ctx);
    // Losing the lease only weakens what later ops can see, so it is tried
    // when the op runs, not at every instant before it.
    if (ctx.canLose && !state.lost) applyLost({ ...state, lost: true }, held, ctx);
  } else {
    why?.push(`${JSON.stringify(state.holder)}'s lease has expired at every instant the op could take effect`);
  }
  const expired = afterExpiry(work);
  if (expired !== undefined) applyFree(state, expired, ctx);
  else why?.push(`${JSON.stringify(state.holder)}'s lease is still running at every instant the op could take effect`);
  return dedupe(ctx.out);
}

interface StepContext {
  readonly op: LockOp;
  readonly out: LeaseState[];
  readonly why: string[] | undefined;
  readonly canLose: boolean;
}

function reject(ctx: StepContext, reason: string): void {
  ctx.why?.push(`${reason}, got ${formatOutput(ctx.op.output)}`);
}

/**
 * Adds a successor in which the op changed nothing but the clock (or only
 * dropped a lease that had already expired). For an op without a reply that
 * successor is dropped: leaving the op out of the linearization, which is
 * always allowed for it, keeps a state that admits everything this one does,
 * so the search loses nothing and skips a branch per unanswered op. That is
 * what keeps histories with many lost replies tractable.
 */
function pushNoEffect(ctx: StepContext, successor: LeaseState): void {
  if (ctx.op.output !== undefined) ctx.out.push(successor);
}

function dedupe(states: LeaseState[]): LeaseState[] {
  if (states.length < 2) return states;
  const seen = new Map<string, LeaseState>();
  for (const state of states) seen.set(stateKey(state), state);
  return [...seen.values()];
}

/** Nobody holds the lock (never granted, released, or its lease expired before the op). */
function applyFree(state: LeaseState, work: OpZone, ctx: StepContext): void {
  const input = ctx.op.input;
  const output = ctx.op.output;
  const free: LeaseState = { ...state, holder: null, lost: false, zone: closeOp(work, 'free') };
  if (input.kind !== 'lock') {
    if (output === true || typeof output === 'bigint' || isInfo(output)) {
      reject(ctx, `if nobody holds it, ${input.kind} must answer ${input.kind === 'unlock' ? 'false' : 'nil'}`);
    } else {
      pushNoEffect(ctx, free);
    }
    return;
  }
  if (output === null) {
    if (ctx.canLose) ctx.out.push(free);
    else reject(ctx, 'if nobody holds it, lock must grant it');
    return;
  }
  const granted = newGrantToken(state, input.durability, output as bigint | undefined, ctx);
  if (granted === undefined) return;
  ctx.out.push({ holder: input.owner, lost: false, ...granted, zone: closeOp(work, { ttlMs: input.ttlMs }) });
}

/** Token of a grant to a new holder, or undefined (with a reason) if output is not a valid one. */
function newGrantToken(
  state: LeaseState, durability: Durability, output: bigint | undefined, ctx: StepContext,
): { token: bigint; tokenExact: boolean } | undefined {
  const least = state.token + 1n;
  if (output === undefined) return { token: least, tokenExact: durability === 'persistent' };
  if (durability === 'persistent' ? output === least : output >= least) return { token: output, tokenExact: true };
  reject(ctx, `a new grant must return token ${durability === 'persistent' ? '' : '>= '}${least}`);
  return undefined;
}

/** state with the holder's token matched against an observed token, or undefined if they disagree. */
function matchHeldToken(state: LeaseState, observed: bigint | undefined, ctx: StepContext): LeaseState | undefined {
  if (observed === undefined) return state;
  if (state.tokenExact ? observed === state.token : observed >= state.token) {
    return state.tokenExact ? state : { ...state, token: observed, tokenExact: true };
  }
  const holder = JSON.stringify(state.holder);
  reject(ctx, `${holder} holds it with token ${state.tokenExact ? '' : '>= '}${state.token}`);
  return undefined;
}

/** The holder's lease is running at the op's instant and the server knows it. */
function applyHeld(state: LeaseState, work: OpZone, ctx: StepContext): void {
  const input = ctx.op.input;
  const output = ctx.op.output;
  const unchanged: LeaseState = { ...state, zone: closeOp(work, 'keep') };
  const holder = JSON.stringify(state.holder);
  if (input.kind === 'get') {
    applyHeldGet(state, work, ctx);
    return;
  }
  if (input.owner !== state.holder) {
    if (output === true || typeof output === 'bigint') reject(ctx, `${holder} holds it, so another owner's ${input.kind} fails`);
    else pushNoEffect(ctx, unchanged);
    return;
  }
  if (input.kind === 'unlock') {
    if (output === false) reject(ctx, `${holder} holds it, so its unlock succeeds`);
    else ctx.out.push({ ...state, holder: null, zone: closeOp(work, 'free') });
    return;
  }
  if (output === null) {
    reject(ctx, `${holder} holds it, so its ${input.kind} returns its token`);
    return;
  }
  const matched = matchHeldToken(state, output as bigint | undefined, ctx);
  if (matched === undefined) return;
  // Re-lock keeps the expiry (Kahuna's rule); extend restarts the lease.
  if (input.kind === 'lock') pushNoEffect(ctx, { ...matched, zone: closeOp(work, 'keep') });
  else ctx.out.push({ ...matched, zone: closeOp(work, { ttlMs: input.ttlMs }) });
}

function applyHeldGet(state: LeaseState, work: OpZone, ctx: StepContext): void {
  const output = ctx.op.output;
  const holder = JSON.stringify(state.holder);
  if (output === undefined) {
    pushNoEffect(ctx, { ...state, zone: closeOp(work, 'keep') });
    return;
  }
  if (!isInfo(output)) {
    reject(ctx, `${holder} holds it, so get shows it`);
    return;
  }
  if (output.owner !== state.holder) {
    reject(ctx, `${holder} holds it, so get shows that owner`);
    return;
  }
  const matched = matchHeldToken(state, output.token, ctx);
  if (matched === undefined) return;
  const timed = withRemaining(work, output.remainingMs);
  if (timed === undefined) {
    const [lo, hi] = remainingRange(work);
    reject(ctx, `remaining time must be expiry - now, in ${range(lo, hi)} ms for op instants ${range(...opTimeRange(work))}`);
    return;
  }
  ctx.out.push({ ...matched, zone: closeOp(timed, 'keep') });
}

/**
 * The server lost the holder in a failover but the lease is still running:
 * every command sees a free lock except that nobody may be granted it.
 */
function applyLost(state: LeaseState, work: OpZone, ctx: StepContext): void {
  const output = ctx.op.output;
  if (output === true || typeof output === 'bigint' || isInfo(output)) {
    const holder = JSON.stringify(state.holder);
    reject(ctx, `if the server lost ${holder}'s ephemeral lease, ${ctx.op.input.kind} fails until it expires`);
    return;
  }
  pushNoEffect(ctx, { ...state, zone: closeOp(work, 'keep') });
}

function isInfo(output: LockOutput | undefined): output is LockInfoOutput {
  return typeof output === 'object' && output !== null;
}
