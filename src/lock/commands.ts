import { Reader, readF64BE, Writer } from './codec.js';
import type { Durability, ExpireCondition, LockStateMachine, SetExpiry, SetResult } from './machine.js';
import { noopScriptOutcome, runScript } from '../script/run.js';
import type { ScriptReply } from '../script/reply.js';

/**
 * The writes of the lock state machine as data: what a replicated log
 * carries. Each command also carries its log time, the leader's clock when it
 * proposed the command, so every replica applies it at the same instant.
 */
export type LockOp =
  | { kind: 'lock'; durability: Durability; resource: string; owner: string; ttlMs: number }
  | { kind: 'unlock'; durability: Durability; resource: string; owner: string }
  | { kind: 'extend'; durability: Durability; resource: string; owner: string; ttlMs: number }
  | { kind: 'set'; key: string; value: string; mode: 'always' | 'nx' | 'xx'; expiry: SetExpiry }
  | { kind: 'del'; keys: string[] }
  | { kind: 'expire'; key: string; ttlMs: number; condition: ExpireCondition }
  | { kind: 'persist'; key: string }
  /** Lets log time advance and expired locks be reclaimed when nothing else is written. */
  | { kind: 'tick' }
  /** Raises the EPHEMERAL horizon (LockStateMachine.ephemeralHorizonMs) to untilMs. */
  | { kind: 'horizon'; untilMs: number }
  | ScriptOp;

/**
 * EVAL / EVALSHA: a script, run when its entry applies, on every replica, at
 * the entry's log time, so its effects are atomic and in log order. The
 * entry carries the whole text (a replica runs it natively when it knows it,
 * in its Lua VM otherwise), and what else the run depends on: the leader's
 * wall clock (for SET EXAT/PXAT), the instruction budget, and the partition
 * (of how many) whose keys it may touch.
 */
export interface ScriptOp {
  kind: 'script';
  body: string;
  keys: string[];
  args: string[];
  wallClockMs: number;
  budget: number;
  partition: number;
  partitions: number;
}

export interface LockCommand {
  logTimeMs: number;
  op: LockOp;
}

export type LockResult = bigint | null | boolean | number | SetResult | ScriptReply;

/** Expired locks each applied command reclaims; bounded so apply cost stays O(1). */
export const EXPIRE_PER_APPLY = 4;
/** Expired locks a 'tick' command reclaims (the leader proposes ticks while expired locks remain). */
export const EXPIRE_PER_TICK = 512;

/** Applies one command at its log time. Deterministic: replicas agree on the result and state. */
export function applyCommand(machine: LockStateMachine, command: LockCommand): LockResult {
  const now = command.logTimeMs;
  const op = command.op;
  let result: LockResult;
  switch (op.kind) {
    case 'lock': result = machine.lock(op.durability, op.resource, op.owner, op.ttlMs, now); break;
    case 'unlock': result = machine.unlock(op.durability, op.resource, op.owner, now); break;
    case 'extend': result = machine.extend(op.durability, op.resource, op.owner, op.ttlMs, now); break;
    case 'set': result = machine.set(op.key, op.value, { mode: op.mode, expiry: op.expiry }, now); break;
    case 'del': result = machine.del(op.keys, now); break;
    case 'expire': result = machine.expire(op.key, op.ttlMs, op.condition, now); break;
    case 'persist': result = machine.persist(op.key, now); break;
    case 'tick': result = machine.expireDue(now, EXPIRE_PER_TICK); break;
    case 'horizon': machine.raiseHorizon(op.untilMs); result = null; break;
    case 'script': result = runScript(machine, { ...op, nowMs: now, readOnly: false }); break;
  }
  machine.expireDue(now, EXPIRE_PER_APPLY);
  return result;
}

/**
 * The result of op at nowMs if applying it would change nothing a client can
 * observe (a lock held by another owner, the holder asking again, an unlock
 * or extend by a non-holder, SET NX on a live key); undefined if it would
 * change the state or the answer needs the log. Never changes the machine.
 */
export function noopOutcome(machine: LockStateMachine, op: LockOp, nowMs: number): LockResult | undefined {
  switch (op.kind) {
    case 'lock': {
      const holder = machine.table(op.durability).peek(op.resource, nowMs);
      if (holder === undefined) return undefined;
      return holder.owner === op.owner ? holder.token : null;
    }
    case 'unlock':
    case 'extend': {
      const holder = machine.table(op.durability).peek(op.resource, nowMs);
      if (holder !== undefined && holder.owner === op.owner) return undefined;
      return op.kind === 'unlock' ? false : null;
    }
    case 'set': {
      if (op.mode === 'always') return undefined;
      const holder = machine.persistent.peek(op.key, nowMs);
      if ((op.mode === 'nx') === (holder === undefined)) return undefined;
      const repeat = op.mode === 'nx' && machine.ownerRepeats === 'all' && holder?.owner === op.value;
      return { written: repeat, previous: holder?.owner };
    }
    case 'script':
      return noopScriptOutcome(machine, op, nowMs);
    default:
      return undefined;
  }
}

