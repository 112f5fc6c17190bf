// The four lock operations of raftlock-cli, each one raftlock command (KLOCK, KUNLOCK, KEXTEND,
// KGETLOCK), and what their replies mean.
import type { LockConnection } from './connection.js';

export type Durability = 'persistent' | 'ephemeral';

/** Largest lease or wait the lock commands accept: 2^31-1 ms. */
export const MS_MAX = 2 ** 31 - 1;

export type Operation =
  | { kind: 'lock'; resource: string; owner: string; ttlMs: number; waitMs?: number | undefined; durability: Durability }
  | { kind: 'unlock'; resource: string; owner: string; durability: Durability }
  | { kind: 'extend'; resource: string; owner: string; ttlMs: number; durability: Durability }
  | { kind: 'get-lock'; resource: string; durability: Durability };

export interface LockHolder {
  owner: string;
  fencingToken: bigint;
  remainingMs: number;
}

export type Outcome =
  | { kind: 'lock'; resource: string; owner: string; acquired: boolean; fencingToken: bigint | null }
  | { kind: 'unlock'; resource: string; owner: string; unlocked: boolean }
  | { kind: 'extend'; resource: string; owner: string; extended: boolean; fencingToken: bigint | null }
  | { kind: 'get-lock'; resource: string; holder: LockHolder | null };

/** The server's reply did not have the shape the command promises. */
export class ProtocolError extends Error {}

/** Whether the operation did what was asked: acquired, released, extended, or found a holder. */
export function succeeded(outcome: Outcome): boolean {
  switch (outcome.kind) {
    case 'lock': return outcome.acquired;
    case 'unlock': return outcome.unlocked;
    case 'extend': return outcome.extended;
    case 'get-lock': return outcome.holder !== null;
  }
}

/** The command line sent for an operation. */
export function commandFor(op: Operation): string[] {
  const durability = op.durability.toUpperCase();
  switch (op.kind) {
    case 'lock': {
      const wait = op.waitMs === undefined ? [] : ['WAIT', String(op.waitMs)];
      return ['KLOCK', op.resource, op.owner, String(op.ttlMs), durability, ...wait];
    }
    case 'unlock': return ['KUNLOCK', op.resource, op.owner, durability];
    case 'extend': return ['KEXTEND', op.resource, op.owner, String(op.ttlMs), durability];
    case 'get-lock': return ['KGETLOCK', op.resource, durability];
  }
}

export async function runOperation(connection: LockConnection, op: Operation): Promise<Outcome> {
  const { reply, maybeAppliedBefore } = await connection.call(commandFor(op), op.kind === 'lock' ? op.waitMs ?? 0 : 0);
  switch (op.kind) {
    case 'lock': {
      const fencingToken = tokenOrNull(reply, 'KLOCK');
      return { kind: 'lock', resource: op.resource, owner: op.owner, acquired: fencingToken !== null, fencingToken };
    }
    case 'unlock': {
      const released = integer(reply, 'KUNLOCK') === 1n;
      // After an attempt that may have released the lock, 0 still means this owner no longer holds it.
      return { kind: 'unlock', resource: op.resource, owner: op.owner, unlocked: released || maybeAppliedBefore };
    }
    case 'extend': {
      const fencingToken = tokenOrNull(reply, 'KEXTEND');
      return { kind: 'extend', resource: op.resource, owner: op.owner, extended: fencingToken !== null, fencingToken };
    }
    case 'get-lock':
      return { kind: 'get-lock', resource: op.resource, holder: holderOf(reply) };
  }
}

function tokenOrNull(reply: unknown, command: string): bigint | null {
  return reply === null ? null : integer(reply, command);
}

/** An integer reply (ioredis gives it as a string with stringNumbers, so 64-bit tokens stay exact). */
function integer(reply: unknown, command: string): bigint {
  if ((typeof reply === 'string' && /^-?\d+$/.test(reply)) || (typeof reply === 'number' && Number.isInteger(reply))) {
    return BigInt(reply);
  }
  throw new ProtocolError(`unexpected ${command} reply: ${JSON.stringify(reply)}`);
}

function holderOf(reply: unknown): LockHolder | null {
  if (reply === null) return null;
  if (!Array.isArray(reply) || reply.length !== 3 || typeof reply[0] !== 'string') {
    throw new ProtocolError(`unexpected KGETLOCK reply: ${JSON.stringify(reply)}`);
  }
  return { owner: reply[0], fencingToken: integer(reply[1], 'KGETLOCK'), remainingMs: Number(integer(reply[2], 'KGETLOCK')) };
}
