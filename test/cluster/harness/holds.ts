/**
 * Checkers over a history recorded by clients of real processes, where the
 * only clocks are the clients' own (one monotonic clock in the harness):
 *
 * - Mutual exclusion: a successful KLOCK (or KEXTEND) answered at `ret` was
 *   granted at some instant g in [call, ret] and holds until g + ttl on the
 *   server's clock, so its owner holds the lock for sure over the
 *   definite-hold window [ret, call + ttl * (1 - drift)], cut short by the
 *   call of the owner's next KUNLOCK or KEXTEND (which sets a new expiry,
 *   possibly sooner; a successful KEXTEND opens its own window). Windows of
 *   different owners of a resource must never overlap.
 * - Fencing: when one owner's grant returned before another owner's grant
 *   was called, the later token is larger; the same owner asking again while
 *   holding gets the same token.
 */

export interface HoldOp {
  client: string;
  owner: string;
  resource: string;
  kind: 'lock' | 'extend' | 'unlock';
  ttlMs: number;
  /** Harness clock (ms) when the request was sent and when its reply arrived. */
  call: number;
  ret: number;
  /** The token for a successful lock/extend, null when refused; for unlock, whether it released. */
  result: bigint | null | boolean;
}

export interface Window {
  owner: string;
  token: bigint;
  start: number;
  end: number;
}

export interface HoldReport {
  ok: boolean;
  violations: string[];
  windows: number;
}

/** The definite-hold windows of one resource's history. */
export function holdWindows(ops: readonly HoldOp[], drift: number): Window[] {
  const byOwner = new Map<string, HoldOp[]>();
  for (const op of ops) {
    const list = byOwner.get(op.owner) ?? [];
    list.push(op);
    byOwner.set(op.owner, list);
  }
  const windows: Window[] = [];
  for (const [owner, list] of byOwner) {
    // An unlock ends the hold; an extend sets a new expiry, possibly sooner.
    const cuts = list.filter((op) => op.kind !== 'lock').map((op) => op.call).sort((a, b) => a - b);
    for (const op of list) {
      if (op.kind === 'unlock' || typeof op.result !== 'bigint') continue;
      const start = op.ret;
      let end = op.call + op.ttlMs * (1 - drift);
      // Any unlock or extend the owner sent after this grant was sent may have ended its hold at its call.
      for (const at of cuts) {
        if (at > op.call && at < end) {
          end = at;
          break;
        }
      }
      if (end > start) windows.push({ owner, token: op.result, start, end });
    }
  }
  return windows.sort((a, b) => a.start - b.start);
}

export function checkHolds(ops: readonly HoldOp[], options: { drift: number }): HoldReport {
  const violations: string[] = [];
  const byResource = new Map<string, HoldOp[]>();
  for (const op of ops) {
    const list = byResource.get(op.resource) ?? [];
    list.push(op);
    byResource.set(op.resource, list);
  }
  let windowCount = 0;
  for (const [resource, list] of byResource) {
    const windows = holdWindows(list, options.drift);
    windowCount += windows.length;
    for (let i = 0; i < windows.length; i++) {
      for (let j = i + 1; j < windows.length && windows[j]!.start < windows[i]!.end; j++) {
        const a = windows[i]!;
        const b = windows[j]!;
        if (a.owner !== b.owner) {
          violations.push(`mutual exclusion on ${resource}: ${a.owner} (token ${a.token}) held it over [${a.start}, ${a.end}] ` +
            `and ${b.owner} (token ${b.token}) over [${b.start}, ${b.end}]`);
        }
      }
    }
    const grants = list.filter((op) => op.kind === 'lock' && typeof op.result === 'bigint').sort((a, b) => a.ret - b.ret);
    for (let i = 0; i < grants.length; i++) {
      for (let j = 0; j < grants.length; j++) {
        const a = grants[i]!;
        const b = grants[j]!;
        if (a.ret >= b.call || a === b) continue;
        const ta = a.result as bigint;
        const tb = b.result as bigint;
        if (a.owner !== b.owner && tb <= ta) {
          violations.push(`fencing on ${resource}: ${b.owner} got token ${tb} after ${a.owner}'s token ${ta} was returned`);
        }
      }
    }
  }
  return { ok: violations.length === 0, violations: violations.slice(0, 20), windows: windowCount };
}

/**
 * The storage a lock protects, as a fencing-aware service would run it: a
 * write carrying a token lower than the highest one seen is refused.
 */
export class FencedStore {
  private readonly highest = new Map<string, bigint>();
  accepted = 0;
  rejected = 0;

  write(resource: string, token: bigint): boolean {
    const seen = this.highest.get(resource);
    if (seen !== undefined && token < seen) {
      this.rejected += 1;
      return false;
    }
    this.highest.set(resource, token);
    this.accepted += 1;
    return true;
  }
}
