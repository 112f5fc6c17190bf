/**
 * Native (TypeScript) runs of the well-known lock scripts: the same machine
 * calls, in the same order, that the script makes through redis.call, so
 * the reply and the resulting state are the ones the Lua VM gives (the
 * differential test in test/script checks it on random states).
 *
 * A native run handles the well-formed case only: when the arguments are
 * not what the script expects (a missing ARGV, a ttl that is not an
 * integer, a key outside the partition, a write in a read-only script), it
 * returns undefined and the script runs in the VM, whose behaviour is the
 * reference.
 */
import { parseInteger } from '../commands/syntax.js';
import type { CallContext } from './calls.js';
import type { ScriptReply } from './reply.js';

/** The reply, or undefined to run the script in the VM instead. */
export type NativeScript = (c: CallContext, keys: readonly string[], args: readonly string[]) => ScriptReply | undefined;

/** A lease SET ... PX accepts: 1 … 2^53-1 ms (undefined otherwise). */
function pxMs(text: string | undefined): number | undefined {
  const ms = text === undefined ? null : parseInteger(text);
  return ms !== null && ms >= 1 && ms <= Number.MAX_SAFE_INTEGER ? ms : undefined;
}

/** An integer PEXPIRE accepts without error, kept small enough that adding a PTTL stays exact. */
function pexpireMs(text: string | undefined): number | undefined {
  const ms = text === undefined ? null : parseInteger(text);
  return ms !== null && Math.abs(ms) <= 2 ** 50 ? ms : undefined;
}

/** Whether a run of a single-key script (KEYS[1], ARGV[1] at least) may go native. */
function singleKey(c: CallContext, keys: readonly string[], args: readonly string[], writes: boolean): boolean {
  return keys.length >= 1 && args.length >= 1 && c.isLocal(keys[0]!) && !(writes && c.readOnly);
}

function setPx(c: CallContext, key: string, owner: string, ttlMs: number, mode: 'always' | 'nx'): boolean {
  return c.machine.set(key, owner, { mode, expiry: { kind: 'ttl', ttlMs } }, c.nowMs).written;
}

function holds(c: CallContext, key: string, owner: string): boolean {
  return c.machine.get(key, c.nowMs) === owner;
}

/** Whether a repeat by the same owner counts as a success (LockStateMachine.ownerRepeats). */
function repeats(c: CallContext): boolean {
  return c.machine.ownerRepeats !== 'none';
}

/**
 * The owner already released key (it may be held by another since): with
 * repeats on, its release again is a success, and changes nothing.
 */
function releasedBy(c: CallContext, key: string, owner: string): boolean {
  return repeats(c) && c.machine.releasedBy(key, c.nowMs) === owner;
}

/** redlock acquire: fails (0) if any key exists, else SET every key PX ttl; replies #KEYS. */
export const redlockAcquire: NativeScript = (c, keys, args) => {
  const ttlMs = pxMs(args[1]);
  if (ttlMs === undefined || c.readOnly || !keys.every((k) => c.isLocal(k))) return undefined;
  for (const key of keys) {
    if (c.machine.exists([key], c.nowMs) === 1) {
      // The holder asking again (every key already its own): a success that changes nothing.
      return repeats(c) && keys.every((k) => holds(c, k, args[0]!)) ? keys.length : 0;
    }
  }
  for (const key of keys) setPx(c, key, args[0]!, ttlMs, 'always');
  return keys.length;
};

/** redlock extend: fails (0) if any key has another value, else SET every key PX ttl; replies #KEYS. */
export const redlockExtend: NativeScript = (c, keys, args) => {
  const ttlMs = pxMs(args[1]);
  if (ttlMs === undefined || c.readOnly || !keys.every((k) => c.isLocal(k))) return undefined;
  for (const key of keys) if (!holds(c, key, args[0]!)) return 0;
  for (const key of keys) setPx(c, key, args[0]!, ttlMs, 'always');
  return keys.length;
};

/** redlock release: DEL each key holding the value; replies how many. */
export const redlockRelease: NativeScript = (c, keys, args) => {
  if (args.length < 1 || c.readOnly || !keys.every((k) => c.isLocal(k))) return undefined;
  let count = 0;
  for (const key of keys) {
    if (holds(c, key, args[0]!)) {
      c.machine.del([key], c.nowMs);
      count += 1;
    } else if (releasedBy(c, key, args[0]!)) {
      count += 1;
    }
  }
  return count;
};

