/**
 * The replicated state of the lock state machine as bytes: what a Raft
 * snapshot carries. Only the PERSISTENT namespace (which holds the Redis
 * keyspace) is replicated; EPHEMERAL locks live in the leader's memory.
 *
 * Layout (big-endian): 'RLLS' magic, u8 version, f64 log time of the last
 * applied command, f64 EPHEMERAL horizon (version 2 on), then the
 * PERSISTENT table (LockTable.writeSnapshot; version 3 on, a released
 * resource's record may name the owner that released it).
 */
import { Reader, Writer } from './codec.js';
import type { LockStateMachine } from './machine.js';

const MAGIC = 0x524c4c53; // 'RLLS'
const VERSION = 3;

/** Encodes the replicated state as of the last applied command, whose log time is logTimeMs. */
export function encodeLockSnapshot(machine: LockStateMachine, logTimeMs: number): Uint8Array {
  const w = new Writer(1 << 16);
  w.u32(MAGIC).u8(VERSION).f64(logTimeMs).f64(machine.ephemeralHorizonMs);
  machine.persistent.writeSnapshot(w);
  return w.finish();
}

/**
 * Replaces the machine's replicated state with a snapshot's; returns the log
 * time it was taken at. Throws on bytes encodeLockSnapshot did not write,
 * leaving the table unusable: the caller must stop.
 */
export function restoreLockSnapshot(machine: LockStateMachine, bytes: Uint8Array): { logTimeMs: number } {
  const r = new Reader(bytes, 'lock snapshot');
  if (r.u32() !== MAGIC) throw r.error('bad magic');
  const version = r.u8();
  if (version < 1 || version > VERSION) throw r.error(`unknown format version ${version}`);
  const logTimeMs = r.f64();
  machine.ephemeralHorizonMs = version >= 2 ? r.f64() : 0;
  machine.persistent.readSnapshot(r);
  r.end();
  return { logTimeMs };
}
