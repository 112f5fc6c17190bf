import t from 'tap';
import { LockService } from '../../src/lock/service.js';

function harness(options: { perResourceMax?: number; totalMax?: number } = {}) {
  let now = 1000;
  let wakeAt = Infinity;
  const service = new LockService({
    clock: () => now,
    scheduleWake: (at) => {
      wakeAt = at;
    },
    waiterLimits: { perResourceMax: options.perResourceMax ?? 10, totalMax: options.totalMax ?? 100 },
  });
  return {
    service,
    advance(ms: number) {
      now += ms;
      if (now >= wakeAt) {
        wakeAt = Infinity;
        service.runTimers();
      }
    },
    /** Moves the clock without running due timers. */
    jump(ms: number) {
      now += ms;
    },
    get wakeAt() {
      return wakeAt;
    },
  };
}

type Outcome = bigint | null | Error | 'pending';

function waitFor(h: ReturnType<typeof harness>, owner: string, timeoutMs: number, resource = 'r') {
  const result: { value: Outcome } = { value: 'pending' };
  const outcome = h.service.lockOrWait(
    { durability: 'persistent', resource, owner, ttlMs: 1000, timeoutMs },
    (token) => {
      result.value = token;
    },
  );
  if (outcome.kind === 'done') result.value = outcome.token as bigint | null;
  return { result, outcome };
}

t.test('waiters are granted in FIFO order on unlock', async (t) => {
  const h = harness();
  t.equal(h.service.lock('persistent', 'r', 'holder', 1000), 0n);
  const w1 = waitFor(h, 'w1', 5000);
  const w2 = waitFor(h, 'w2', 5000);
  t.equal(w1.result.value, 'pending');
  t.ok(h.service.machine.unlock('persistent', 'r', 'holder', h.service.now()));
  h.service.afterWrite();
  t.equal(w1.result.value, 1n, 'first waiter gets the lock with the next token');
  t.equal(w2.result.value, 'pending');
  h.service.machine.unlock('persistent', 'r', 'w1', h.service.now());
  h.service.afterWrite();
  t.equal(w2.result.value, 2n);
  t.equal(h.service.waiters.size, 0);
});

t.test('a waiter is woken when the holder lease expires', async (t) => {
  const h = harness();
  h.service.lock('persistent', 'r', 'holder', 300);
  const w = waitFor(h, 'w', 5000);
  t.equal(h.wakeAt, 1301, 'wake armed just after the lease ends');
  h.advance(300);
  t.equal(w.result.value, 'pending', 'not granted while the lease lasts');
  h.advance(1);
  t.equal(w.result.value, 1n);
});

t.test('a waiter times out with nil', async (t) => {
  const h = harness();
  h.service.lock('persistent', 'r', 'holder', 10_000);
  const w = waitFor(h, 'w', 200);
  h.advance(199);
  t.equal(w.result.value, 'pending');
  h.advance(1);
  t.equal(w.result.value, null);
  t.equal(h.service.waiters.size, 0);
});

t.test('a newcomer does not jump the queue after an expiry', async (t) => {
  const h = harness();
  h.service.lock('persistent', 'r', 'holder', 100);
  const w = waitFor(h, 'w', 5000);
  h.jump(150);
  t.equal(w.result.value, 'pending', 'the wake-up timer has not run yet');
  t.equal(h.service.lock('persistent', 'r', 'newcomer', 1000), null, 'the newcomer is refused');
  t.equal(w.result.value, 1n, 'the waiter was served first');
});

t.test('cancelled waiters leave the queue; limits give clear outcomes', async (t) => {
  const h = harness({ perResourceMax: 2, totalMax: 3 });
  h.service.lock('persistent', 'r', 'holder', 1000);
  h.service.lock('persistent', 's', 'holder', 1000);
  const a = waitFor(h, 'a', 5000);
  waitFor(h, 'b', 5000);
  const c = waitFor(h, 'c', 5000);
  t.same(c.outcome, { kind: 'full', reason: 'resource-full' });
  waitFor(h, 'd', 5000, 's');
  const e = waitFor(h, 'e', 5000, 's');
  t.same(e.outcome, { kind: 'full', reason: 'total-full' });
  if (a.outcome.kind === 'queued') h.service.cancel(a.outcome.waiter);
  t.equal(h.service.waiters.size, 2);
  h.service.machine.unlock('persistent', 'r', 'holder', h.service.now());
  h.service.afterWrite();
  t.equal(a.result.value, 'pending', 'a cancelled waiter is never settled');
  t.equal(h.service.machine.info('persistent', 'r', h.service.now())?.owner, 'b');
});

t.test('the holder asking again with WAIT gets its token at once; timeout 0 never queues', async (t) => {
  const h = harness();
  h.service.lock('ephemeral', 'r', 'a', 1000);
  const again = h.service.lockOrWait({ durability: 'ephemeral', resource: 'r', owner: 'a', ttlMs: 10, timeoutMs: 100 }, () => undefined);
  t.same(again, { kind: 'done', token: 0n });
  const other = h.service.lockOrWait({ durability: 'ephemeral', resource: 'r', owner: 'b', ttlMs: 10, timeoutMs: 0 }, () => undefined);
  t.same(other, { kind: 'done', token: null });
});
