import t from 'tap';
import { startServer } from '../helpers/server.js';
import { sha1Hex } from '../../src/script/sha1.js';
import { KNOWN_SCRIPTS } from '../../src/script/known.js';
import { EVAL_SCRIPTS_MAX } from '../../src/script/cache.js';
import { partitionOfKey } from '../../src/cluster/slots.js';
import { CROSSSLOT_ERROR } from '../../src/commands/partition.js';

const NOSCRIPT = { err: 'NOSCRIPT No matching script. Please use EVAL.' };

t.test('EVAL over raw RESP: KEYS/ARGV, replies, errors', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  const set = 'return redis.call("set", KEYS[1], ARGV[1], "PX", ARGV[2])';
  t.same(await c.call('EVAL', set, 1, 'lock:1', 'alice', 30000), { ok: 'OK' });
  t.equal(await c.call('GET', 'lock:1'), 'alice', 'the script\'s write is visible to plain commands');
  t.match(await c.call('KGETLOCK', 'lock:1'), ['alice', 0, Number], 'a lock taken by a script has a fencing token');
  t.same(await c.call('EVAL', 'return redis.call("get", KEYS[1])', 1, 'nobody'), null, 'nil bulk → false → nil');
  t.same(await c.call('EVAL', 'return {1, "two", false, {ok = "x"}}', 0), [1, 'two', null, { ok: 'x' }]);
  t.same(await c.call('EVAL', 'return {err = "CUSTOM nope"}', 0), { err: 'CUSTOM nope' });
  t.same(await c.call('EVAL', 'return redis.call("set", KEYS[1], ARGV[1] + 0.0)', 1, 'n', '5100'), { ok: 'OK' });
  t.equal(await c.call('GET', 'n'), '5100', '5100.0 is passed as 5100');
  t.same(await c.call('EVAL', 'return 1', 2, 'a'), { err: "ERR Number of keys can't be greater than number of args" });
  t.same(await c.call('EVAL', 'return 1', -1), { err: "ERR Number of keys can't be negative" });
  t.same(await c.call('EVAL', 'return 1', 'one'), { err: 'ERR value is not an integer or out of range' });
  t.same(await c.call('EVAL', 'return 1'), { err: "ERR wrong number of arguments for 'eval' command" });
  t.same(await c.call('EVAL', 'return +', 0), { err: 'ERR Error compiling script (new function): user_script:1: unexpected symbol near \'+\'' });
  const raising = 'return redis.call("set", KEYS[1])';
  t.same(await c.call('EVAL', raising, 1, 'k'), { err: `ERR Wrong number of args calling Redis command from script script: ${sha1Hex(raising)}, on @user_script:1.` });
  t.same(await c.call('EVAL', 'return redis.pcall("set", KEYS[1])', 1, 'k'), { err: 'ERR Wrong number of args calling Redis command from script' });
  t.same(await c.call('eval', 'return ARGV[2]', '0', 'x', 'y'), 'y', 'lower-case name');
  t.same(await c.call('EVAL', 'return ARGV[1]', 0, 'bytes\r\n\x00\xff'), 'bytes\r\n\x00\xff', 'binary-safe');
});

t.test('RESP3 clients get RESP3 nulls and doubles', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  await c.call('HELLO', 3);
  c.command('EVAL', 'return {false, {double = 2.5}}', 0);
  await c.waitBytes(11);
  t.equal(c.takeRaw(), '*2\r\n_\r\n,2.5\r\n');
});

t.test('EVALSHA, SCRIPT LOAD, EXISTS, FLUSH and the NOSCRIPT fallback', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  const body = 'return {KEYS[1], ARGV[1]}';
  const sha = sha1Hex(body);
  t.same(await c.call('EVALSHA', sha, 1, 'k', 'v'), NOSCRIPT);
  t.same(await c.call('SCRIPT', 'EXISTS', sha, 'nope'), [0, 0]);
  t.equal(await c.call('SCRIPT', 'LOAD', body), sha, 'SCRIPT LOAD replies with the SHA1 of the exact bytes');
  t.same(await c.call('EVALSHA', sha, 1, 'k', 'v'), ['k', 'v']);
  t.same(await c.call('EVALSHA', sha.toUpperCase(), 1, 'k', 'v'), ['k', 'v'], 'the SHA1 in any case');
  t.same(await c.call('EVALSHA_RO', sha, 1, 'k', 'v'), ['k', 'v']);
  t.same(await c.call('SCRIPT', 'EXISTS', sha, 'nope'), [1, 0]);
  t.same(await c.call('SCRIPT', 'FLUSH'), { ok: 'OK' });
  t.same(await c.call('EVALSHA', sha, 1, 'k', 'v'), NOSCRIPT);
  t.same(await c.call('EVAL', body, 1, 'k', 'v'), ['k', 'v'], 'the client falls back to EVAL');
  t.same(await c.call('EVALSHA', sha, 1, 'k', 'w'), ['k', 'w'], 'EVAL cached it');
  t.same(await c.call('SCRIPT', 'FLUSH', 'ASYNC'), { ok: 'OK' });
  t.same(await c.call('SCRIPT', 'FLUSH', 'LATER'), { err: 'ERR SCRIPT FLUSH only support SYNC|ASYNC option' });
  t.same(await c.call('SCRIPT', 'LOAD', 'return 1 +'), { err: 'ERR Error compiling script (new function): user_script:1: unexpected symbol near <eof>' });
  t.same(await c.call('SCRIPT', 'KILL'), { err: 'NOTBUSY No scripts in execution right now.' });
  t.same(await c.call('SCRIPT', 'NOPE'), { err: "ERR unknown subcommand 'NOPE'. Try SCRIPT HELP." });
  t.match(await c.call('SCRIPT', 'HELP'), [{ ok: /^SCRIPT <subcommand>/ }]);
  for (let i = 0; i <= EVAL_SCRIPTS_MAX; i++) await c.call('EVAL', `return ${i}`, 0);
  t.same(await c.call('SCRIPT', 'EXISTS', sha1Hex('return 0'), sha1Hex(`return ${EVAL_SCRIPTS_MAX}`)), [0, 1], 'the least recently used EVAL script goes first');
});