/** GET == ARGV[1] → DEL's reply, else 0 (redsync, RedLock.net, pottery release). */
export const deleteIfHeld: NativeScript = (c, keys, args) => {
  if (!singleKey(c, keys, args, true)) return undefined;
  if (holds(c, keys[0]!, args[0]!)) return c.machine.del([keys[0]!], c.nowMs);
  return releasedBy(c, keys[0]!, args[0]!) ? 1 : 0;
};

/** redsync's newer delete: DEL's reply when held, -1 when the key is missing, else 0. */
export const deleteIfHeldOrMissing: NativeScript = (c, keys, args) => {
  if (!singleKey(c, keys, args, true)) return undefined;
  const value = c.machine.get(keys[0]!, c.nowMs);
  if (value === args[0]) return c.machine.del([keys[0]!], c.nowMs);
  if (releasedBy(c, keys[0]!, args[0]!)) return 1;
  return value === undefined ? -1 : 0;
};

/** GET == ARGV[1] → PEXPIRE's reply, else 0 (redsync touch, pottery extend). */
export const pexpireIfHeld: NativeScript = (c, keys, args) => {
  const ttlMs = pexpireMs(args[1]);
  if (ttlMs === undefined || !singleKey(c, keys, args, true)) return undefined;
  return holds(c, keys[0]!, args[0]!) ? c.machine.expire(keys[0]!, ttlMs, 'always', c.nowMs) : 0;
};

/** redsync touch with SET NX: PEXPIRE when held, else SET NX PX (1 if set), else 0. */
export const pexpireIfHeldOrSetNx: NativeScript = (c, keys, args) => {
  const ttlMs = pxMs(args[1]);
  if (ttlMs === undefined || !singleKey(c, keys, args, true)) return undefined;
  if (holds(c, keys[0]!, args[0]!)) return c.machine.expire(keys[0]!, ttlMs, 'always', c.nowMs);
  return setPx(c, keys[0]!, args[0]!, ttlMs, 'nx') ? 1 : 0;
};

/** RedLock.net extend: SET PX when missing (1), PEXPIRE when held, else -1. */
export const redLockNetExtend: NativeScript = (c, keys, args) => {
  const ttlMs = pxMs(args[1]);
  if (ttlMs === undefined || !singleKey(c, keys, args, true)) return undefined;
  const value = c.machine.get(keys[0]!, c.nowMs);
  if (value === undefined) return setPx(c, keys[0]!, args[0]!, ttlMs, 'always') ? 1 : 0;
  return value === args[0] ? c.machine.expire(keys[0]!, ttlMs, 'always', c.nowMs) : -1;
};

/** pottery's acquired check: the remaining PTTL (0 when none) if held, else 0. Reads only. */
export const potteryAcquired: NativeScript = (c, keys, args) => {
  if (!singleKey(c, keys, args, false)) return undefined;
  if (!holds(c, keys[0]!, args[0]!)) return 0;
  const pttl = c.machine.pttl(keys[0]!, c.nowMs);
  return pttl > 0 ? pttl : 0;
};

/** redis-py Lock.release: 0 unless held, then DEL and 1. */
export const redisPyRelease: NativeScript = (c, keys, args) => {
  if (!singleKey(c, keys, args, true)) return undefined;
  if (!holds(c, keys[0]!, args[0]!)) return 0;
  c.machine.del([keys[0]!], c.nowMs);
  return 1;
};

/**
 * redis-py Lock.extend: 0 unless held with an expiry; then PEXPIRE to
 * ARGV[2], or to ARGV[2] + the remaining PTTL when ARGV[3] is "0"; 1.
 */
export const redisPyExtend: NativeScript = (c, keys, args) => {
  const ms = pexpireMs(args[1]);
  if (ms === undefined || !singleKey(c, keys, args, true)) return undefined;
  if (!holds(c, keys[0]!, args[0]!)) return 0;
  const expiration = c.machine.pttl(keys[0]!, c.nowMs);
  if (expiration < 0) return 0;
  c.machine.expire(keys[0]!, args[2] === '0' ? ms + expiration : ms, 'always', c.nowMs);
  return 1;
};

/** redis-py Lock.reacquire: 0 unless held, then PEXPIRE to ARGV[2] and 1. */
export const redisPyReacquire: NativeScript = (c, keys, args) => {
  const ms = pexpireMs(args[1]);
  if (ms === undefined || !singleKey(c, keys, args, true)) return undefined;
  if (!holds(c, keys[0]!, args[0]!)) return 0;
  c.machine.expire(keys[0]!, ms, 'always', c.nowMs);
  return 1;
};
