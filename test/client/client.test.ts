// The client library against real servers: one in-process server on a real socket for most
// features, real node processes for the paused holder and for a cluster.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import {
  InvalidArgumentError, LockDurability, LockLostError, NoLeaderError, RaftLockClient, ServerError, UnavailableError,
} from '../../src/client/index.js';
import { ProcessCluster } from '../../bench/lib/cluster.js';
import { freePort } from '../../bench/lib/proc.js';
import { settledCluster, sleep } from '../helpers/locks.js';
import { startServer } from '../helpers/server.js';

t.setTimeout(240_000);

async function single(t: Test, overrides: Parameters<typeof startServer>[0] = {}) {
  const server = await startServer(overrides);
  t.teardown(() => server.close());
  const client = new RaftLockClient(`127.0.0.1:${server.port}`);
  t.teardown(() => client.close());
  return { server, client };
}

t.test('the package exports the client under its own name', async (t) => {
  const pkg = (await import('raftlock')) as Record<string, unknown>;
  t.type(pkg.RaftLockClient, 'function', "import { RaftLockClient } from 'raftlock'");
  t.type(pkg.LockLostError, 'function');
});

t.test('acquire, refuse a second owner, extend, getInfo, release; tokens increase', async (t) => {
  const { client } = await single(t);
  const a = await client.getOrCreateLock('payments/42', { expiryMs: 10_000 });
  t.ok(a.isAcquired, 'acquired');
  t.equal(a.fencingToken, 0, 'first grant of a PERSISTENT resource is token 0');
  t.match(a.owner, /^[0-9a-f-]{36}$/, 'a random UUID owner by default');
  t.equal(a.resource, 'payments/42');
  t.ok(a.validityMs > 9_000 && a.validityMs <= 10_000, `valid for ${a.validityMs} ms on the client's clock`);
  t.notOk(a.signal.aborted, 'signal quiet while held');

  const b = await client.getOrCreateLock('payments/42', { expiryMs: 10_000 });
  t.notOk(b.isAcquired, 'another owner is refused');
  t.equal(b.fencingToken, -1, 'no token when not acquired');
  t.notOk(await b.extend(), 'extend of a lock not held: false');
  t.notOk(await b.release(), 'release of a lock not held: false');

  const info = await b.getInfo();
  t.same({ ...info, remainingMs: 0 }, { resource: 'payments/42', owner: a.owner, fencingToken: 0, remainingMs: 0, durability: 'persistent' }, 'getInfo shows the holder');
  t.ok(info!.remainingMs > 9_000, 'and the lease left');

  t.ok(await a.extend(60_000), 'holder extends');
  t.ok((await a.getInfo())!.remainingMs > 59_000, 'to 60 s');
  t.ok(a.validityMs > 59_000, 'and knows it');
  t.ok(await a.release(), 'release');
  t.notOk(a.isAcquired, 'released');
  t.ok(a.signal.aborted, 'release fires the signal');
  t.equal((a.signal.reason as LockLostError).reason, 'released');
  t.equal(await client.getLockInfo('payments/42'), null, 'free');

  const c = await client.getOrCreateLock('payments/42', { expiryMs: 10_000, owner: 'worker-7' });
  t.equal(c.fencingToken, 1, 'the next holder gets the next token');
  t.equal(c.owner, 'worker-7', 'an owner of our choosing');
  const again = await client.getOrCreateLock('payments/42', { expiryMs: 10_000, owner: 'worker-7' });
  t.ok(again.isAcquired, 'the same owner gets it again');
  t.equal(again.fencingToken, 1, 'with the same token');
  await c.release();
});

