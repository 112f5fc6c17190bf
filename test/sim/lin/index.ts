/**
 * Checkers for client histories of raftlock lock commands: a Wing–Gong
 * linearizability checker over the lease-mutex model (checker.ts, model.ts)
 * and direct mutual-exclusion and fencing checks (mutex.ts). The simulator and
 * the real-process fault-injection tests record with HistoryRecorder and run
 * both.
 */

export { checkHistory, DEFAULT_STEPS_MAX_PER_PARTITION, type CheckOptions, type CheckResult } from './checker.js';
export {
  HistoryRecorder, formatOp, formatPartition, validateHistory,
  type Durability, type HistoryOptions, type LockInfoOutput, type LockInput, type LockOp, type LockOutput,
  type PartitionKey,
} from './history.js';
export { DEFAULT_MODEL_OPTIONS, type ModelOptions } from './model.js';
export { checkMutex, MUTEX_VIOLATIONS_MAX, type MutexOptions, type MutexResult, type MutexViolation } from './mutex.js';
