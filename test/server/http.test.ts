import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { freePort, which } from '../../bench/lib/proc.js';
import { parseConfig, parsePeers } from '../../src/server/config.js';
import { startServer, type TestServer } from '../helpers/server.js';

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function post(base: string, path: string, body: unknown): Promise<Answer> {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

async function started(t: Test, overrides: Parameters<typeof startServer>[0] = {}): Promise<{ server: TestServer; base: string }> {
  const server = await startServer({ httpPort: await freePort(), ...overrides });
  t.teardown(() => server.close());
  return { server, base: `http://127.0.0.1:${server.server.httpPort!}` };
}

t.test('--http-port defaults to 8083, 0 turns the REST API off, and RAFTLOCK_HTTP_PORT sets it', async (t) => {
  t.equal(parseConfig([]).httpPort, 8083);
  t.equal(parseConfig(['--http-port', '0']).httpPort, 0);
  t.equal(parseConfig(['--http-port', '8090']).httpPort, 8090);
  process.env['RAFTLOCK_HTTP_PORT'] = '9090';
  try {
    t.equal(parseConfig([]).httpPort, 9090);
  } finally {
    delete process.env['RAFTLOCK_HTTP_PORT'];
  }
  const server = await startServer({ httpPort: 0 });
  t.teardown(() => server.close());
  t.equal(server.server.httpPort, undefined, 'no REST listener with --http-port 0');
});

t.test('PERSISTENT locks: try-lock, busy, extend, get-info, unlock, with increasing fencing tokens', async (t) => {
  const { base } = await started(t);
  const lock = { resource: 'r', owner: 'o1', expiresMs: 5000, durability: 1 };
  t.same(await post(base, '/v1/locks/try-lock', lock).then((a) => [a.status, a.body]), [200, { type: 0, fencingToken: 0 }], 'Locked with token 0');
  t.same((await post(base, '/v1/locks/try-lock', lock)).body, { type: 0, fencingToken: 0 }, 'the same owner again: same token');
  t.same((await post(base, '/v1/locks/try-lock', { ...lock, owner: 'o2' })).body, { type: 1 }, 'another owner: Busy');
  t.same((await post(base, '/v1/locks/try-extend', { ...lock, expiresMs: 9000 })).body, { type: 2, fencingToken: 0 }, 'Extended');
  t.same((await post(base, '/v1/locks/try-extend', { ...lock, owner: 'o2' })).body, { type: 102 }, 'extend by another owner: LockDoesNotExist');
  const info = (await post(base, '/v1/locks/get-info', { resource: 'r', durability: 1 })).body;
  t.match(info, { type: 4, owner: 'o1', fencingToken: 0 });
  t.ok((info['remainingMs'] as number) > 5000 && (info['remainingMs'] as number) <= 9000, `remainingMs ${String(info['remainingMs'])} follows the extension`);
  t.same((await post(base, '/v1/locks/try-unlock', { resource: 'r', owner: 'o2', durability: 1 })).body, { type: 102 }, 'unlock by another owner');
  t.same((await post(base, '/v1/locks/try-unlock', { resource: 'r', owner: 'o1', durability: 1 })).body, { type: 3 }, 'Unlocked');
  t.same((await post(base, '/v1/locks/get-info', { resource: 'r', durability: 1 })).body, { type: 102 }, 'free: LockDoesNotExist');
  t.same((await post(base, '/v1/locks/try-unlock', { resource: 'r', owner: 'o1' })).body, { type: 102 }, 'unlock of a free lock');
  t.same((await post(base, '/v1/locks/try-lock', { ...lock, owner: 'o2' })).body, { type: 0, fencingToken: 1 }, 'the next holder gets token 1');
  t.same((await post(base, '/v1/locks/try-extend', { resource: 'nope', owner: 'o', expiresMs: 100 })).body, { type: 102 });
});

t.test('durability defaults to PERSISTENT, and the REST lock is the RESP lock', async (t) => {
  const { server, base } = await started(t);
  t.same((await post(base, '/v1/locks/try-lock', { resource: 'k', owner: 'ü-owner', expiresMs: 5000 })).body, { type: 0, fencingToken: 0 });
  const client = await server.connect();
  t.same(await client.call('KGETLOCK', 'k', 'PERSISTENT').then((r) => (r as unknown[])[0]), Buffer.from('ü-owner').latin1Slice(), 'UTF-8 owner on the wire');
  t.same((await post(base, '/v1/locks/get-info', { resource: 'k' })).body['owner'], 'ü-owner');
  t.equal(await client.call('KLOCK', 'resp', 'x', '5000'), 0);
  t.same((await post(base, '/v1/locks/get-info', { resource: 'resp' })).body['owner'], 'x');
});

t.test('EPHEMERAL locks are separate from PERSISTENT ones and fence with increasing tokens', async (t) => {
  const { base } = await started(t);
  const lock = { resource: 'e', owner: 'o1', expiresMs: 5000, durability: 0 };
  const first = (await post(base, '/v1/locks/try-lock', lock)).body;
  t.equal(first['type'], 0);
  t.same((await post(base, '/v1/locks/get-info', { resource: 'e', durability: 1 })).body, { type: 102 }, 'not a PERSISTENT lock');
  t.match((await post(base, '/v1/locks/get-info', { resource: 'e', durability: 0 })).body, { type: 4, owner: 'o1', fencingToken: first['fencingToken'] });
  t.same((await post(base, '/v1/locks/try-lock', { ...lock, owner: 'o2' })).body, { type: 1 });
  t.same((await post(base, '/v1/locks/try-extend', lock)).body, { type: 2, fencingToken: first['fencingToken'] });
  t.same((await post(base, '/v1/locks/try-unlock', { resource: 'e', owner: 'o1', durability: 0 })).body, { type: 3 });
  const second = (await post(base, '/v1/locks/try-lock', { ...lock, owner: 'o2' })).body;
  t.equal(second['type'], 0);
  t.ok((second['fencingToken'] as number) > (first['fencingToken'] as number), 'the next holder gets a larger token');
});

t.test('invalid input is 400 with type 100; unknown routes 404; wrong methods 405; large bodies 413', async (t) => {
  const { base } = await started(t);
  const cases: [string, unknown, RegExp][] = [
    ['/v1/locks/try-lock', '{"resource": ', /invalid JSON/],
    ['/v1/locks/try-lock', '[1]', /JSON object/],
    ['/v1/locks/try-lock', { owner: 'o', expiresMs: 10 }, /'resource'/],
    ['/v1/locks/try-lock', { resource: '', owner: 'o', expiresMs: 10 }, /'resource'/],
    ['/v1/locks/try-lock', { resource: 'r', owner: 7, expiresMs: 10 }, /'owner'/],
    ['/v1/locks/try-lock', { resource: 'r', owner: 'o', expiresMs: 0 }, /'expiresMs'/],
    ['/v1/locks/try-lock', { resource: 'r', owner: 'o', expiresMs: 1.5 }, /'expiresMs'/],
    ['/v1/locks/try-lock', { resource: 'r', owner: 'o', expiresMs: 2 ** 31 }, /'expiresMs'/],
    ['/v1/locks/try-extend', { resource: 'r', owner: 'o', expiresMs: '10' }, /'expiresMs'/],
    ['/v1/locks/try-lock', { resource: 'r', owner: 'o', expiresMs: 10, durability: 2 }, /'durability'/],
    ['/v1/locks/try-unlock', { resource: 'r' }, /'owner'/],
    ['/v1/locks/get-info', { resource: 'r', durability: 'persistent' }, /'durability'/],
  ];
  for (const [path, body, message] of cases) {
    const answer = await post(base, path, body);
    t.equal(answer.status, 400, `${path} ${JSON.stringify(body)}`);
    t.equal(answer.body['type'], 100);
    t.match(answer.body['message'], message);
  }
  const missing = await post(base, '/v1/locks/steal', {});
  t.same([missing.status, missing.body['type']], [404, 100]);
  const get = await fetch(`${base}/v1/locks/try-lock`);
  t.same([get.status, get.headers.get('allow')], [405, 'POST']);
  await get.body?.cancel();
  const large = await postRaw(base, '/v1/locks/try-lock', JSON.stringify({ resource: 'r', owner: 'x'.repeat(70 * 1024), expiresMs: 10 }));
  t.equal(large.status, 413);
  t.match(JSON.parse(large.body), { type: 100, message: /larger than 65536 bytes/ });
  const chunked = await postRaw(base, '/v1/locks/try-lock', 'x'.repeat(70 * 1024), true);
  t.equal(chunked.status, 413, 'counted while reading when there is no content-length');
});

/** A POST through node:http, which reads the answer even when the server stops reading the body. */
function postRaw(base: string, path: string, body: string, chunked = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/json' };
    if (!chunked) headers['content-length'] = Buffer.byteLength(body);
    const req = request(base + path, { method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    if (chunked) for (let i = 0; i < body.length; i += 8192) req.write(body.slice(i, i + 8192));
    else req.write(body);
    req.end();
  });
}

t.test('GET /health is 200 when every partition has a leader', async (t) => {
  const { base } = await started(t, { partitions: 4 });
  const res = await fetch(`${base}/health`);
  t.equal(res.status, 200);
  t.same(await res.json(), { status: 'ok', partitions: 4, partitionsWithoutLeader: [] });
});

t.test('a cluster node without quorum: /health 503 naming the partitions, lock calls MustRetry (101) with 503', async (t) => {
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  const peers = parsePeers(ports.map((p, i) => `n${i + 1}=127.0.0.1:${p}`).join(','));
  const { base } = await started(t, { peers, nodeId: 'n1', partitions: 2, electionTimeoutMs: 100 });
  const res = await fetch(`${base}/health`);
  t.equal(res.status, 503);
  t.same(await res.json(), { status: 'degraded', partitions: 2, partitionsWithoutLeader: [0, 1] });
  const answer = await post(base, '/v1/locks/try-lock', { resource: 'r', owner: 'o', expiresMs: 1000 });
  t.equal(answer.status, 503);
  t.equal(answer.headers.get('retry-after'), '1');
  t.match(answer.body, { type: 101, message: /^TRYAGAIN/ });
});

t.test('with requirepass, lock calls need Authorization: Bearer <password>', async (t) => {
  const { base } = await started(t, { requirepass: 'sesame' });
  const lock = JSON.stringify({ resource: 'r', owner: 'o', expiresMs: 1000 });
  const denied = await fetch(`${base}/v1/locks/try-lock`, { method: 'POST', body: lock });
  t.equal(denied.status, 401);
  await denied.body?.cancel();
  const allowed = await fetch(`${base}/v1/locks/try-lock`, { method: 'POST', body: lock, headers: { authorization: 'Bearer sesame' } });
  t.same([allowed.status, await allowed.json()], [200, { type: 0, fencingToken: 0 }]);
});

t.test("the seed's curl example runs unchanged", async (t) => {
  const curl = which('curl');
  if (curl === null) throw new Error('curl is not on PATH: install curl to run the REST API curl example test');
  const { server } = await started(t);
  const port = server.server.httpPort!;
  const run = promisify(execFile);
  const lock = await run(curl, ['-s', '-X', 'POST', `http://127.0.0.1:${port}/v1/locks/try-lock`, '-H', 'Content-Type: application/json', '-d', '{"resource":"r","owner":"o","expiresMs":5000,"durability":1}']);
  t.same(JSON.parse(lock.stdout), { type: 0, fencingToken: 0 });
  const info = await run(curl, ['-s', '-X', 'POST', `http://127.0.0.1:${port}/v1/locks/get-info`, '-H', 'Content-Type: application/json', '-d', '{"resource":"r","durability":1}']);
  t.match(JSON.parse(info.stdout), { type: 4, owner: 'o', fencingToken: 0 });
  const unlock = await run(curl, ['-s', '-X', 'POST', `http://127.0.0.1:${port}/v1/locks/try-unlock`, '-H', 'Content-Type: application/json', '-d', '{"resource":"r","owner":"o","durability":1}']);
  t.same(JSON.parse(unlock.stdout), { type: 3 });
});

t.test('in a cluster, every node answers for every partition: REST calls go to the partition leader', async (t) => {
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  const peers = parsePeers(ports.map((p, i) => `n${i + 1}=127.0.0.1:${p}`).join(','));
  const nodes = await Promise.all(['n1', 'n2', 'n3'].map((nodeId) => started(t, { peers, nodeId, partitions: 2, electionTimeoutMs: 150 })));
  const deadline = Date.now() + 10_000;
  for (const { base } of nodes) {
    while ((await fetch(`${base}/health`).then((r) => r.status)) !== 200) {
      if (Date.now() > deadline) throw new Error('the cluster elected no leaders');
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const [a, b, c] = nodes.map((n) => n.base) as [string, string, string];
  for (const resource of ['alpha', 'beta', 'gamma', 'delta']) {
    const lock = { resource, owner: 'o1', expiresMs: 5000 };
    t.same((await post(c, '/v1/locks/try-lock', lock)).body, { type: 0, fencingToken: 0 }, `${resource}: locked via n3`);
    t.same((await post(b, '/v1/locks/try-lock', { ...lock, owner: 'o2' })).body, { type: 1 }, `${resource}: busy via n2`);
    t.match((await post(a, '/v1/locks/get-info', { resource })).body, { type: 4, owner: 'o1', fencingToken: 0 }, `${resource}: seen via n1`);
    t.same((await post(b, '/v1/locks/try-unlock', { resource, owner: 'o1' })).body, { type: 3 }, `${resource}: unlocked via n2`);
    t.same((await post(a, '/v1/locks/try-lock', { ...lock, owner: 'o2' })).body, { type: 0, fencingToken: 1 }, `${resource}: next token via n1`);
  }
});
