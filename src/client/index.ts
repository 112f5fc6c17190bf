/**
 * raftlock's client library: `import { RaftLockClient } from 'raftlock'`.
 * See README.md ("Client library") and docs/fencing.md.
 */
export { RaftLockClient, type RaftLockClientOptions, type LockOptions } from './client.js';
export { RaftLock, LockDurability, type Durability, type LockInfo } from './lock.js';
export {
  RaftLockError, InvalidArgumentError, UnavailableError, NoLeaderError, ServerError, LockLostError, ClientClosedError,
  type RaftLockErrorCode, type LockLostReason,
} from './errors.js';
export { parseEndpoint, type Endpoint } from './router.js';
