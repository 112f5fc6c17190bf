import t, { type Test } from 'tap';
import net from 'node:net';
import { FaultProxy } from './harness/proxy.js';

/** An echo server: what the proxy forwards comes back, so both directions are exercised. */
async function echoServer(t: Test): Promise<number> {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

async function connect(port: number): Promise<{ socket: net.Socket; received: () => string; closed: () => boolean }> {
  const socket = net.connect(port, '127.0.0.1');
  let data = '';
  let closed = false;
  socket.on('data', (chunk) => (data += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => data, closed: () => closed };
}

const until = async (cond: () => boolean, ms = 2000): Promise<boolean> => {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
};
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('passes bytes both ways, then cuts, black-holes, slows and resets on demand', async (t) => {
  const target = await echoServer(t);
  const proxy = await FaultProxy.start({ host: '127.0.0.1', port: target });
  t.teardown(() => proxy.close());
  const c = await connect(proxy.port);
  c.socket.write('hello');
  t.ok(await until(() => c.received() === 'hello'), 'echoed through the proxy');

  proxy.setCut('backward', true);
  c.socket.write('-one-way');
  await pause(100);
  t.equal(c.received(), 'hello', 'a backward cut swallows the echo');
  t.ok(proxy.swallowed.backward >= 8, 'and counts what it swallowed');
  t.notOk(c.closed(), 'the connection itself stays up');
  proxy.setCut('backward', false);
  proxy.setCut('forward', true);
  c.socket.write('-lost');
  await pause(100);
  t.equal(c.received(), 'hello', 'a forward cut never reaches the target');
  proxy.heal();
  c.socket.write('-back');
  t.ok(await until(() => c.received() === 'hello-back'), 'healed');

  proxy.setMode('blackhole');
  c.socket.write('-void');
  await pause(100);
  t.equal(c.received(), 'hello-back');
  t.notOk(c.closed(), 'a black hole keeps the connection open');
  proxy.heal();

  proxy.setDelay(150);
  const sentAt = Date.now();
  for (const part of ['-a', '-b', '-c']) c.socket.write(part);
  t.ok(await until(() => c.received() === 'hello-back-a-b-c'), 'a slow link keeps order');
  t.ok(Date.now() - sentAt >= 280, `delayed both ways (${Date.now() - sentAt} ms for a round trip at 150 ms per direction)`);
  proxy.heal();

  proxy.setMode('reset');
  t.ok(await until(() => c.closed()), 'reset drops existing connections');
  const refused = net.connect(proxy.port, '127.0.0.1');
  const outcome = await new Promise<string>((resolve) => {
    refused.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    refused.on('close', () => resolve('closed'));
  });
  t.ok(['ECONNRESET', 'closed'].includes(outcome), `new connections are refused (${outcome})`);
  proxy.heal();
  const again = await connect(proxy.port);
  again.socket.write('again');
  t.ok(await until(() => again.received() === 'again'), 'connections work again after heal');
  again.socket.destroy();
  t.equal(await until(() => proxy.connections === 0), true, 'closing a side drops the link');
});