t.test('await using releases the lock at the end of the scope', async (t) => {
  const { client } = await single(t);
  let token = -1;
  {
    await using lock = await client.getOrCreateLock('backup', { expiryMs: 60_000 });
    t.ok(lock.isAcquired);
    token = lock.fencingToken;
    t.not(await client.getLockInfo('backup'), null, 'held inside the scope');
  }
  t.equal(await client.getLockInfo('backup'), null, 'released when the scope ends');
  try {
    await using lock = await client.getOrCreateLock('backup', { expiryMs: 60_000 });
    t.equal(lock.fencingToken, token + 1);
    throw new Error('the work failed');
  } catch (error) {
    t.equal((error as Error).message, 'the work failed', "the scope's own error comes through");
  }
  t.equal(await client.getLockInfo('backup'), null, 'released when the scope throws');
});

t.test('EPHEMERAL locks (string or Kahuna code) live apart from PERSISTENT ones', async (t) => {
  const { client } = await single(t);
  const e = await client.getOrCreateLock('jobs', { expiryMs: 5_000, durability: 'ephemeral' });
  t.ok(e.isAcquired);
  t.equal(e.durability, 'ephemeral');
  const p = await client.getOrCreateLock('jobs', { expiryMs: 5_000, durability: LockDurability.Persistent });
  t.ok(p.isAcquired, 'a PERSISTENT lock of the same name is a different lock');
  const e2 = await client.getOrCreateLock('jobs', { expiryMs: 5_000, durability: LockDurability.Ephemeral });
  t.notOk(e2.isAcquired, 'a second EPHEMERAL owner is refused');
  t.equal((await client.getLockInfo('jobs', { durability: 'ephemeral' }))?.owner, e.owner);
  t.ok(await e.extend(9_000));
  t.ok(await e.release());
  t.ok(await p.release());
});

t.test('waitMs queues in the server (FIFO) and gets the lock when the holder releases', async (t) => {
  const { client } = await single(t);
  const holder = await client.getOrCreateLock('queue', { expiryMs: 30_000 });
  const order: string[] = [];
  const started = performance.now();
  const first = client.getOrCreateLock('queue', { expiryMs: 30_000, waitMs: 10_000, owner: 'first' }).then((l) => (order.push('first'), l));
  await sleep(100);
  const second = client.getOrCreateLock('queue', { expiryMs: 30_000, waitMs: 10_000, owner: 'second' }).then((l) => (order.push('second'), l));
  await sleep(300);
  await holder.release();
  const a = await first;
  const waited = performance.now() - started;
  t.ok(a.isAcquired, 'the first waiter got it');
  t.equal(a.fencingToken, holder.fencingToken + 1, 'with the next token');
  t.ok(waited >= 380 && waited < 5_000, `as soon as it was released (${Math.round(waited)} ms)`);
  await a.release();
  const b = await second;
  t.ok(b.isAcquired, 'then the second');
  t.same(order, ['first', 'second'], 'in the order they asked');
  await b.release();

  const held = await client.getOrCreateLock('queue', { expiryMs: 30_000 });
  const t0 = performance.now();
  const late = await client.getOrCreateLock('queue', { expiryMs: 30_000, waitMs: 300 });
  t.notOk(late.isAcquired, 'a wait that runs out: not acquired');
  t.ok(performance.now() - t0 >= 290, 'after the wait');
  await held.release();
});

t.test('autoExtend keeps the lock past its lease; a refused renewal fires the signal', async (t) => {
  const { client, server } = await single(t);
  const lock = await client.getOrCreateLock('leader', { expiryMs: 600, autoExtend: true });
  await sleep(2_000);
  t.ok(lock.isAcquired, 'still held after 3 leases');
  t.notOk(lock.signal.aborted);
  const other = await client.getOrCreateLock('leader', { expiryMs: 600 });
  t.notOk(other.isAcquired, 'nobody else got it');
  t.equal((await lock.getInfo())?.fencingToken, lock.fencingToken, 'one grant throughout');

  const lost = new Promise<LockLostError>((resolve) => lock.signal.addEventListener('abort', () => resolve(lock.signal.reason as LockLostError)));
  // The key space is the PERSISTENT lock table: DEL frees the lock behind the holder's back.
  const admin = await server.connect();
  t.equal(await admin.call('DEL', 'leader'), 1);
  const reason = await lost;
  t.type(reason, LockLostError, 'the signal fires');
  t.equal(reason.code, 'ERR_RAFTLOCK_LOCK_LOST');
  t.equal(reason.reason, 'refused', 'because the renewal was refused');
  t.notOk(lock.isAcquired);
});

