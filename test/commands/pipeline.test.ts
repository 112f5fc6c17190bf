import t from 'tap';
import { ephemeralTokenBase, startServer } from '../helpers/server.js';
import type { RawClient } from '../helpers/raw-client.js';

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

/** A RESP multibulk, to send a pipeline in one write. */
function multibulk(...args: (string | number)[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')}`;
}

const writesProcessed = async (c: RawClient): Promise<number> => Number(/total_writes_processed:(\d+)\r\n/.exec(String(await c.call('INFO', 'stats')))?.[1]);

t.test('a pipeline read at once is answered with one write; replies before a blocked KLOCK ... WAIT are not held for it', async (t) => {
  const s = await startServer({ partitions: 4 });
  t.teardown(s.close);
  const observer = await s.connect();
  const c = await s.connect();
  const before = await writesProcessed(observer);
  // PERSISTENT writes of four partitions, interleaved with commands answered at once.
  c.send(Array.from({ length: 16 }, (_, i) => (i % 3 === 2 ? multibulk('PING') : multibulk('KLOCK', `p:${i}`, 'o', 60000))).join(''));
  const replies = [];
  for (let i = 0; i < 16; i++) replies.push(await c.reply());
  t.same(replies, Array.from({ length: 16 }, (_, i) => (i % 3 === 2 ? { ok: 'PONG' } : 0)));
  t.equal(await writesProcessed(observer) - before, 2, 'one write for the pipeline, one for the first INFO');

  const holder = await s.connect();
  t.equal(await holder.call('KLOCK', 'w', 'holder', 60000), 0);
  c.send(multibulk('KLOCK', 'w2', 'o', 60000) + multibulk('PING') + multibulk('KLOCK', 'w', 'o', 60000, 'WAIT', 5000));
  t.equal(await c.reply(), 0, 'the write before the wait is answered while it waits');
  t.same(await c.reply(), { ok: 'PONG' });
  t.equal(await holder.call('KUNLOCK', 'w', 'holder'), 1);
  t.equal(await c.reply(), 1, 'the waiter gets the lock once it is released');
});

t.test('replies of commands that waited for the log keep the protocol the client switched to (reply slots are reused)', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  // RESP2: 40 writes that wait for the log, pipelined, leave finished reply slots behind.
  for (let i = 0; i < 40; i++) c.command('KLOCK', `slot${i}`, 'a', 60000, 'PERSISTENT');
  const granted: unknown[] = [];
  for (let i = 0; i < 40; i++) granted.push(await c.reply());
  t.ok(granted.every((r) => typeof r === 'number' || typeof r === 'bigint'), 'every KLOCK is granted a token');
  t.match(await c.call('HELLO', 3), { proto: 3 });
  // RESP3 now. A KLOCK pipelined behind another owner's KLOCK of the same resource goes through the log
  // too (a write to its key is in flight) and is refused there: null, `_` in RESP3 and `$-1` in RESP2.
  for (let i = 0; i < 40; i++) {
    c.command('KLOCK', `fresh${i}`, 'a', 60000, 'PERSISTENT');
    c.command('KLOCK', `fresh${i}`, 'b', 60000, 'PERSISTENT');
  }
  c.command('PING');
  let raw = '';
  while (!raw.endsWith('+PONG\r\n')) {
    await c.waitBytes(1);
    raw += c.takeRaw();
  }
  t.match(raw, /^(:\d+\r\n_\r\n){40}\+PONG\r\n$/, 'tokens for the first owner, RESP3 nulls for the second');
});
