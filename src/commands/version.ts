/** The Redis version raftlock's wire behaviour follows (reported by HELLO and INFO). */
export const REDIS_COMPAT_VERSION = '7.2.4';

/** raftlock's own version. */
export const RAFTLOCK_VERSION = '0.1.0';
