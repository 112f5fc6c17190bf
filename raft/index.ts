/** Public surface of the Raft core. */
export * from './types.js';
export * from './errors.js';
export type { RaftConfig, ReadOnlyOption } from './config.js';
export { validateConfig } from './config.js';
export { BOOTSTRAP_INDEX, BOOTSTRAP_TERM, MemoryStorage, bootstrapState, type LogStorage } from './storage.js';
export { decodeConfChange, encodeConfChange, type ConfChange, type ConfChangeType } from './confchange.js';
export { RawNode, type ProgressStatus, type Status } from './rawnode.js';
export type { ProgressState } from './progress.js';
export { ENTRY_OVERHEAD_BYTES, entryBytes } from './util.js';
