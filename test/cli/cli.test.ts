// raftlock-cli as a real process against real servers: one-shot operations in console and JSON,
// exit codes, --wait, --ephemeral, --password, endpoint failover, -TRYAGAIN retries, usage errors,
// the shell on piped input, and a 3-node cluster.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import { ProcessCluster } from '../../bench/lib/cluster.js';
import { freePort, REPO_ROOT } from '../../bench/lib/proc.js';
import { startServer } from '../helpers/server.js';

const CLI_MAIN = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built raftlock-cli (stdin closed, or fed `input`), with none of its environment
 * variables inherited from the shell that runs the tests; killed after 30 s.
 */
function runCli(args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<CliResult> {
  if (!existsSync(CLI_MAIN)) return Promise.reject(new Error(`${CLI_MAIN} does not exist: run npm run build first`));
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['RAFTLOCK_CLI_CONNECTION_SOURCE', 'RAFTLOCK_PASSWORD', 'RAFTLOCK_CLI_HISTORY']) delete env[name];
  const { input } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { env: { ...env, ...options.env }, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (input !== undefined) child.stdin!.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** An in-process server on a free port, stopped at teardown; returns its -c argument. */
async function server(t: Test, overrides: Parameters<typeof startServer>[0] = {}): Promise<string> {
  const s = await startServer(overrides);
  t.teardown(() => s.close());
  return `127.0.0.1:${s.port}`;
}

function json(result: CliResult): Record<string, unknown> {
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

t.test('lock, get-lock, extend-lock and unlock print kahuna-cli console lines and exit 0', async (t) => {
  const c = await server(t);
  const lock = await runCli(['-c', c, '--lock', 'backup-lock', '--owner', 'alice', '--expires', '60000']);
  t.same(lock, { code: 0, stdout: 'f0 acquired alice\n', stderr: '' });
  const info = await runCli(['-c', c, '--get-lock', 'backup-lock']);
  t.equal(info.code, 0);
  const match = /^f0 alice expires in (\d+) ms\n$/.exec(info.stdout);
  t.ok(match !== null && Number(match[1]) > 50_000 && Number(match[1]) <= 60_000, `get-lock: ${info.stdout}`);
  t.same(await runCli(['-c', c, '--extend-lock', 'backup-lock', '--owner', 'alice', '--expires', '90000']), { code: 0, stdout: 'f0 extended\n', stderr: '' });
  const extended = await runCli(['-c', c, '--get-lock', 'backup-lock']);
  t.ok(Number(/in (\d+) ms/.exec(extended.stdout)?.[1]) > 60_000, `extended lease: ${extended.stdout}`);
  t.same(await runCli(['-c', c, '--unlock', 'backup-lock', '--owner', 'alice']), { code: 0, stdout: 'unlocked\n', stderr: '' });
  t.same(await runCli(['-c', c, '--get-lock', 'backup-lock']), { code: 1, stdout: 'not found\n', stderr: '' }, 'a free lock is not found: exit 1');
  t.same(await runCli(['-c', c, '--lock', 'backup-lock', '--owner', 'bob']), { code: 0, stdout: 'f1 acquired bob\n', stderr: '' }, 'the next holder gets token 1');
  t.same(await runCli(['-c', c, '--unlock-lock', 'backup-lock', '--owner', 'bob']), { code: 0, stdout: 'unlocked\n', stderr: '' }, '--unlock-lock is --unlock');
});

t.test('refused operations print their outcome and exit 1', async (t) => {
  const c = await server(t);
  await runCli(['-c', c, '--lock', 'r', '--owner', 'alice']);
  t.same(await runCli(['-c', c, '--lock', 'r', '--owner', 'bob']), { code: 1, stdout: 'f-1 not acquired bob\n', stderr: '' }, 'held by another owner');
  t.same(await runCli(['-c', c, '--unlock', 'r', '--owner', 'bob']), { code: 1, stdout: 'not unlocked\n', stderr: '' }, 'not the holder');
  t.same(await runCli(['-c', c, '--extend-lock', 'r', '--owner', 'bob']), { code: 1, stdout: 'f-1 not extended\n', stderr: '' });
  t.same(await runCli(['-c', c, '--lock', 'r', '--owner', 'alice']), { code: 0, stdout: 'f0 acquired alice\n', stderr: '' }, 'the holder asking again keeps its token');
});

t.test('--format json prints one object per operation, refused ones included', async (t) => {
  const c = await server(t);
  const first = await runCli(['-c', c, '--lock', 'backup-lock', '--expires', '60000', '--format', 'json']);
  t.equal(first.code, 0);
  const acquired = json(first);
  t.match(acquired.owner, UUID, 'without --owner the owner is a random UUID');
  t.same(Object.keys(acquired), ['resource', 'isAcquired', 'fencingToken', 'owner'], "kahuna-cli's fields, in its order");
  t.same(acquired, { resource: 'backup-lock', isAcquired: true, fencingToken: 0, owner: acquired.owner });
  const owner = acquired.owner as string;

  const second = await runCli(['-c', c, '--lock', 'backup-lock', '--expires', '60000', '--format', 'json']);
  t.equal(second.code, 1);
  const refused = json(second);
  t.equal(refused.isAcquired, false);
  t.equal(refused.fencingToken, -1);
  t.not(refused.owner, owner, 'another random owner');

  const info = json(await runCli(['-c', c, '--get-lock', 'backup-lock', '--format', 'json']));
  t.same(Object.keys(info), ['resource', 'isLocked', 'owner', 'fencingToken', 'expiresMs']);
  t.same({ ...info, expiresMs: 0 }, { resource: 'backup-lock', isLocked: true, owner, fencingToken: 0, expiresMs: 0 });
  t.ok((info.expiresMs as number) > 0 && (info.expiresMs as number) <= 60_000, `expiresMs ${info.expiresMs}`);
  t.same(json(await runCli(['-c', c, '--extend-lock', 'backup-lock', '--owner', owner, '--format', 'json'])),
    { resource: 'backup-lock', isExtended: true, fencingToken: 0, owner });
  t.same(json(await runCli(['-c', c, '--extend-lock', 'backup-lock', '--owner', 'nobody', '--format', 'json'])),
    { resource: 'backup-lock', isExtended: false, fencingToken: -1, owner: 'nobody' });
  t.same(json(await runCli(['-c', c, '--unlock', 'backup-lock', '--owner', 'nobody', '--format', 'json'])),
    { resource: 'backup-lock', isUnlocked: false, owner: 'nobody' });
  const unlock = await runCli(['-c', c, '--unlock', 'backup-lock', '--owner', owner, '--format', 'json']);
  t.equal(unlock.code, 0);
  t.same(json(unlock), { resource: 'backup-lock', isUnlocked: true, owner });
  const free = await runCli(['-c', c, '--get-lock', 'backup-lock', '--format', 'json']);
  t.equal(free.code, 1);
  t.same(json(free), { resource: 'backup-lock', isLocked: false, owner: null, fencingToken: null, expiresMs: null });
});

t.test('--wait obtains the lock when the holder releases during the wait', async (t) => {
  const c = await server(t);
  await runCli(['-c', c, '--lock', 'w', '--owner', 'holder']);
  const waiting = runCli(['-c', c, '--lock', 'w', '--owner', 'waiter', '--wait', '20000']);
  await new Promise((r) => setTimeout(r, 1000));
  t.same(await runCli(['-c', c, '--unlock', 'w', '--owner', 'holder']), { code: 0, stdout: 'unlocked\n', stderr: '' });
  t.same(await waiting, { code: 0, stdout: 'f1 acquired waiter\n', stderr: '' });
  const started = Date.now();
  t.same(await runCli(['-c', c, '--lock', 'w', '--owner', 'late', '--wait', '700']), { code: 1, stdout: 'f-1 not acquired late\n', stderr: '' }, 'a wait that runs out is refused');
  t.ok(Date.now() - started >= 700, 'after waiting the whole --wait');
});

t.test('--ephemeral acts on the EPHEMERAL lock table', async (t) => {
  const c = await server(t);
  const lock = await runCli(['-c', c, '--lock', 'e', '--owner', 'o', '--ephemeral', '--format', 'json']);
  t.equal(lock.code, 0);
  t.ok((json(lock).fencingToken as number) >= 2 ** 32, 'an EPHEMERAL token carries the term in its high bits');
  t.equal((await runCli(['-c', c, '--get-lock', 'e'])).stdout, 'not found\n', 'the PERSISTENT table has no such lock');
  t.match((await runCli(['-c', c, '--get-lock', 'e', '--ephemeral'])).stdout, /^f\d+ o expires in \d+ ms\n$/);
  t.same(await runCli(['-c', c, '--extend-lock', 'e', '--owner', 'o', '--ephemeral']), { code: 0, stdout: `f${json(lock).fencingToken} extended\n`, stderr: '' });
  t.equal((await runCli(['-c', c, '--unlock', 'e', '--owner', 'o'])).code, 1, 'a PERSISTENT unlock does not release it');
  t.same(await runCli(['-c', c, '--unlock', 'e', '--owner', 'o', '--ephemeral']), { code: 0, stdout: 'unlocked\n', stderr: '' });
});

t.test('--password authenticates against a server started with --requirepass', async (t) => {
  const c = await server(t, { requirepass: 's3cret' });
  const none = await runCli(['-c', c, '--lock', 'r']);
  t.equal(none.code, 3, 'no password: a server error');
  t.match(none.stderr, /NOAUTH/);
  t.equal(none.stdout, '');
  const wrong = await runCli(['-c', c, '--lock', 'r', '--password', 'nope']);
  t.equal(wrong.code, 3);
  t.match(wrong.stderr, /WRONGPASS/);
  t.same(await runCli(['-c', c, '--lock', 'r', '--owner', 'o', '--password', 's3cret']), { code: 0, stdout: 'f0 acquired o\n', stderr: '' });
  const fromEnv = await runCli(['-c', c, '--get-lock', 'r'], { env: { RAFTLOCK_PASSWORD: 's3cret' } });
  t.equal(fromEnv.code, 0, 'RAFTLOCK_PASSWORD works like --password');
  t.match(fromEnv.stdout, /^f0 o expires in \d+ ms\n$/);
});

t.test('an unreachable first endpoint falls over to the next; none reachable exits 3', async (t) => {
  const c = await server(t);
  const dead = `127.0.0.1:${await freePort()}`;
  t.same(await runCli(['-c', `${dead},${c}`, '--lock', 'r', '--owner', 'o']), { code: 0, stdout: 'f0 acquired o\n', stderr: '' });
  t.same(await runCli(['--get-lock', 'r'], { env: { RAFTLOCK_CLI_CONNECTION_SOURCE: `${dead},${c}` } }).then((r) => r.code), 0, 'RAFTLOCK_CLI_CONNECTION_SOURCE is -c');
  const none = await runCli(['-c', `${dead},${dead}`, '--lock', 'r', '--format', 'json']);
  t.equal(none.code, 3);
  t.equal(none.stdout, '', 'nothing on stdout');
  t.match(none.stderr, /^error: cannot connect to .*ECONNREFUSED/);
});

/**
 * A stand-in server speaking just enough RESP: each command is answered by `answer(name, count)`,
 * count being how many times that command was seen. Returns its -c argument.
 */
async function fakeServer(t: Test, answer: (name: string, count: number, socket: net.Socket) => string | null): Promise<string> {
  const counts = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buffered = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => {
      buffered += chunk;
      for (;;) {
        const parsed = parseCommand(buffered);
        if (parsed === null) return;
        buffered = buffered.slice(parsed.length);
        const name = parsed.args[0]!.toUpperCase();
        counts.set(name, (counts.get(name) ?? 0) + 1);
        const reply = answer(name, counts.get(name)!, socket);
        if (reply !== null) socket.write(reply);
      }
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  return `127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
}

function parseCommand(text: string): { args: string[]; length: number } | null {
  const head = /^\*(\d+)\r\n/.exec(text);
  if (head === null) return null;
  let at = head[0].length;
  const args: string[] = [];
  for (let i = 0; i < Number(head[1]); i++) {
    const len = /^\$(\d+)\r\n/.exec(text.slice(at));
    if (len === null) return null;
    at += len[0].length;
    if (text.length < at + Number(len[1]) + 2) return null;
    args.push(text.slice(at, at + Number(len[1])));
    at += Number(len[1]) + 2;
  }
  return { args, length: at };
}

t.test('-TRYAGAIN is retried with backoff; a server that keeps answering it is an error', async (t) => {
  const flaky = await fakeServer(t, (name, count) => (name !== 'KLOCK' ? '+OK\r\n' : count <= 2 ? '-TRYAGAIN no leader for this partition yet\r\n' : ':7\r\n'));
  t.same(await runCli(['-c', flaky, '--lock', 'r', '--owner', 'o']), { code: 0, stdout: 'f7 acquired o\n', stderr: '' });
  const down = await fakeServer(t, (name) => (name === 'KLOCK' ? '-TRYAGAIN no leader\r\n' : '+OK\r\n'));
  const failed = await runCli(['-c', down, '--lock', 'r', '--owner', 'o']);
  t.equal(failed.code, 3);
  t.match(failed.stderr, /^error: TRYAGAIN no leader/);
  const unlockMaybe = await fakeServer(t, (name, count) => (name !== 'KUNLOCK' ? '+OK\r\n' : count === 1 ? '-TRYAGAIN leader changed; the write may have been applied\r\n' : ':0\r\n'));
  t.same(await runCli(['-c', unlockMaybe, '--unlock', 'r', '--owner', 'o']), { code: 0, stdout: 'unlocked\n', stderr: '' },
    'after an attempt that may have released the lock, 0 means it is released');
});

t.test('a connection lost mid-command moves to the next endpoint; a silent server times out', async (t) => {
  const c = await server(t);
  const dropper = await fakeServer(t, (name, _count, socket) => {
    if (name !== 'KLOCK') return '+OK\r\n';
    socket.destroy();
    return null;
  });
  t.same(await runCli(['-c', `${dropper},${c}`, '--lock', 'r', '--owner', 'o']), { code: 0, stdout: 'f0 acquired o\n', stderr: '' });
  const silent = await fakeServer(t, (name) => (name === 'KLOCK' ? null : '+OK\r\n'));
  const result = await runCli(['-c', silent, '--lock', 'r', '-t', '0.5']);
  t.equal(result.code, 3);
  t.match(result.stderr, /no reply from 127\.0\.0\.1:\d+ within 500 ms/);
});

t.test('usage errors exit 2 with a message on stderr and nothing on stdout', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--lock', 'a', '--unlock', 'b'], /only one of/],
    [['--unlock', 'a'], /--unlock needs --owner/],
    [['--extend-lock', 'a'], /--extend-lock needs --owner/],
    [['--get-lock', 'a', '--wait', '10'], /--wait only applies to --lock/],
    [['--lock', 'a', '--expires', '0'], /--expires.*invalid/],
    [['--lock', 'a', '--expires', 'soon'], /--expires.*invalid/],
    [['--lock', 'a', '--wait', '-1'], /--wait.*invalid/],
    [['--lock', 'a', '--format', 'xml'], /Allowed choices are console, json/],
    [['--lock', 'a', '-c', 'host:99999'], /port out of range/],
    [['--lock', 'a', '--owner', ''], /--owner must not be empty/],
    [['--lock'], /argument missing/],
    [['--frobnicate'], /unknown option/],
    [['extra'], /too many arguments/],
  ];
  const results = await Promise.all(cases.map(([args]) => runCli(args)));
  for (const [i, [args, message]] of cases.entries()) {
    const result = results[i]!;
    t.equal(result.code, 2, `${args.join(' ')}: exit 2`);
    t.match(result.stderr, message, `${args.join(' ')}: ${result.stderr.trim()}`);
    t.equal(result.stdout, '', `${args.join(' ')}: nothing on stdout`);
  }
});

t.test('--help documents the flags, outputs and exit codes; --version prints the version', async (t) => {
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  for (const text of ['--connection-source', '--lock <resource>', '--unlock-lock', '--extend-lock', '--get-lock', '--owner', '--expires', '--wait', '--ephemeral', '--format', '--password', 'Exit status', '3  no server reachable', 'isAcquired']) {
    t.ok(help.stdout.includes(text), `help mentions ${text}`);
  }
  const version = await runCli(['--version']);
  t.same(version, { code: 0, stdout: '0.1.0\n', stderr: '' });
});

t.test('the shell reads commands from piped input and releases its locks at the end', async (t) => {
  const c = await server(t);
  await runCli(['-c', c, '--lock', 'taken', '--owner', 'other']);
  const input = ['lock a 30000', 'elock b 30000', 'get-lock a', 'lock taken 30000', 'bogus', 'lock a', 'extend-lock a 40000', 'unlock a', 'lock c 30000 wait 100', ''].join('\n');
  const result = await runCli(['-c', c, '--owner', 'me'], { input, env: { RAFTLOCK_CLI_HISTORY: '' } });
  t.equal(result.code, 0);
  const lines = result.stdout.split('\n');
  t.equal(lines[0], 'f0 acquired me');
  t.match(lines[1], /^f\d+ acquired me$/);
  t.match(lines[2], /^f0 me expires in \d+ ms$/);
  t.equal(lines[3], 'f-1 not acquired me');
  t.same(lines.slice(4), ['f0 extended', 'unlocked', 'f0 acquired me', 'released ephemeral lock b', 'released persistent lock c', '']);
  t.match(result.stderr, /owner me/);
  t.match(result.stderr, /error: unknown command 'bogus'/);
  t.match(result.stderr, /error: usage: lock resource ttl_ms \[wait timeout_ms\]/);
  t.equal((await runCli(['-c', c, '--get-lock', 'c'])).stdout, 'not found\n', 'released at the end of input');
  t.equal((await runCli(['-c', c, '--get-lock', 'b', '--ephemeral'])).stdout, 'not found\n');
  t.match((await runCli(['-c', c, '--get-lock', 'taken'])).stdout, /^f0 other /, "another owner's lock is left alone");
});

t.test('the shell exits 3 when no server is reachable', async (t) => {
  const result = await runCli(['-c', `127.0.0.1:${await freePort()}`], { input: 'lock a 1000\n', env: { RAFTLOCK_CLI_HISTORY: '' } });
  t.equal(result.code, 3);
  t.match(result.stderr, /cannot connect/);
});

t.test('in a 3-node cluster a lock taken through one node is seen through the others', async (t) => {
  const cluster = await ProcessCluster.start({ nodes: 3, partitions: 3 });
  t.teardown(() => cluster.close());
  const [n1, n2, n3] = cluster.nodes.map((n) => `127.0.0.1:${n.port}`);
  const client = new Redis({ host: '127.0.0.1', port: cluster.nodes[0]!.port, protocol: 2, maxRetriesPerRequest: 1 });
  t.teardown(() => client.disconnect());
  for (let i = 0; !/cluster_state:ok/.test(await client.cluster('INFO')); i++) {
    if (i >= 300) throw new Error('no leader for every partition within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  client.disconnect();
  t.same(await runCli(['-c', n1!, '--lock', 'backup-lock', '--owner', 'alice', '--expires', '60000']), { code: 0, stdout: 'f0 acquired alice\n', stderr: '' });
  t.match((await runCli(['-c', n2!, '--get-lock', 'backup-lock'])).stdout, /^f0 alice expires in \d+ ms\n$/, 'node 2 sees it');
  t.same(await runCli(['-c', n3!, '--lock', 'backup-lock', '--owner', 'bob']), { code: 1, stdout: 'f-1 not acquired bob\n', stderr: '' }, 'node 3 refuses another owner');
  t.same(await runCli(['-c', n3!, '--unlock', 'backup-lock', '--owner', 'alice']), { code: 0, stdout: 'unlocked\n', stderr: '' });
  t.equal((await runCli(['-c', `${n2},${n1}`, '--get-lock', 'backup-lock'])).stdout, 'not found\n');
  await cluster.kill('n1');
  t.same(await runCli(['-c', `${n1},${n2},${n3}`, '--lock', 'after-kill', '--owner', 'carol']), { code: 0, stdout: 'f0 acquired carol\n', stderr: '' },
    'with node 1 killed, the list falls over to node 2');
});
