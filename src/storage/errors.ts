/**
 * Typed storage errors. Each carries a stable `code` so that callers (the Raft
 * glue, the server's start-up path, the simulator) branch on the kind of
 * failure rather than on message text.
 */

export type StorageErrorCode =
  | 'RAFTLOCK_ERR_WAL_CORRUPT'
  | 'RAFTLOCK_ERR_WAL_INVALID_RECORD'
  | 'RAFTLOCK_ERR_WAL_QUEUE_FULL'
  | 'RAFTLOCK_ERR_WAL_FAILED'
  | 'RAFTLOCK_ERR_WAL_CLOSED'
  | 'RAFTLOCK_ERR_SNAPSHOT_CORRUPT'
  | 'RAFTLOCK_ERR_SNAPSHOT_INVALID';

export class StorageError extends Error {
  readonly code: StorageErrorCode;

  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * The log on disk is damaged somewhere other than a torn tail, so starting
 * would silently lose acknowledged records. Names the file and byte offset so
 * that an operator can inspect it; the node must be restored from its peers.
 */
export class WalCorruptError extends StorageError {
  readonly file: string;
  readonly offset: number;

  constructor(file: string, offset: number, reason: string) {
    super('RAFTLOCK_ERR_WAL_CORRUPT',
      `WAL segment ${file} is corrupt at byte offset ${offset}: ${reason}; refusing to start, ` +
      'since this is not a torn tail and cutting it off could drop acknowledged writes');
    this.file = file;
    this.offset = offset;
  }
}

/** The caller handed the WAL a record that breaks the format or a Raft log invariant. Nothing was written. */
export class WalInvalidRecordError extends StorageError {
  constructor(message: string) {
    super('RAFTLOCK_ERR_WAL_INVALID_RECORD', message);
  }
}

/** Back-pressure: the append queue is at its byte or count limit. Nothing was written; retry later. */
export class WalQueueFullError extends StorageError {
  constructor(message: string) {
    super('RAFTLOCK_ERR_WAL_QUEUE_FULL', message);
  }
}

/**
 * A write or fdatasync failed. After a failed fsync the kernel may already have
 * dropped the dirty pages, so retrying could report durability that does not
 * exist: the WAL stops for good and the process must restart and replay.
 * `maybeWritten` tells the caller whether this append could still be on disk
 * (its batch was in flight) or certainly is not (it was still queued).
 */
export class WalFailedError extends StorageError {
  readonly maybeWritten: boolean;

  constructor(message: string, maybeWritten: boolean, cause?: unknown) {
    super('RAFTLOCK_ERR_WAL_FAILED', message, { cause });
    this.maybeWritten = maybeWritten;
  }
}

export class WalClosedError extends StorageError {
  constructor() {
    super('RAFTLOCK_ERR_WAL_CLOSED', 'the WAL is closed');
  }
}

export class SnapshotCorruptError extends StorageError {
  readonly file: string;

  constructor(file: string, reason: string) {
    super('RAFTLOCK_ERR_SNAPSHOT_CORRUPT', `snapshot ${file} is corrupt: ${reason}`);
    this.file = file;
  }
}

export class SnapshotInvalidError extends StorageError {
  constructor(message: string) {
    super('RAFTLOCK_ERR_SNAPSHOT_INVALID', message);
  }
}
