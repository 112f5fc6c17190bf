import t from 'tap';
import { startServer } from '../helpers/server.js';

t.test('PING, ECHO, SELECT, TIME, unknown commands', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  t.same(await c.call('PING'), { ok: 'PONG' });
  t.equal(await c.call('PING', 'hi'), 'hi');
  t.equal(await c.call('ECHO', 'x y'), 'x y');
  t.same(await c.call('SELECT', 0), { ok: 'OK' });
  t.same(await c.call('SELECT', 1), { err: 'ERR DB index is out of range' });
  t.same(await c.call('SELECT', 'x'), { err: 'ERR value is not an integer or out of range' });
  const time = (await c.call('TIME')) as string[];
  t.ok(Math.abs(Number(time[0]) - Date.now() / 1000) < 5, 'TIME is wall-clock seconds');
  t.same(await c.call('FOO', 'a', 'b'), { err: "ERR unknown command 'FOO', with args beginning with: 'a' 'b' " });
  t.same(await c.call('nope'), { err: "ERR unknown command 'nope', with args beginning with: " });
  t.same(await c.call('X', 'a\r\nb'), { err: "ERR unknown command 'X', with args beginning with: 'a  b' " });
  t.same(await c.call('CLIENT', 'FLY'), { err: "ERR unknown subcommand 'FLY'. Try CLIENT HELP." });
  t.same(await c.call('CLIENT'), { err: "ERR wrong number of arguments for 'client' command" });
  t.same(await c.call('CLIENT', 'SETNAME'), { err: "ERR wrong number of arguments for 'client|setname' command" });
});

t.test('inline commands (telnet style)', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  c.send('PING\r\n');
  t.same(await c.reply(), { ok: 'PONG' });
  c.send('set "a b" \'c d\'\nget "a b"\r\n\r\n');
  t.same(await c.reply(), { ok: 'OK' });
  t.equal(await c.reply(), 'c d');
});

t.test('HELLO negotiates RESP3 and reports the server', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  const hello = await c.call('HELLO', 3, 'SETNAME', 'app');
  t.match(hello, { server: 'raftlock', version: /^7\.2\./, proto: 3, id: Number, mode: 'standalone', role: 'master', modules: [] });
  c.command('KGETLOCK', 'none');
  await c.waitBytes(3);
  t.equal(c.takeRaw(), '_\r\n', 'RESP3 null');
  t.equal(await c.call('CLIENT', 'GETNAME'), 'app');
  t.same(await c.call('HELLO', 4), { err: 'NOPROTO unsupported protocol version' });
  t.same(await c.call('HELLO', 'x'), { err: 'ERR Protocol version is not an integer or out of range' });
  t.same(await c.call('HELLO', 3, 'BOGUS'), { err: "ERR Syntax error in HELLO option 'BOGUS'" });
  t.match(await c.call('HELLO', 2), ['server', 'raftlock', 'version', String, 'proto', 2]);
  c.command('KGETLOCK', 'none');
  await c.waitBytes(5);
  t.equal(c.takeRaw(), '*-1\r\n', 'RESP2 null array');
});

t.test('AUTH with --requirepass', async (t) => {
  const s = await startServer({ requirepass: 's3cret' });
  t.teardown(s.close);
  const c = await s.connect();
  t.same(await c.call('GET', 'k'), { err: 'NOAUTH Authentication required.' });
  t.same(await c.call('PING'), { err: 'NOAUTH Authentication required.' });
  t.match(await c.call('HELLO', 3), { err: /^NOAUTH HELLO must be called/ });
  t.same(await c.call('AUTH', 'wrong'), { err: 'WRONGPASS invalid username-password pair or user is disabled.' });
  t.same(await c.call('AUTH', 'other', 's3cret'), { err: 'WRONGPASS invalid username-password pair or user is disabled.' });
  t.same(await c.call('AUTH', 's3cret'), { ok: 'OK' });
  t.same(await c.call('PING'), { ok: 'PONG' });
  t.same(await c.call('RESET'), { ok: 'RESET' });
  t.same(await c.call('PING'), { err: 'NOAUTH Authentication required.' }, 'RESET deauthenticates');
  t.match(await c.call('HELLO', 3, 'AUTH', 'default', 's3cret'), { proto: 3 });
  t.same(await c.call('PING'), { ok: 'PONG' });
  const open = await startServer();
  t.teardown(open.close);
  const o = await open.connect();
  t.match(await o.call('AUTH', 'x'), { err: /^ERR AUTH <password> called without any password configured/ });
});

