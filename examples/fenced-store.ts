// A storage layer that fences writes with raftlock's tokens, and how a Redlock user gets the token.
//
// A lock service alone cannot stop a client that paused (GC, swap, a stopped VM) past its lease from
// writing after another client took the lock. The storage must refuse it: every write carries the
// fencing token of the lock it was made under, and the store rejects a token lower than the highest
// it has accepted for that resource. raftlock gives every grant of a resource a larger token, so the
// late writer's token is always the lower one.
import type { Redis, Cluster } from 'ioredis';

/** Thrown when a write carries a token older than one the store has already accepted. */
export class StaleTokenError extends Error {
  constructor(readonly resource: string, readonly token: number, readonly highest: number) {
    super(`stale fencing token ${token} for ${resource}: the store has accepted ${highest}`);
    this.name = 'StaleTokenError';
  }
}

/**
 * An in-memory store that accepts a write only with a token at least as high as any it has seen for
 * that resource (the same holder may write many times with its token). A real store does the same
 * check in the transaction that writes, e.g. `UPDATE ... WHERE fencing_token <= $token`.
 */
export class FencedStore<V> {
  private readonly highest = new Map<string, number>();
  private readonly values = new Map<string, V>();

  write(resource: string, token: number, value: V): void {
    const highest = this.highest.get(resource) ?? -1;
    if (token < highest) throw new StaleTokenError(resource, token, highest);
    this.highest.set(resource, token);
    this.values.set(resource, value);
  }

  read(resource: string): V | undefined {
    return this.values.get(resource);
  }
}

/**
 * The fencing token of the lock a Redlock client just took on `resource` (`lock.value` is its
 * owner): KGETLOCK answers [owner, token, remaining ms]. If the owner is not ours, the lock was lost
 * already (it expired and someone else took it) and there is no token to write with.
 */
export async function fencingToken(client: Redis | Cluster, resource: string, owner: string): Promise<number | null> {
  const info = (await client.call('KGETLOCK', resource)) as [string, number, number] | null;
  if (info === null || info[0] !== owner) return null;
  return info[1];
}
