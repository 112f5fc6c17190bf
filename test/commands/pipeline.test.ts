import t from 'tap';
import { ephemeralTokenBase, startServer } from '../helpers/server.js';

t.test('pipelined writes and reads reply in order and a client reads its own writes', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  const expected: unknown[] = [];
  for (let i = 0; i < 200; i++) {
    c.command('SET', `k${i}`, `v${i}`, 'NX', 'PX', 60000);
    expected.push({ ok: 'OK' });
    c.command('KLOCK', `e${i}`, 'o', 60000, 'EPHEMERAL');
    expected.push(ephemeralTokenBase(s.server));
    c.command('GET', `k${i}`);
    expected.push(`v${i}`);
    c.command('PING');
    expected.push({ ok: 'PONG' });
  }
  c.command('DBSIZE');
  expected.push(200);
  const replies: unknown[] = [];
  for (let i = 0; i < expected.length; i++) replies.push(await c.reply());
  t.same(replies, expected);
});

t.test('pipelined PERSISTENT locks from many clients: one winner per resource, tokens in grant order', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const clients = await Promise.all(Array.from({ length: 8 }, () => s.connect()));
  for (const [i, c] of clients.entries()) {
    for (let r = 0; r < 50; r++) c.command('KLOCK', `res${r}`, `owner${i}`, 60000);
  }
  const winners = new Map<string, number>();
  for (const [i, c] of clients.entries()) {
    for (let r = 0; r < 50; r++) {
      const reply = await c.reply();
      if (reply === 0) {
        t.notOk(winners.has(`res${r}`), `only one owner of res${r}`);
        winners.set(`res${r}`, i);
      } else {
        t.equal(reply, null);
      }
    }
  }
  t.equal(winners.size, 50, 'every resource has exactly one owner');
});
