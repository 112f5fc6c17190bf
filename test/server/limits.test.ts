import t from 'tap';
import net from 'node:net';
import { ephemeralTokenBase, startServer } from '../helpers/server.js';
import { RawClient } from '../helpers/raw-client.js';

const protocolCases: [string, string, string][] = [
  ['multibulk count beyond INT_MAX', '*2147483648\r\n', 'invalid multibulk length'],
  ['negative bulk length', '*1\r\n$-5\r\n', 'invalid bulk length'],
  ['bulk header without $', '*1\r\nx\r\n', "expected '$', got 'x'"],
  ['non-numeric multibulk count', '*abc\r\n', 'invalid multibulk length'],
  ['unbalanced quotes', 'SET "a b\r\n', 'unbalanced quotes in request'],
];

for (const [name, input, message] of protocolCases) {
  t.test(`protocol error (${name}) closes only that connection`, async (t) => {
    const s = await startServer();
    t.teardown(s.close);
    const bystander = await s.connect();
    await bystander.call('KLOCK', 'r', 'me', 60000);
    const bad = await s.connect();
    bad.send(input);
    t.same(await bad.reply(), { err: `ERR Protocol error: ${message}` });
    await bad.closed;
    t.match(await bystander.call('KGETLOCK', 'r'), ['me', 0, Number], 'other clients keep their state');
    t.same(await bystander.call('PING'), { ok: 'PONG' });
  });
}

t.test('bulk longer than --proto-max-bulk-len is refused', async (t) => {
  const s = await startServer({ maxBulkBytes: 1024 });
  t.teardown(s.close);
  const c = await s.connect();
  c.send('*2\r\n$3\r\nGET\r\n$1025\r\n');
  t.same(await c.reply(), { err: 'ERR Protocol error: invalid bulk length' });
  await c.closed;
});

t.test('a 10 MB inline line is refused without buffering it all', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  c.send(Buffer.alloc(10 * 1024 * 1024, 'a'));
  t.same(await c.reply(), { err: 'ERR Protocol error: too big inline request' });
  await c.closed;
  const other = await s.connect();
  t.same(await other.call('PING'), { ok: 'PONG' });
});

t.test('random garbage gets an error or a clean close, never a crash', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let round = 0; round < 50; round++) {
    const c = await s.connect();
    const bytes = Buffer.alloc(1 + (rand() % 4096));
    for (let i = 0; i < bytes.length; i++) bytes[i] = rand() & 0xff;
    c.send(bytes);
    c.send('\r\n');
    await Promise.race([c.closed, new Promise((r) => setTimeout(r, 50))]);
    c.close();
  }
  const c = await s.connect();
  t.same(await c.call('PING'), { ok: 'PONG' }, 'server still serves after 50 garbage streams');
});

t.test('a half-sent bulk then silence leaves other clients unaffected; idle timeout closes it', async (t) => {
  const s = await startServer({ timeoutSeconds: 1 });
  t.teardown(s.close);
  const slow = await s.connect();
  slow.send('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc');
  const other = await s.connect();
  t.same(await other.call('SET', 'x', 'y'), { ok: 'OK' });
  t.same(await other.call('GET', 'k'), null, 'the half-sent command did not run');
  const started = Date.now();
  await slow.closed;
  t.ok(Date.now() - started < 3000, 'idle client closed by --timeout');
});

t.test('blocked clients are not closed by the idle timeout', async (t) => {
  const s = await startServer({ timeoutSeconds: 1 });
  t.teardown(s.close);
  const holder = await s.connect();
  await holder.call('KLOCK', 'r', 'h', 60000);
  const waiter = await s.connect();
  waiter.command('KLOCK', 'r', 'w', 1000, 'WAIT', 1800);
  t.equal(await waiter.reply(3000), null, 'the waiter got its timeout reply after more than the idle timeout');
});

t.test('max clients: the extra client gets Redis\'s error', async (t) => {
  const s = await startServer({ maxclients: 3 });
  t.teardown(s.close);
  const clients = await Promise.all([s.connect(), s.connect(), s.connect()]);
  for (const c of clients) t.same(await c.call('PING'), { ok: 'PONG' });
  const extra = await s.connect();
  t.same(await extra.reply(), { err: 'ERR max number of clients reached' });
  await extra.closed;
  clients[0]!.close();
  await clients[0]!.closed;
  await new Promise((r) => setTimeout(r, 20));
  const again = await s.connect();
  t.same(await again.call('PING'), { ok: 'PONG' }, 'a slot frees when a client leaves');
  t.equal(s.server.info.stats.rejectedConnections, 1);
});

t.test('thousands of connections at once', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const count = 2000;
  const clients: RawClient[] = [];
  for (let i = 0; i < count; i += 200) {
    clients.push(...(await Promise.all(Array.from({ length: 200 }, () => s.connect()))));
  }
  const replies = await Promise.all(clients.map((c, i) => c.call('KLOCK', `r${i % 100}`, `o${i}`, 60000, 'EPHEMERAL')));
  t.equal(replies.filter((r) => r === ephemeralTokenBase(s.server)).length, 100, 'exactly one winner per resource');
  t.equal(replies.filter((r) => r === null).length, count - 100);
  t.equal(s.server.connectionCount, count);
  for (const c of clients) c.close();
});

t.test('query buffer limit closes a client that floods a blocked connection', async (t) => {
  const s = await startServer({ queryBufferBytesMax: 64 * 1024 });
  t.teardown(s.close);
  const holder = await s.connect();
  await holder.call('KLOCK', 'r', 'h', 60000);
  const c = await s.connect();
  c.command('KLOCK', 'r', 'w', 1000, 'WAIT', 60000);
  const ping = '*1\r\n$4\r\nPING\r\n';
  c.send(ping.repeat(10_000));
  await c.closed;
  t.equal(s.server.services[0]!.waiters.size, 0, 'its waiter left the queue');
  t.same(await holder.call('PING'), { ok: 'PONG' });
});

t.test('a client that never reads is paused, and memory stays bounded', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const socket = net.connect({ port: s.port, host: '127.0.0.1' });
  await new Promise((r) => socket.once('connect', r));
  socket.pause();
  const payload = Buffer.from('*2\r\n$4\r\nECHO\r\n$1000\r\n' + 'x'.repeat(1000) + '\r\n').toString('latin1');
  const chunk = Buffer.from(payload.repeat(1000), 'latin1');
  const before = process.memoryUsage().rss;
  let written = 0;
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && written < 500 * 1024 * 1024) {
    if (!socket.write(chunk)) await Promise.race([new Promise((r) => socket.once('drain', r)), new Promise((r) => setTimeout(r, 200))]);
    written += chunk.length;
    if (socket.writableLength > 8 * 1024 * 1024) break;
  }
  const growth = process.memoryUsage().rss - before;
  t.ok(socket.writableLength > 0, 'the server stopped reading: our writes back up');
  t.ok(growth < 200 * 1024 * 1024, `server-side buffering stays bounded (rss grew ${Math.round(growth / 1e6)} MB)`);
  const other = await s.connect();
  t.same(await other.call('PING'), { ok: 'PONG' }, 'other clients are served meanwhile');
  socket.destroy();
});
