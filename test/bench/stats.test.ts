import t from 'tap';
import { roundOrder } from '../../bench/lib/stats.js';

t.test('round order: every pair of rounds gives each variant the same mean position, and the pairs rotate', async (t) => {
  const variants = ['without', 'off', '1%', '100%'];
  t.same(roundOrder(variants, 1), ['without', 'off', '1%', '100%']);
  t.same(roundOrder(variants, 2), ['100%', '1%', 'off', 'without']);
  t.same(roundOrder(variants, 3), ['off', '1%', '100%', 'without']);
  t.same(roundOrder(variants, 4), ['without', '100%', '1%', 'off']);
  for (let pair = 0; pair < 6; pair++) {
    const first = roundOrder(variants, 2 * pair + 1);
    const second = roundOrder(variants, 2 * pair + 2);
    t.same([...first].sort(), [...variants].sort(), `round ${2 * pair + 1} runs every variant once`);
    for (const v of variants) t.equal(first.indexOf(v) + second.indexOf(v), variants.length - 1, `rounds ${2 * pair + 1}-${2 * pair + 2}: ${v} at the mean position`);
  }
  t.same(roundOrder(['off', '1%'], 1), ['off', '1%']);
  t.same(roundOrder(['off', '1%'], 2), ['1%', 'off']);
  t.same(variants, ['without', 'off', '1%', '100%'], 'the variants are not reordered in place');
});