t.test('EVAL_RO runs as a read and refuses writes', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  await c.call('SET', 'k', 'v');
  t.equal(await c.call('EVAL_RO', 'return redis.call("get", KEYS[1])', 1, 'k'), 'v');
  const write = 'return redis.call("del", KEYS[1])';
  t.same(await c.call('EVAL_RO', write, 1, 'k'), { err: `ERR Write commands are not allowed from read-only scripts. script: ${sha1Hex(write)}, on @user_script:1.` });
  t.equal(await c.call('GET', 'k'), 'v');
});

t.test('scripts run atomically, in order with other commands', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const [a, b] = [await s.connect(), await s.connect()];
  const incr = 'local v = tonumber(redis.call("get", KEYS[1]) or "0") redis.call("set", KEYS[1], v + 1) return v + 1';
  const rounds = 200;
  for (let i = 0; i < rounds; i++) {
    a.command('EVAL', incr, 1, 'counter');
    b.command('EVAL', incr, 1, 'counter');
  }
  const seen: number[] = [];
  for (let i = 0; i < rounds; i++) seen.push((await a.reply()) as number, (await b.reply()) as number);
  t.same(seen.sort((x, y) => x - y), Array.from({ length: 2 * rounds }, (_, i) => i + 1), 'no lost update: every increment saw the one before');
  t.equal(await a.call('GET', 'counter'), String(2 * rounds));
  a.command('SET', 'seq', 'first');
  a.command('EVAL', 'local v = redis.call("get", KEYS[1]) redis.call("set", KEYS[1], "second") return v', 1, 'seq');
  a.command('GET', 'seq');
  t.same(await a.reply(), { ok: 'OK' });
  t.equal(await a.reply(), 'first', 'the script saw the write sent before it');
  t.equal(await a.reply(), 'second', 'the read sent after it saw its write');
});

t.test('a runaway script is stopped by its budget while other clients stay served', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const [a, b] = [await s.connect(), await s.connect()];
  const loop = 'redis.call("set", KEYS[1], "before") while true do end';
  a.command('EVAL', loop, 1, 'runaway');
  t.same(await b.call('PING'), { ok: 'PONG' });
  t.match(await a.reply(), { err: /^ERR Script exceeded its budget of \d+ Lua instructions and was stopped/ });
  t.equal(await b.call('GET', 'runaway'), 'before', 'its writes before the stop stay');
  t.same(await a.call('EVAL', 'return 1', 0), 1, 'the next script runs');
});

t.test('known lock scripts run natively over the wire', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  const script = (name: string): string => KNOWN_SCRIPTS.find((k) => k.name === name)!.body;
  t.equal(await c.call('EVAL', script('redlock v5 acquire'), 2, 'res:a', 'res:b', 'owner-1', 10000), 2);
  t.equal(await c.call('EVAL', script('redlock v5 acquire'), 1, 'res:a', 'owner-2', 10000), 0);
  t.equal(await c.call('EVAL', script('redlock v5 extend'), 2, 'res:a', 'res:b', 'owner-1', 20000), 2);
  t.ok(((await c.call('PTTL', 'res:a')) as number) > 10000);
  t.equal(await c.call('EVAL', script('redlock v5 release'), 2, 'res:a', 'res:b', 'owner-1'), 2);
  t.equal(await c.call('EXISTS', 'res:a', 'res:b'), 0);
  t.equal(await c.call('SCRIPT', 'LOAD', script('redis-py Lock release')), KNOWN_SCRIPTS.find((k) => k.name === 'redis-py Lock release')!.sha1);
  await c.call('SET', 'py', 'token', 'PX', 5000);
  t.equal(await c.call('EVALSHA', sha1Hex(script('redis-py Lock release')), 1, 'py', 'token'), 1);
});

t.test('a script\'s keys must share a partition; without keys it runs on partition 0', async (t) => {
  const partitions = 8;
  const s = await startServer({ partitions });
  t.teardown(s.close);
  const c = await s.connect();
  const [k1, k2] = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].reduce<string[]>((found, k) => {
    if (found.length === 0 || (found.length === 1 && partitionOfKey(k, partitions) !== partitionOfKey(found[0]!, partitions))) found.push(k);
    return found;
  }, []);
  t.same(await c.call('EVAL', 'return 1', 2, k1!, k2!), { err: CROSSSLOT_ERROR });
  t.equal(await c.call('EVAL', 'return redis.call("set", KEYS[1], "x") and redis.call("set", KEYS[2], "y") and 2', 2, '{tag}1', '{tag}2'), 2, 'hash tags share a slot');
  const other = ['p', 'q', 'r', 's', 't', 'u', 'v'].find((k) => partitionOfKey(k, partitions) !== 0)!;
  const body = 'return redis.call("get", ARGV[1])';
  t.same(await c.call('EVAL', body, 0, other), { err: `ERR Script attempted to access a non local key in a cluster node script: ${sha1Hex(body)}, on @user_script:1.` });
  const local = ['p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z'].find((k) => partitionOfKey(k, partitions) === 0)!;
  await c.call('SET', local, 'here');
  t.equal(await c.call('EVAL', body, 0, local), 'here', 'numkeys 0 runs on partition 0, the partition of slot 0');
});