t.test('before AUTH, requests are capped at 10 arguments of 16 KiB', async (t) => {
  const s = await startServer({ requirepass: 'pw' });
  t.teardown(s.close);
  const big = await s.connect();
  big.command('SET', 'k', 'x'.repeat(16385));
  t.same(await big.reply(), { err: 'ERR Protocol error: unauthenticated bulk length' });
  await big.closed;
  const many = await s.connect();
  many.command('DEL', ...Array.from({ length: 10 }, (_, i) => `k${i}`));
  t.same(await many.reply(), { err: 'ERR Protocol error: unauthenticated multibulk length' });
  await many.closed;
  const ok = await s.connect();
  ok.command('AUTH', 'pw');
  ok.command('SET', 'k', 'x'.repeat(20000));
  t.same(await ok.reply(), { ok: 'OK' });
  t.same(await ok.reply(), { ok: 'OK' }, 'no cap once authenticated, even within one pipeline');
});

t.test('CLIENT subcommands', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  const id = await c.call('CLIENT', 'ID');
  t.type(id, 'number');
  t.same(await c.call('CLIENT', 'GETNAME'), null);
  t.same(await c.call('CLIENT', 'SETNAME', 'has space'), { err: 'ERR Client names cannot contain spaces, newlines or special characters.' });
  t.same(await c.call('CLIENT', 'SETNAME', 'worker-1'), { ok: 'OK' });
  t.same(await c.call('CLIENT', 'SETINFO', 'LIB-NAME', 'mylib'), { ok: 'OK' });
  t.same(await c.call('CLIENT', 'SETINFO', 'LIB-VER', '1.2'), { ok: 'OK' });
  t.same(await c.call('CLIENT', 'SETINFO', 'COLOR', 'x'), { err: "ERR Unrecognized option 'COLOR'" });
  t.match(await c.call('CLIENT', 'INFO'), new RegExp(`^id=${id} addr=127\\.0\\.0\\.1:\\d+ .* name=worker-1 .*lib-name=mylib lib-ver=1\\.2\\n$`));
  const other = await s.connect();
  await other.call('PING');
  const list = (await c.call('CLIENT', 'LIST')) as string;
  t.equal(list.trim().split('\n').length, 2, 'one line per client');
  t.match(await c.call('CLIENT', 'LIST', 'ID', String(id)), /^id=\d+ .*\n$/);
  t.match(await c.call('CLIENT', 'HELP'), [{ ok: /CLIENT <subcommand>/ }]);
});

t.test('INFO and CONFIG GET', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  await c.call('SET', 'a', '1', 'EX', 100);
  const info = (await c.call('INFO')) as string;
  for (const line of ['redis_version:7.2.', 'role:master', 'loading:0', 'connected_clients:1', 'db0:keys=1,expires=1']) {
    t.ok(info.includes(line), `INFO has ${line}`);
  }
  const replication = (await c.call('INFO', 'replication')) as string;
  t.ok(replication.startsWith('# Replication\r\n') && !replication.includes('# Server'), 'one section on request');
  t.same(await c.call('CONFIG', 'GET', 'save'), ['save', '']);
  t.same(await c.call('CONFIG', 'GET', 'appendonly'), ['appendonly', 'no']);
  t.same(await c.call('CONFIG', 'GET', 'max*'), ['maxclients', '10000', 'maxmemory', '0', 'maxmemory-policy', 'noeviction']);
  t.same(await c.call('CONFIG', 'GET', 'nothing'), []);
});

t.test('QUIT replies OK and closes', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  c.send('*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n');
  t.same(await c.reply(), { ok: 'OK' });
  await c.closed;
  t.equal(c.takeRaw(), '', 'nothing runs after QUIT');
});

t.test('CLUSTER KEYSLOT answers Redis Cluster slots', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  t.equal(await c.call('CLUSTER', 'KEYSLOT', 'somekey'), 11058);
  t.equal(await c.call('cluster', 'keyslot', 'foo{hash_tag}'), 2515);
  t.same(await c.call('CLUSTER', 'KEYSLOT'), { err: "ERR wrong number of arguments for 'cluster|keyslot' command" });
  t.same(await c.call('CLUSTER', 'NOPE'), { err: "ERR unknown subcommand 'NOPE'. Try CLUSTER HELP." });
  t.match(JSON.stringify(await c.call('CLUSTER', 'HELP')), /"ok":"KEYSLOT"/, 'CLUSTER HELP lists KEYSLOT');
});

t.test('CLUSTER SHARDS, and READONLY, READWRITE and ASKING for cluster clients', async (t) => {
  const s = await startServer({ partitions: 2 });
  t.teardown(s.close);
  const c = await s.connect();
  const shards = await c.call('CLUSTER', 'SHARDS');
  const id = await c.call('CLUSTER', 'MYID');
  t.same(shards, [['slots', [0, 8191, 8192, 16383], 'nodes', [[
    'id', id, 'port', s.port, 'ip', '127.0.0.1', 'endpoint', '127.0.0.1', 'role', 'master', 'replication-offset', 0, 'health', 'online',
  ]]]]);
  for (const command of ['READONLY', 'READWRITE', 'ASKING']) t.same(await c.call(command), { ok: 'OK' }, command);
  t.match(String(await c.call('INFO', 'cluster')), /cluster_enabled:1/);
});
