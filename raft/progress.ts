/**
 * What the leader knows about each follower's log, and the flow control that
 * bounds what it sends: one probe at a time while the match point is unknown,
 * a pipelined window (bounded in messages and bytes) once it is known, and
 * nothing while a snapshot is on its way.
 */
import { assert } from './errors.js';

/**
 * The MsgApp in flight to one follower, oldest first, as a ring buffer: the
 * last index each message carried and its size.
 */
export class Inflights {
  private readonly lastIndexes: number[];
  private readonly sizes: number[];
  private start = 0;
  count = 0;
  bytes = 0;

  constructor(
    private readonly maxCount: number,
    private readonly maxBytes: number,
  ) {
    this.lastIndexes = new Array<number>(maxCount).fill(0);
    this.sizes = new Array<number>(maxCount).fill(0);
  }

  full(): boolean {
    return this.count >= this.maxCount || this.bytes >= this.maxBytes;
  }

  add(lastIndex: number, bytes: number): void {
    assert(this.count < this.maxCount, 'inflights: add to a full window');
    const at = (this.start + this.count) % this.maxCount;
    if (this.count > 0) {
      const prev = this.lastIndexes[(at + this.maxCount - 1) % this.maxCount]!;
      assert(lastIndex > prev, () => `inflights: index ${lastIndex} not after ${prev}`);
    }
    this.lastIndexes[at] = lastIndex;
    this.sizes[at] = bytes;
    this.count++;
    this.bytes += bytes;
  }

  /** The follower acknowledged everything through `index`. */
  freeLE(index: number): void {
    while (this.count > 0 && this.lastIndexes[this.start]! <= index) this.freeFirst();
  }

  /** Frees one slot so a heartbeat response can unblock a full window. */
  freeFirst(): void {
    if (this.count === 0) return;
    this.bytes -= this.sizes[this.start]!;
    this.start = (this.start + 1) % this.maxCount;
    this.count--;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** The leader's clocks: its tick count and its latest heartbeat round. */
export interface Clock {
  tick: number;
  round: number;
}

export class Progress {
  /** Highest index known to match the leader's log. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = 'probe';
  /** Index of the snapshot being sent (snapshot state). */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  /** Probe state: a probe is outstanding; wait for its answer or a heartbeat response. */
  probeSent = false;
  readonly inflights: Inflights;
  /** Highest heartbeat round this peer acknowledged (ReadIndex). */
  ackedRound = 0;
  /** Leader tick at which the newest acknowledged heartbeat was sent (leader lease). */
  ackedTick = Number.NEGATIVE_INFINITY;
  /** Leader clock when the state last changed or (replicating) `match` last advanced: stall and snapshot timeouts. */
  sinceTick: number;
  sinceRound: number;

  constructor(
    next: number,
    public isLearner: boolean,
    maxInflightMsgs: number,
    maxInflightBytes: number,
    now: Clock,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
    this.sinceTick = now.tick;
    this.sinceRound = now.round;
  }

  private resetState(state: ProgressState, now: Clock): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
    this.sinceTick = now.tick;
    this.sinceRound = now.round;
  }

  becomeProbe(now: Clock): void {
    // After a snapshot the follower holds at least the snapshot's index.
    const floor = this.state === 'snapshot' ? this.pendingSnapshot + 1 : 0;
    this.resetState('probe', now);
    this.next = Math.max(this.match + 1, floor);
  }

  becomeReplicate(now: Clock): void {
    this.resetState('replicate', now);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number, now: Clock): void {
    this.resetState('snapshot', now);
    this.pendingSnapshot = snapshotIndex;
  }

  /** A successful MsgAppResp for `index`; false if it tells us nothing new. */
  maybeUpdate(index: number, now: Clock): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      this.probeSent = false;
      this.sinceRound = now.round;
      updated = true;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejection of the MsgApp probing `rejected`, with the follower's hint
   * (already mapped onto our log). False if the rejection is stale.
   */
  maybeDecrTo(rejected: number, hint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Records a MsgApp carrying `count` entries up to `lastIndex`. */
  sentEntries(count: number, bytes: number, lastIndex: number, now: Clock): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        // A new flight after an idle spell: the stall clock starts now, not at the last ack.
        if (this.inflights.count === 0) this.sinceRound = now.round;
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, bytes);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    } else {
      assert(false, 'sending entries to a follower in snapshot state');
    }
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }
}
