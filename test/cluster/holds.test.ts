import t from 'tap';
import { FencedStore, checkHolds, holdWindows, type HoldOp } from './harness/holds.js';

const lock = (owner: string, call: number, ret: number, token: bigint | null, ttlMs = 100): HoldOp =>
  ({ client: owner, owner, resource: 'r', kind: 'lock', ttlMs, call, ret, result: token });
const unlock = (owner: string, call: number, ret: number): HoldOp =>
  ({ client: owner, owner, resource: 'r', kind: 'unlock', ttlMs: 0, call, ret, result: true });
const extend = (owner: string, call: number, ret: number, token: bigint | null, ttlMs = 100): HoldOp =>
  ({ client: owner, owner, resource: 'r', kind: 'extend', ttlMs, call, ret, result: token });

t.test('good histories pass', async (t) => {
  // a holds, releases; b takes it after; c is refused meanwhile.
  const ok = [lock('a', 0, 5, 0n), lock('c', 10, 12, null), unlock('a', 50, 55), lock('b', 56, 60, 1n)];
  t.same(checkHolds(ok, { drift: 0.01 }), { ok: true, violations: [], windows: 2 });
  // b's grant overlaps a's lease only in the uncertain part (a's grant may have come at call time 0).
  t.ok(checkHolds([lock('a', 0, 30, 0n), lock('b', 101, 105, 1n)], { drift: 0 }).ok, 'expiry measured from the call');
  // An extend sets a new expiry, possibly sooner than the old one: the grant's window ends at its call.
  const windows = holdWindows([lock('a', 0, 5, 0n), extend('a', 80, 85, 0n)], 0);
  t.same(windows.map((w) => [w.start, w.end]), [[5, 80], [85, 180]]);
  const shorter = holdWindows([lock('a', 0, 5, 0n), extend('a', 20, 25, 0n, 10)], 0);
  t.same(shorter.map((w) => [w.start, w.end]), [[5, 20], [25, 30]], 'a shorter extend ends the hold sooner');
});

t.test('double grants and backwards tokens are caught', async (t) => {
  const overlap = checkHolds([lock('a', 0, 5, 0n), lock('b', 20, 25, 1n)], { drift: 0.01 });
  t.notOk(overlap.ok);
  t.match(overlap.violations[0], /mutual exclusion on r: a \(token 0\) held it over \[5, 99\] and b \(token 1\)/);
  const afterExtend = checkHolds([lock('a', 0, 5, 0n), extend('a', 80, 85, 0n), lock('b', 120, 125, 1n)], { drift: 0 });
  t.notOk(afterExtend.ok, 'an extended lease counts');
  const backwards = checkHolds([lock('a', 0, 5, 3n), unlock('a', 6, 7), lock('b', 10, 12, 3n)], { drift: 0 });
  t.match(backwards.violations, [/fencing on r: b got token 3 after a's token 3 was returned/]);
  t.ok(checkHolds([lock('a', 0, 5, 3n), lock('b', 2, 6, 2n), unlock('a', 1, 1)], { drift: 0 }).violations.every((v) => !v.startsWith('fencing')),
    'concurrent grants are not ordered');
});

t.test('the fenced store refuses a token lower than the highest it saw', async (t) => {
  const store = new FencedStore();
  t.ok(store.write('r', 1n));
  t.ok(store.write('r', 1n), 'the same holder writes again');
  t.ok(store.write('r', 2n));
  t.notOk(store.write('r', 1n), 'a stale holder is refused');
  t.ok(store.write('q', 0n), 'per resource');
  t.same([store.accepted, store.rejected], [4, 1]);
});
