import t from 'tap';
import { startServer } from '../helpers/server.js';
import type { Reply } from '../helpers/resp-reply.js';

type Entry = [number, number, number, string[], string, string];

t.test('with slowlog-log-slower-than 0 every command is logged, newest first, in Redis\'s entry shape', async (t) => {
  const s = await startServer({ slowlogLogSlowerThanUs: 0 });
  t.teardown(s.close);
  const c = await s.connect();
  t.same(await c.call('CLIENT', 'SETNAME', 'worker-1'), { ok: 'OK' });
  await c.call('SET', 'a', '1');
  await c.call('GET', 'a');
  const before = Math.floor(Date.now() / 1000);
  const entries = (await c.call('SLOWLOG', 'GET', 2)) as Entry[];
  t.equal(entries.length, 2);
  const [get, set] = entries as [Entry, Entry];
  t.same(get[3], ['GET', 'a'], 'arguments as the client sent them');
  t.same(set[3], ['SET', 'a', '1']);
  t.equal(get[0], set[0] + 1, 'ids increase');
  t.ok(Math.abs(get[1] - before) <= 5, 'unix time in seconds');
  t.ok(Number.isInteger(get[2]) && get[2] >= 0, 'duration in whole microseconds');
  t.equal(get[4], `127.0.0.1:${c.socket.localPort}`, 'client address and port');
  t.equal(get[5], 'worker-1', 'client name');
  t.equal(set[5], 'worker-1');
});

t.test('SLOWLOG LEN, GET count and RESET', async (t) => {
  const s = await startServer({ slowlogLogSlowerThanUs: 0 });
  t.teardown(s.close);
  const c = await s.connect();
  for (let i = 0; i < 12; i++) await c.call('PING');
  t.equal(await c.call('SLOWLOG', 'LEN'), 12, 'LEN is answered before LEN itself is logged');
  t.equal(((await c.call('SLOWLOG', 'GET')) as Entry[]).length, 10, 'GET defaults to 10 entries');
  t.equal(((await c.call('SLOWLOG', 'GET', 3)) as Entry[]).length, 3);
  t.equal(((await c.call('SLOWLOG', 'GET', -1)) as Entry[]).length, 15, '-1: all of them');
  t.same(await c.call('SLOWLOG', 'GET', 0), []);
  for (const bad of ['-2', 'abc', '1.5', '9223372036854775808']) {
    t.same(await c.call('SLOWLOG', 'GET', bad), { err: 'ERR count should be greater than or equal to -1' }, `GET ${bad}`);
  }
  t.same(await c.call('SLOWLOG', 'RESET'), { ok: 'OK' });
  t.equal(await c.call('SLOWLOG', 'LEN'), 1, 'only RESET itself, logged after it ran');
  t.same(((await c.call('SLOWLOG', 'GET')) as Entry[]).map((e) => e[3]), [['SLOWLOG', 'LEN'], ['SLOWLOG', 'RESET']]);
  t.match(await c.call('SLOWLOG', 'HELP'), [{ ok: /^SLOWLOG <subcommand>/ }, { ok: 'GET' }]);
  t.match(await c.call('SLOWLOG', 'NOPE'), { err: "ERR unknown subcommand 'NOPE'. Try SLOWLOG HELP." });
  t.match(await c.call('SLOWLOG', 'LEN', 'x'), { err: "ERR wrong number of arguments for 'slowlog|len' command" });
});

t.test('the slow log trims argv as Redis does and redacts passwords', async (t) => {
  const s = await startServer({ slowlogLogSlowerThanUs: 0, requirepass: 'hunter2' });
  t.teardown(s.close);
  const c = await s.connect();
  t.same(await c.call('AUTH', 'hunter2'), { ok: 'OK' });
  t.match(await c.call('HELLO', 2, 'AUTH', 'default', 'hunter2'), Array);
  const keys = Array.from({ length: 39 }, (_, i) => `k${i}`);
  t.equal(await c.call('EXISTS', ...keys), 0);
  t.equal(await c.call('ECHO', 'x'.repeat(300)), 'x'.repeat(300));
  const [echo, exists, hello, auth] = ((await c.call('SLOWLOG', 'GET', 4)) as Entry[]).map((e) => e[3]);
  t.same(auth, ['AUTH', '(redacted)']);
  t.same(hello, ['HELLO', '2', 'AUTH', '(redacted)', '(redacted)']);
  t.equal(exists!.length, 32, 'at most 32 arguments');
  t.same(exists!.slice(0, 31), ['EXISTS', ...keys.slice(0, 30)]);
  t.equal(exists![31], '... (9 more arguments)', 'the last one says how many more there were');
  t.same(echo, ['ECHO', `${'x'.repeat(128)}... (172 more bytes)`], 'arguments are cut at 128 bytes');
});

