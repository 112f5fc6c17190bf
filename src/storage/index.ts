/** The durable storage layer: WAL, snapshots, and the injectable file system beneath them. */
export { crc32c } from './crc32c.js';
export {
  StorageError, WalCorruptError, WalInvalidRecordError, WalQueueFullError, WalFailedError, WalClosedError,
  SnapshotCorruptError, SnapshotInvalidError, type StorageErrorCode,
} from './errors.js';
export { type FileHandleLike, type OpenFlags, type StorageFs, nodeFs, writeAll, ensureDir } from './fs.js';
export { MemoryFs, type Rng } from './memory-fs.js';
export { SnapshotStore, type Snapshot, type SnapshotInfo, type JsonValue } from './snapshot.js';
export type { TornTail } from './segment.js';
export type { Entry, EntryType, HardState, SnapshotMarker, WalRecord, GroupReplay } from './types.js';
export {
  Wal, WAL_DEFAULTS, type WalOptions, type WalOpenReport, type WalOpenResult, type WalStats,
} from './wal.js';