const KINDS = ['lock', 'unlock', 'extend', 'set', 'del', 'expire', 'persist', 'tick', 'horizon', 'script'] as const;
const MODES = ['always', 'nx', 'xx'] as const;
const CONDITIONS = ['always', 'nx', 'xx', 'gt', 'lt'] as const;
const FORMAT_VERSION = 1;

/** Reused by every encodeCommand(): finish() copies the bytes out. */
const SCRATCH = new Writer(256);

/** Binary encoding: version, kind, log time (f64), then the op's fields; strings are length-prefixed bytes. */
export function encodeCommand(command: LockCommand): Uint8Array {
  const w = SCRATCH.reset();
  const op = command.op;
  w.u8(FORMAT_VERSION);
  w.u8(KINDS.indexOf(op.kind));
  w.f64(command.logTimeMs);
  switch (op.kind) {
    case 'lock':
    case 'extend':
      w.u8(op.durability === 'persistent' ? 0 : 1).str(op.resource).str(op.owner).f64(op.ttlMs);
      break;
    case 'unlock':
      w.u8(op.durability === 'persistent' ? 0 : 1).str(op.resource).str(op.owner);
      break;
    case 'set':
      w.str(op.key).str(op.value).u8(MODES.indexOf(op.mode));
      w.u8(op.expiry.kind === 'none' ? 0 : op.expiry.kind === 'keep' ? 1 : 2);
      if (op.expiry.kind === 'ttl') w.f64(op.expiry.ttlMs);
      break;
    case 'del':
      writeStrings(w, op.keys);
      break;
    case 'expire':
      w.str(op.key).f64(op.ttlMs).u8(CONDITIONS.indexOf(op.condition));
      break;
    case 'persist':
      w.str(op.key);
      break;
    case 'tick':
      break;
    case 'horizon':
      w.f64(op.untilMs);
      break;
    case 'script':
      w.str(op.body);
      writeStrings(w, op.keys);
      writeStrings(w, op.args);
      w.f64(op.wallClockMs).u32(op.budget).u32(op.partition).u32(op.partitions);
      break;
  }
  return w.finish();
}

/** The log time of an encoded command, without decoding the rest. */
export function commandLogTime(bytes: Uint8Array): number {
  if (bytes.length < 10 || bytes[0] !== FORMAT_VERSION) throw new Error('lock command: truncated or unknown format');
  return readF64BE(bytes, 2);
}

/** Decodes what encodeCommand wrote; throws on anything else (a corrupt entry must not apply). */
export function decodeCommand(bytes: Uint8Array): LockCommand {
  const r = new Reader(bytes, 'lock command');
  const version = r.u8();
  if (version !== FORMAT_VERSION) throw new Error(`lock command: unknown format version ${version}`);
  const kind = KINDS[r.u8()];
  const logTimeMs = r.f64();
  let op: LockOp;
  switch (kind) {
    case 'lock':
    case 'extend':
      op = { kind, durability: r.durability(), resource: r.str(), owner: r.str(), ttlMs: r.f64() };
      break;
    case 'unlock':
      op = { kind, durability: r.durability(), resource: r.str(), owner: r.str() };
      break;
    case 'set': {
      const key = r.str();
      const value = r.str();
      const mode = r.pick(MODES);
      const expiryKind = r.u8();
      const expiry: SetExpiry = expiryKind === 0 ? { kind: 'none' } : expiryKind === 1 ? { kind: 'keep' } : { kind: 'ttl', ttlMs: r.f64() };
      op = { kind, key, value, mode, expiry };
      break;
    }
    case 'del':
      op = { kind, keys: readStrings(r) };
      break;
    case 'expire':
      op = { kind, key: r.str(), ttlMs: r.f64(), condition: r.pick(CONDITIONS) };
      break;
    case 'persist':
      op = { kind, key: r.str() };
      break;
    case 'tick':
      op = { kind };
      break;
    case 'horizon':
      op = { kind, untilMs: r.f64() };
      break;
    case 'script':
      op = {
        kind, body: r.str(), keys: readStrings(r), args: readStrings(r),
        wallClockMs: r.f64(), budget: r.u32(), partition: r.u32(), partitions: r.u32(),
      };
      break;
    default:
      throw r.error('unknown kind');
  }
  r.end();
  return { logTimeMs, op };
}

function writeStrings(w: Writer, strings: readonly string[]): void {
  w.u32(strings.length);
  for (const s of strings) w.str(s);
}

function readStrings(r: Reader): string[] {
  const count = r.u32();
  const strings: string[] = [];
  for (let i = 0; i < count; i++) strings.push(r.str());
  return strings;
}