t.test('a lease that runs out without renewal fires the signal on the client clock', async (t) => {
  const { client } = await single(t);
  const lock = await client.getOrCreateLock('short', { expiryMs: 300 });
  const t0 = performance.now();
  await new Promise((r) => lock.signal.addEventListener('abort', r));
  const after = performance.now() - t0;
  t.equal((lock.signal.reason as LockLostError).reason, 'expired');
  t.ok(after < 300, `fired before the server's lease ended (${Math.round(after)} ms)`);
  t.equal(lock.validityMs, 0);
});

t.test('typed errors: bad arguments, wrong password, nothing reachable', async (t) => {
  const { client, server } = await single(t, { requirepass: 'sekret' });
  await t.rejects(client.getOrCreateLock('', {}), InvalidArgumentError);
  await t.rejects(client.getOrCreateLock('r', { expiryMs: 0 }), { code: 'ERR_RAFTLOCK_INVALID_ARGUMENT' });
  await t.rejects(client.getOrCreateLock('r', { expiryMs: 2 ** 31 }), InvalidArgumentError);
  t.throws(() => new RaftLockClient('not an endpoint'), InvalidArgumentError);
  const err = await client.getOrCreateLock('r').catch((e: unknown) => e);
  t.type(err, ServerError, 'no password: the server refuses');
  t.match((err as ServerError).reply, /^NOAUTH/, "with the server's text");
  const wrong = new RaftLockClient({ endpoints: [`127.0.0.1:${server.port}`], password: 'guess' });
  t.teardown(() => wrong.close());
  const denied = await wrong.getOrCreateLock('r').catch((e: unknown) => e);
  t.type(denied, ServerError, 'a wrong password: ServerError');
  t.match((denied as ServerError).reply, /^WRONGPASS/);

  const port = await freePort();
  const nowhere = new RaftLockClient({ endpoints: [`127.0.0.1:${port}`], retryForMs: 300 });
  t.teardown(() => nowhere.close());
  const t0 = performance.now();
  await t.rejects(nowhere.getOrCreateLock('r'), UnavailableError, 'nothing listening: UnavailableError');
  t.ok(performance.now() - t0 < 3_000, 'after retrying for retryForMs');

  const closed = new RaftLockClient(`127.0.0.1:${port}`);
  await closed.close();
  await t.rejects(closed.getOrCreateLock('r'), { code: 'ERR_RAFTLOCK_CLOSED' });
});

t.test('with a password, and falling over from an endpoint that does not answer', async (t) => {
  const { server } = await single(t, { requirepass: 'sekret' });
  const dead = await freePort();
  const client = new RaftLockClient({ endpoints: [`127.0.0.1:${dead}`, `127.0.0.1:${server.port}`], password: 'sekret', routeBySlot: false });
  t.teardown(() => client.close());
  const lock = await client.getOrCreateLock('fallover', { expiryMs: 5_000 });
  t.ok(lock.isAcquired, 'the second endpoint answered');
  t.ok(await lock.release());
});