t.test('slowlog settings: defaults, CONFIG GET and CONFIG SET', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  t.same(await c.call('CONFIG', 'GET', 'slowlog-*'), ['slowlog-log-slower-than', '10000', 'slowlog-max-len', '128']);
  t.same(await c.call('CONFIG', 'SET', 'slowlog-log-slower-than', 0, 'slowlog-max-len', 3), { ok: 'OK' });
  t.same(await c.call('CONFIG', 'GET', 'slowlog-*'), ['slowlog-log-slower-than', '0', 'slowlog-max-len', '3']);
  for (let i = 0; i < 5; i++) await c.call('PING');
  t.equal(await c.call('SLOWLOG', 'LEN'), 3, 'no more than slowlog-max-len entries');
  t.same(await c.call('CONFIG', 'SET', 'slowlog-max-len', 1), { ok: 'OK' });
  t.equal(await c.call('SLOWLOG', 'LEN'), 1, 'lowering the length drops the oldest at once');
  t.same(await c.call('CONFIG', 'SET', 'slowlog-log-slower-than', -1), { ok: 'OK' });
  await c.call('SLOWLOG', 'RESET');
  for (let i = 0; i < 5; i++) await c.call('PING');
  t.equal(await c.call('SLOWLOG', 'LEN'), 0, 'a negative threshold logs nothing');
  const errors: [Reply[], string][] = [
    [['slowlog-max-len', 'x'], "ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument couldn't be parsed into an integer"],
    [['slowlog-max-len', '-1'], "ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument must be between 0 and 1000000 inclusive"],
    [['port', '1'], "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"],
    [['nosuch', '1'], "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"],
    [['slowlog-max-len', '5', 'slowlog-max-len', '6'], "ERR CONFIG SET failed (possibly related to argument 'slowlog-max-len') - duplicate parameter"],
    [['slowlog-max-len', '5', 'port'], "ERR wrong number of arguments for 'config|set' command"],
  ];
  for (const [args, error] of errors) t.same(await c.call('CONFIG', 'SET', ...(args as string[])), { err: error }, args.join(' '));
  t.same(await c.call('CONFIG', 'GET', 'slowlog-max-len'), ['slowlog-max-len', '1'], 'a refused CONFIG SET changes nothing');
});

t.test('LATENCY HISTOGRAM replies Redis 7\'s cumulative power-of-two distribution per command', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  t.match(await c.call('HELLO', 3), { proto: 3 });
  for (let i = 0; i < 10; i++) await c.call('SET', `k${i}`, 'v');
  for (let i = 0; i < 5; i++) await c.call('GET', `k${i}`);
  await c.call('CLIENT', 'SETNAME', 'n');
  const all = (await c.call('LATENCY', 'HISTOGRAM')) as Record<string, { calls: number; histogram_usec: Record<string, number> }>;
  t.same(Object.keys(all).sort(), ['client|setname', 'get', 'hello', 'set'], 'every command that ran');
  // Redis's bucket bounds: HdrHistogram's highest value equivalent to 1024 * 2^j ns (2 significant digits), in µs.
  const bounds = new Set(Array.from({ length: 27 }, (_, j) => Math.floor(((1024 * 2 ** j * 129) / 128 - 1) / 1000)));
  t.ok([1, 2, 4, 8, 16, 33, 66, 132].every((b) => bounds.has(b)), 'the bounds Redis documents');
  for (const [name, calls] of [['set', 10], ['get', 5]] as const) {
    const { calls: count, histogram_usec: histogram } = all[name]!;
    t.equal(count, calls, `${name}: calls`);
    const points = Object.entries(histogram).map(([usec, n]) => [Number(usec), n] as const);
    t.ok(points.length > 0 && points.every(([usec]) => bounds.has(usec)), `${name}: buckets at Redis's bounds: ${JSON.stringify(histogram)}`);
    t.ok(points.every(([, n], i) => i === 0 || n > points[i - 1]![1]), `${name}: counts are cumulative and only growing buckets are listed`);
    t.equal(points.at(-1)![1], calls, `${name}: the last bucket holds every call`);
  }
  const some = (await c.call('LATENCY', 'HISTOGRAM', 'GET', 'client', 'nosuch')) as Record<string, unknown>;
  t.same(Object.keys(some).sort(), ['client|setname', 'get'], 'named commands; a container brings its subcommands; unknown names are skipped');
  t.same(await c.call('LATENCY', 'HISTOGRAM', 'ping'), {}, 'a command that never ran has no histogram');
});

t.test('the other LATENCY subcommands answer as Redis does with latency monitoring off', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  t.same(await c.call('LATENCY', 'LATEST'), []);
  t.same(await c.call('LATENCY', 'HISTORY', 'command'), []);
  t.equal(await c.call('LATENCY', 'RESET'), 0);
  t.same(await c.call('LATENCY', 'GRAPH', 'command'), { err: "ERR No samples available for event 'command'" });
  t.match(await c.call('LATENCY', 'DOCTOR'), /LATENCY HISTOGRAM/);
  t.match(await c.call('LATENCY', 'HELP'), [{ ok: /^LATENCY <subcommand>/ }, { ok: 'HISTOGRAM' }]);
  t.same(await c.call('CONFIG', 'GET', 'latency-*'), [
    'latency-monitor-threshold', '0', 'latency-tracking', 'yes', 'latency-tracking-info-percentiles', '50 99 99.9',
  ]);
});
