/**
 * The client library's errors. Each carries a stable `code` (match on it, not
 * on the message or the class name, which may change) and, where it came from
 * the server, the server's reply text.
 */

export type RaftLockErrorCode =
  /** An argument was rejected before anything was sent (empty resource, bad expiry...). */
  | 'ERR_RAFTLOCK_INVALID_ARGUMENT'
  /** No endpoint could be reached, or none answered in time. */
  | 'ERR_RAFTLOCK_UNAVAILABLE'
  /** The partition had no leader (-TRYAGAIN / -CLUSTERDOWN) for as long as the call was willing to wait. */
  | 'ERR_RAFTLOCK_NO_LEADER'
  /** The server answered with an error reply the client does not retry (-NOAUTH, -ERR ...). */
  | 'ERR_RAFTLOCK_SERVER'
  /** The lock is not held by this owner any more (refused renewal, or the lease ran out locally). */
  | 'ERR_RAFTLOCK_LOCK_LOST'
  /** The client was closed. */
  | 'ERR_RAFTLOCK_CLOSED';

export class RaftLockError extends Error {
  constructor(readonly code: RaftLockErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RaftLockError';
  }
}

export class InvalidArgumentError extends RaftLockError {
  constructor(message: string) {
    super('ERR_RAFTLOCK_INVALID_ARGUMENT', message);
    this.name = 'InvalidArgumentError';
  }
}

export class UnavailableError extends RaftLockError {
  constructor(message: string, cause?: unknown) {
    super('ERR_RAFTLOCK_UNAVAILABLE', message, { cause });
    this.name = 'UnavailableError';
  }
}

export class NoLeaderError extends RaftLockError {
  constructor(readonly reply: string) {
    super('ERR_RAFTLOCK_NO_LEADER', `no partition leader in time: ${reply}`);
    this.name = 'NoLeaderError';
  }
}

export class ServerError extends RaftLockError {
  constructor(readonly reply: string) {
    super('ERR_RAFTLOCK_SERVER', reply);
    this.name = 'ServerError';
  }
}

export type LockLostReason =
  /** The server refused a renewal: another owner holds the lock, or it expired and was freed. */
  | 'refused'
  /** The lease ran out on the client's clock while renewals were failing. */
  | 'expired'
  /** The lock was released through this handle. */
  | 'released';

export class LockLostError extends RaftLockError {
  constructor(readonly resource: string, readonly reason: LockLostReason) {
    super('ERR_RAFTLOCK_LOCK_LOST', lostMessage(resource, reason));
    this.name = 'LockLostError';
  }
}

function lostMessage(resource: string, reason: LockLostReason): string {
  switch (reason) {
    case 'refused':
      return `lock '${resource}' lost: the server refused to extend it (another owner holds it, or it expired)`;
    case 'expired':
      return `lock '${resource}' lost: its lease ran out while renewals were failing`;
    case 'released':
      return `lock '${resource}' was released`;
  }
}

export class ClientClosedError extends RaftLockError {
  constructor() {
    super('ERR_RAFTLOCK_CLOSED', 'the RaftLockClient is closed');
    this.name = 'ClientClosedError';
  }
}
