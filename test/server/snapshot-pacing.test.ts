import t from 'tap';
import { eventLoopPacing } from '../../src/server/server.js';
import { settle } from '../helpers/wait.js';

t.test('snapshot pacing gives one partition at a time its turn, in order, and lets other work run between slices', async (t) => {
  const pacing = eventLoopPacing(123);
  t.equal(pacing.sliceRecords, 123);
  const order: string[] = [];
  const turns = ['a', 'b', 'c'].map((name) => pacing.acquire().then((release) => {
    order.push(`${name} starts`);
    return { name, release };
  }));
  const first = await turns[0]!;
  await settle();
  t.same(order, ['a starts'], 'b and c wait while a encodes');
  let other = false;
  setImmediate(() => (other = true));
  await pacing.nextSlice();
  t.ok(other, 'I/O and timers queued before a slice run before it');
  first.release();
  const second = await turns[1]!;
  t.same(order, ['a starts', 'b starts']);
  second.release();
  (await turns[2]!).release();
  t.same(order, ['a starts', 'b starts', 'c starts']);
  // Released turns leave nothing queued: a later one starts at once.
  const release = await pacing.acquire();
  t.type(release, 'function');
  release();
});
