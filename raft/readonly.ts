/**
 * The leader's queue of ReadIndex requests. A request records the commit
 * index when it arrived and the heartbeat round that will confirm it; once a
 * quorum has acknowledged that round (or a later one), no other leader can
 * have committed anything the request could miss, and it is answered with its
 * index. Requests that arrive before the leader has committed an entry in its
 * own term wait separately: until then its commit index may be stale.
 */
import type { NodeId } from './types.js';
import { bytesKey } from './util.js';

export interface ReadRequest {
  from: NodeId;
  ctx: Uint8Array;
  index: number;
  round: number;
}

export interface WaitingRead {
  from: NodeId;
  ctx: Uint8Array;
}

export class ReadOnlyQueue {
  private queue: ReadRequest[] = [];
  private head = 0;
  private waiting: WaitingRead[] = [];
  /** Keys (sender + ctx) of requests in either list, to refuse duplicates. */
  private readonly keys = new Set<string>();

  size(): number {
    return this.queue.length - this.head + this.waiting.length;
  }

  has(from: NodeId, ctx: Uint8Array): boolean {
    return this.keys.has(readKey(from, ctx));
  }

  addWaiting(read: WaitingRead): void {
    this.keys.add(readKey(read.from, read.ctx));
    this.waiting.push(read);
  }

  /** Hands back the reads that waited for the term's first commit (they are no longer tracked). */
  takeWaiting(): WaitingRead[] {
    const out = this.waiting;
    this.waiting = [];
    for (const r of out) this.keys.delete(readKey(r.from, r.ctx));
    return out;
  }

  add(request: ReadRequest): void {
    this.keys.add(readKey(request.from, request.ctx));
    this.queue.push(request);
  }

  /** Removes and returns, oldest first, the requests confirmed by a quorum ack of `round`. */
  release(round: number): ReadRequest[] {
    const out: ReadRequest[] = [];
    while (this.head < this.queue.length && this.queue[this.head]!.round <= round) {
      const r = this.queue[this.head++]!;
      this.keys.delete(readKey(r.from, r.ctx));
      out.push(r);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /** Leadership ended: pending reads are dropped; callers time out and retry. */
  reset(): void {
    this.queue = [];
    this.head = 0;
    this.waiting = [];
    this.keys.clear();
  }
}

function readKey(from: NodeId, ctx: Uint8Array): string {
  return `${from}\u0000${bytesKey(ctx)}`;
}