t.test('a holder paused past its lease (SIGSTOP) learns it lost the lock the moment it resumes', async (t) => {
  const { server, client } = await single(t);
  const entry = new URL('../../dist/src/client/index.js', import.meta.url).href;
  const script = `
    import { RaftLockClient } from ${JSON.stringify(entry)};
    const client = new RaftLockClient('127.0.0.1:${server.port}');
    const lock = await client.getOrCreateLock('paused', { expiryMs: 1000, autoExtend: true, owner: 'sleepy' });
    lock.signal.addEventListener('abort', async () => {
      console.log(JSON.stringify({ lost: lock.signal.reason.reason, code: lock.signal.reason.code }));
      await client.close();
    });
    console.log(JSON.stringify({ token: lock.fencingToken }));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = JSON.parse((await lines.next()).value as string) as { token: number };
  t.equal(first.token, 0, 'the child holds the lock');
  await sleep(1_500);
  t.ok((await client.getLockInfo('paused'))?.owner === 'sleepy', 'renewed while running');

  child.kill('SIGSTOP');
  await sleep(1_500);
  const taker = await client.getOrCreateLock('paused', { expiryMs: 10_000, waitMs: 1_000 });
  t.ok(taker.isAcquired, 'its lease ran out on the server while it was stopped: another owner takes it');
  t.equal(taker.fencingToken, 1, 'with a larger token, so the resource can refuse the old holder');
  child.kill('SIGCONT');
  const resumed = performance.now();
  const second = JSON.parse((await lines.next()).value as string) as { lost: string; code: string };
  t.equal(second.code, 'ERR_RAFTLOCK_LOCK_LOST', 'the resumed holder is told at once');
  t.ok(second.lost === 'expired' || second.lost === 'refused', `reason: ${second.lost}`);
  t.ok(performance.now() - resumed < 1_000, 'within moments of resuming');
  await taker.release();
});

t.test('a cluster: routed by slot to each partition leader, and retried through an election', async (t) => {
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 3 });
  t.teardown(() => cluster.close());
  const admins = cluster.nodes.map((n) => new Redis({ port: n.port, host: '127.0.0.1', maxRetriesPerRequest: 0 }).on('error', () => undefined));
  t.teardown(() => admins.forEach((r) => r.disconnect()));
  await settledCluster(cluster, admins[0]!);
  // Which nodes the client holds connections to, from each node's CLIENT LIST.
  const connected = async () => Promise.all(admins.map(async (a) => ((await a.client('LIST')) as string).split('\n').filter((l) => l.includes('name=routed')).length));

  const client = new RaftLockClient({ endpoints: cluster.nodes.map((n) => `127.0.0.1:${n.port}`), redisOptions: { connectionName: 'routed' } });
  t.teardown(() => client.close());
  const locks = [];
  for (let i = 0; i < 12; i++) locks.push(await client.getOrCreateLock(`job-${i}`, { expiryMs: 30_000 }));
  t.ok(locks.every((l) => l.isAcquired), 'every lock acquired');
  t.same(await connected(), [1, 1, 1], 'one connection to each partition leader (each node leads one)');
  const viaNode3 = new RaftLockClient(`127.0.0.1:${cluster.nodes[2]!.port}`);
  t.teardown(() => viaNode3.close());
  t.equal((await viaNode3.getLockInfo('job-5'))?.owner, locks[5]!.owner, 'any node sees the lock');
  for (const l of locks) t.ok(await l.release());

  // Only n1 up: no partition can elect a leader. A wait keeps retrying -TRYAGAIN until n2 is back.
  await cluster.kill('n2');
  await cluster.kill('n3');
  const n1only = new RaftLockClient({ endpoints: [`127.0.0.1:${cluster.nodes[0]!.port}`], retryForMs: 1_000 });
  t.teardown(() => n1only.close());
  const err = await n1only.getOrCreateLock('job-0', { expiryMs: 30_000 }).catch((e: unknown) => e);
  t.type(err, NoLeaderError, 'no leader within retryForMs: NoLeaderError');
  t.match((err as NoLeaderError).reply, /^(TRYAGAIN|CLUSTERDOWN)/);
  const pending = n1only.getOrCreateLock('job-0', { expiryMs: 30_000, waitMs: 30_000 });
  await sleep(1_500);
  await cluster.startNode('n2');
  const lock = await pending;
  t.ok(lock.isAcquired, 'acquired once a quorum is back');
  // The call that gave up may have left its KLOCK in a leader's log, committed once n2 is back;
  // the client then releases it in the background, so that grant only costs a token.
  t.ok(lock.fencingToken >= 1, `a token after the released one (${lock.fencingToken})`);
  t.ok(await lock.release());
});
