import t from 'tap';
import { createRequire } from 'node:module';
import { Redis } from 'ioredis';
import { createClient, defineScript } from 'redis';
import { startServer } from '../helpers/server.js';
import { sha1Hex } from '../../src/script/sha1.js';

const require = createRequire(import.meta.url);

for (const protocol of [3, 2] as const) {
  t.test(`ioredis (protocol ${protocol}): eval, evalsha with the NOSCRIPT fallback, defineCommand`, async (t) => {
    const s = await startServer();
    t.teardown(s.close);
    const redis = new Redis({ port: s.port, host: '127.0.0.1', protocol, lazyConnect: true, maxRetriesPerRequest: 0 });
    t.teardown(() => redis.disconnect());
    await redis.connect();
    t.same(await redis.eval('return {KEYS[1], ARGV[1], tonumber(ARGV[2]) * 2}', 1, 'k', 'v', '21'), ['k', 'v', 42]);
    t.equal(await redis.eval('return redis.call("get", KEYS[1])', 1, 'missing'), null);
    const body = 'return redis.call("set", KEYS[1], ARGV[1], "PX", ARGV[2])';
    await t.rejects(redis.evalsha(sha1Hex(body), 1, 'k', 'v', '1000'), /NOSCRIPT No matching script/);
    t.equal(await redis.script('LOAD', body), sha1Hex(body));
    t.equal(await redis.evalsha(sha1Hex(body), 1, 'k', 'v', '1000'), 'OK');
    await t.rejects(redis.eval('return redis.call("nosuch")', 0), /ERR Unknown Redis command called from script script: /);
    await t.rejects(redis.eval('return redis.pcall("nosuch")', 0), { message: 'ERR Unknown Redis command called from script' }, 'pcall\'s error table returned as an error reply');
    redis.defineCommand('takeLock', { numberOfKeys: 1, lua: 'if redis.call("set", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then return 1 else return 0 end' });
    const custom = redis as Redis & { takeLock(key: string, owner: string, ttl: number): Promise<number> };
    await redis.script('FLUSH');
    t.equal(await custom.takeLock('lock:def', 'alice', 30000), 1, 'defineCommand falls back from EVALSHA to EVAL');
    t.equal(await custom.takeLock('lock:def', 'bob', 30000), 0);
    t.equal(await redis.get('lock:def'), 'alice');
  });
}

for (const RESP of [2, 3] as const) {
  t.test(`node-redis (RESP${RESP}): EVAL, SCRIPT LOAD, EVALSHA and scripts defined on the client`, async (t) => {
    const s = await startServer();
    t.teardown(s.close);
    const release = defineScript({
      SCRIPT: 'if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end',
      NUMBER_OF_KEYS: 1,
      parseCommand(parser, key: string, owner: string) {
        parser.pushKey(key);
        parser.push(owner);
      },
      transformReply: undefined as unknown as () => number,
    });
    const client = createClient({ socket: { port: s.port, host: '127.0.0.1', reconnectStrategy: false }, RESP, scripts: { release } });
    client.on('error', () => undefined);
    await client.connect();
    t.teardown(() => client.destroy());
    t.same(await client.eval('return {KEYS[1], ARGV[1]}', { keys: ['a'], arguments: ['b'] }), ['a', 'b']);
    const sha = await client.scriptLoad('return ARGV[1] .. ARGV[2]');
    t.equal(sha, sha1Hex('return ARGV[1] .. ARGV[2]'));
    t.equal(await client.evalSha(sha, { arguments: ['x', 'y'] }), 'xy');
    t.equal(await client.evalRo('return redis.call("exists", KEYS[1])', { keys: ['a'] }), 0);
    t.same(await client.scriptExists([sha, sha1Hex('other')]), [1, 0]);
    await client.set('lock', 'me');
    t.equal(await client.release('lock', 'you'), 0);
    t.equal(await client.release('lock', 'me'), 1, 'EVALSHA, then EVAL after NOSCRIPT');
    t.equal(await client.exists('lock'), 0);
  });
}

t.test('redlock 4.2.0 and 5.0.0-beta.2 acquire, extend and release through their scripts', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const redis = new Redis({ port: s.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  t.teardown(() => redis.disconnect());
  await redis.connect();

  type Lock4 = { value: string; extend(ttl: number): Promise<Lock4>; unlock(): Promise<void> };
  const Redlock4 = require('redlock') as new (clients: unknown[], options: object) => { lock(resource: string, ttl: number): Promise<Lock4> };
  const v4 = new Redlock4([redis], { retryCount: 0 });
  const lock4 = await v4.lock('res:v4', 2000);
  t.equal(await redis.get('res:v4'), lock4.value);
  await t.rejects(v4.lock('res:v4', 2000), /unable to achieve a quorum|Exceeded/i, 'a second holder is refused');
  await lock4.extend(10000);
  t.ok((await redis.pttl('res:v4')) > 5000, 'extended');
  await lock4.unlock();
  t.equal(await redis.exists('res:v4'), 0, 'released');

  const { default: Redlock5 } = require('redlock5') as {
    default: new (clients: unknown[], options: object) => {
      acquire(resources: string[], ttl: number): Promise<{ value: string; extend(ttl: number): Promise<{ release(): Promise<unknown> }> }>;
    };
  };
  const v5 = new Redlock5([redis], { retryCount: 0 });
  const lock5 = await v5.acquire(['res:v5:a', 'res:v5:b'], 2000);
  t.equal(await redis.get('res:v5:b'), lock5.value);
  await t.rejects(v5.acquire(['res:v5:b'], 2000), /quorum/i);
  const extended = await lock5.extend(10000);
  t.ok((await redis.pttl('res:v5:a')) > 5000);
  await extended.release();
  t.equal(await redis.exists('res:v5:a', 'res:v5:b'), 0);
});
