import { Completion, type CommandContext, type Pending } from './spec.js';
import type { Maybe } from '../lock/service.js';

/**
 * Writes a reply for a result that is ready now or once a write commits.
 * Replication failures map to Redis-style errors: no leader (or leadership
 * lost) → TRYAGAIN, which clients retry; an outcome that may or may not have
 * been applied says so rather than answering a false "no". A later reply
 * comes with a Completion: whoever waits for it (the connection, a peer's
 * forwarded command) hears of it in the same turn, with no promise between.
 */
export function respond<T>(ctx: CommandContext, value: Maybe<T>, write: (ctx: CommandContext, value: T) => void): void | Pending {
  if (!(value instanceof Promise)) return write(ctx, value);
  const responded = new Responded(ctx, write);
  value.then((v) => responded.write(v), (error: unknown) => responded.fail(error));
  return responded;
}

/** A reply respond() writes once its result settles. */
class Responded<T> extends Completion {
  constructor(private readonly ctx: CommandContext, private readonly writer: (ctx: CommandContext, value: T) => void) {
    super();
  }

  write(value: T): void {
    try {
      this.writer(this.ctx, value);
    } catch (error) {
      // Exactly one reply, whatever happens: an error that says why.
      this.ctx.reply.error(errorReply(error));
    }
    this.complete();
  }

  fail(error: unknown): void {
    this.ctx.reply.error(errorReply(error));
    this.complete();
  }
}

export function errorReply(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (code === 'RAFTLOCK_ERR_NOT_LEADER') return 'TRYAGAIN no leader for this partition right now; retry';
  if (code === 'RAFTLOCK_ERR_LOCK_DELAY') return `TRYAGAIN ${(error as Error).message}`;
  if (code === 'RAFTLOCK_ERR_PEER_UNAVAILABLE') {
    return (error as { sent?: boolean }).sent === true
      ? 'TRYAGAIN the partition leader became unreachable; the command may have been applied, retry it'
      : 'TRYAGAIN the partition leader is unreachable right now; retry';
  }
  if (code === 'RAFTLOCK_ERR_BUSY') return `TRYAGAIN server busy: ${(error as Error).message}`;
  if (code === 'RAFTLOCK_ERR_OUTCOME_UNKNOWN') return `TRYAGAIN ${(error as Error).message}; the command may have been applied, retry it`;
  return `ERR ${(error as Error).message ?? String(error)}`;
}
