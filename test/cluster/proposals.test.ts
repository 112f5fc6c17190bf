import t from 'tap';
import { ProposalQueue } from '../../src/cluster/proposals.js';

interface P {
  index: number;
  name: string;
}

function queue(): { q: ProposalQueue<P>; orphans: string[] } {
  const orphans: string[] = [];
  return { q: new ProposalQueue<P>((p) => orphans.push(p.name)), orphans };
}

t.test('proposals come back by the index their entries apply at, in order', async (t) => {
  const { q, orphans } = queue();
  for (let i = 5; i <= 9; i++) q.push({ index: i, name: `p${i}` });
  t.equal(q.size, 5);
  t.equal(q.take(3), undefined, 'an entry before the first proposal is not one of them');
  t.equal(q.take(4), undefined);
  t.equal(q.take(5)?.name, 'p5');
  t.equal(q.take(6)?.name, 'p6');
  t.equal(q.size, 3);
  t.same(orphans, [], 'nothing orphaned in order');
});

t.test('an entry applied past a proposal orphans it (its entry was replaced or skipped)', async (t) => {
  const { q, orphans } = queue();
  q.push({ index: 10, name: 'a' });
  q.push({ index: 12, name: 'b' });
  q.push({ index: 13, name: 'c' });
  t.equal(q.take(11), undefined, 'no proposal at 11');
  t.same(orphans, ['a'], 'the one at 10 was passed over');
  t.equal(q.take(13)?.name, 'c');
  t.same(orphans, ['a', 'b']);
  t.equal(q.size, 0);
});

t.test('a proposal at an index already queued (a rewritten log) orphans the ones at and after it', async (t) => {
  const { q, orphans } = queue();
  q.push({ index: 20, name: 'a' });
  q.push({ index: 21, name: 'b' });
  q.push({ index: 22, name: 'c' });
  q.push({ index: 21, name: 'd' });
  t.same(orphans, ['c', 'b'], 'newest first');
  t.equal(q.take(20)?.name, 'a');
  t.equal(q.take(21)?.name, 'd');
});

t.test('peek finds a proposal without taking it; drain empties the queue oldest first', async (t) => {
  const { q } = queue();
  for (const i of [3, 4, 7, 8, 11]) q.push({ index: i, name: `p${i}` });
  q.take(3);
  t.equal(q.peek(7)?.name, 'p7');
  t.equal(q.peek(11)?.name, 'p11');
  t.equal(q.peek(3), undefined, 'taken');
  t.equal(q.peek(5), undefined, 'never proposed');
  t.equal(q.peek(12), undefined, 'past the last');
  t.equal(q.size, 4, 'peek takes nothing');
  t.same(q.drain().map((p) => p.name), ['p4', 'p7', 'p8', 'p11']);
  t.equal(q.size, 0);
  t.equal(q.take(4), undefined);
});

t.test('a long run through the queue keeps only what is in flight', async (t) => {
  const { q, orphans } = queue();
  let next = 1;
  let applied = 1;
  // 800 in flight, as with 50 clients pipelining 16, for 100k proposals.
  for (; next <= 800; next++) q.push({ index: next, name: String(next) });
  let wrong = 0;
  for (; next <= 100_000; next++) {
    q.push({ index: next, name: String(next) });
    if (q.take(applied)?.name !== String(applied)) wrong += 1;
    applied += 1;
  }
  t.equal(wrong, 0, 'each apply found its own proposal');
  t.equal(q.size, 800);
  t.equal(q.peek(applied)?.name, String(applied));
  t.same(orphans, []);
  t.ok((q as unknown as { items: unknown[] }).items.length <= 800 + 2 * 1024, 'taken slots are given back');
});
