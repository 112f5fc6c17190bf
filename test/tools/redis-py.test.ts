// redis-py (Debian python3-redis, run by /usr/bin/python3) against the built server: the Redis
// subset, the lock commands through execute_command, and AUTH with --requirepass.
import t from 'tap';
import { runCommand, startRaftlock, toolProblems, type ServerProcess } from '../../bench/lib/proc.js';

/** The part of a tap test these helpers use. */
interface Test {
  fail(message: string): boolean;
  teardown(fn: () => unknown): void;
}

/** Fails (never skips) when python3-redis is missing: .ci/run installs it. */
function toolsPresent(t: Test): boolean {
  const problems = toolProblems({ pythonModules: ['redis'] });
  if (problems.length > 0) t.fail(`missing: ${problems.join('; ')}. bash .ci/run installs what test:tools needs`);
  return problems.length === 0;
}

async function server(t: Test, password?: string): Promise<ServerProcess> {
  const s = await startRaftlock({ password });
  t.teardown(() => s.stop());
  return s;
}

/** Runs a Python script with PORT and r = redis.Redis(...) defined; returns what it printed as JSON. */
async function python(port: number, body: string, password?: string): Promise<Record<string, unknown>> {
  const script = [
    'import json, sys, redis',
    'PORT = int(sys.argv[1])',
    'PASSWORD = sys.argv[2] if len(sys.argv) > 2 else None',
    'r = redis.Redis(host="127.0.0.1", port=PORT, password=PASSWORD, socket_timeout=10)',
    'def text(v):',
    '    if isinstance(v, bytes): return v.decode()',
    '    if isinstance(v, list): return [text(x) for x in v]',
    '    return v',
    'out = {}',
    body,
    'print(json.dumps(out))',
  ].join('\n');
  const args = ['-c', script, String(port), ...(password === undefined ? [] : [password])];
  const result = await runCommand('/usr/bin/python3', args, { timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`python3 redis script failed (${result.code ?? result.signal}):\n${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

t.test('redis-py: ping, SET NX PX, GET, DEL and the lock commands', async (t) => {
  if (!toolsPresent(t)) return;
  const { port } = await server(t);
  const out = await python(port, `
out['version'] = redis.__version__
out['ping'] = r.ping()
out['set_nx_px'] = r.set('k', 'v', nx=True, px=30000)
out['set_nx_held'] = r.set('k', 'w', nx=True, px=30000)
out['get'] = text(r.get('k'))
out['delete'] = r.delete('k')
out['get_deleted'] = text(r.get('k'))
out['klock'] = r.execute_command('KLOCK', 'res', 'alice', 30000)
out['klock_other'] = r.execute_command('KLOCK', 'res', 'bob', 30000)
out['kgetlock'] = text(r.execute_command('KGETLOCK', 'res'))
out['kunlock'] = r.execute_command('KUNLOCK', 'res', 'alice')
out['klock_next'] = r.execute_command('KLOCK', 'res', 'bob', 30000)
ephemeral = r.execute_command('KLOCK', 'eres', 'alice', 30000, 'EPHEMERAL')
out['klock_ephemeral_is_int'] = isinstance(ephemeral, int)
out['kextend_ephemeral'] = str(r.execute_command('KEXTEND', 'eres', 'alice', 60000, 'EPHEMERAL')) == str(ephemeral)
`);
  t.comment(`redis-py ${String(out.version)}`);
  t.equal(out.ping, true, 'ping');
  t.equal(out.set_nx_px, true, 'SET NX PX acquires');
  t.equal(out.set_nx_held, null, 'SET NX on a held key is None');
  t.equal(out.get, 'v', 'GET returns the owner');
  t.equal(out.delete, 1, 'DEL releases');
  t.equal(out.get_deleted, null);
  t.equal(out.klock, 0, 'KLOCK: first PERSISTENT token is 0');
  t.equal(out.klock_other, null, 'KLOCK by another owner is None');
  const [owner, token, remainingMs] = out.kgetlock as [string, number, number];
  t.same([owner, token], ['alice', 0], 'KGETLOCK shows owner and token');
  t.ok(remainingMs > 0 && remainingMs <= 30_000, `remaining ${remainingMs} ms`);
  t.equal(out.kunlock, 1, 'KUNLOCK releases');
  t.equal(out.klock_next, 1, 'the next holder gets token 1');
  t.equal(out.klock_ephemeral_is_int, true, 'EPHEMERAL grant is an integer token');
  t.equal(out.kextend_ephemeral, true, 'KEXTEND returns the same token');
});

t.test('redis-py authenticates against --requirepass', async (t) => {
  if (!toolsPresent(t)) return;
  const { port } = await server(t, 's3cret');
  const out = await python(port, `
out['ping'] = r.ping()
try:
    redis.Redis(host='127.0.0.1', port=PORT, socket_timeout=10).ping()
    out['without_password'] = 'no error'
except redis.exceptions.AuthenticationError as e:
    out['without_password'] = 'AuthenticationError: ' + str(e)
except redis.exceptions.ResponseError as e:
    out['without_password'] = 'ResponseError: ' + str(e)
`, 's3cret');
  t.equal(out.ping, true, 'ping with the password');
  t.match(String(out.without_password), /Authentication required/, 'without it: NOAUTH');
});

t.test("redis-py's Lock: acquire, blocking acquire, extend, reacquire, release, and the fencing token", async (t) => {
  if (!toolsPresent(t)) return;
  const { port } = await server(t);
  const out = await python(port, `
import threading, time
from redis.exceptions import LockError, LockNotOwnedError
lock = r.lock('job', timeout=5)
out['acquire'] = lock.acquire(blocking=False)
out['owned'] = lock.owned()
out['token_after_acquire'] = text(r.execute_command('KGETLOCK', 'job'))[1]
other = r.lock('job', timeout=5)
out['other_nonblocking'] = other.acquire(blocking=False)
out['other_timeout'] = other.acquire(blocking=True, blocking_timeout=0.3)
out['extend_add'] = lock.extend(10)
out['pttl_after_add'] = r.pttl('job')
out['extend_replace'] = lock.extend(2, replace_ttl=True)
out['pttl_after_replace'] = r.pttl('job')
out['reacquire'] = lock.reacquire()
out['pttl_after_reacquire'] = r.pttl('job')
# A waiter blocks until the holder releases.
waited = {}
def waiter():
    w = r.lock('job', timeout=5, sleep=0.02)
    start = time.monotonic()
    waited['acquired'] = w.acquire(blocking=True, blocking_timeout=5)
    waited['waited_s'] = time.monotonic() - start
    waited['token'] = text(r.execute_command('KGETLOCK', 'job'))[1]
    w.release()
th = threading.Thread(target=waiter)
th.start()
time.sleep(0.3)
lock.release()
th.join()
out['waiter'] = waited
out['owned_after_release'] = lock.owned()
stolen = r.lock('stolen', timeout=5)
stolen.acquire()
r.set('stolen', 'someone-else', px=5000)
try:
    stolen.extend(1)
    out['extend_unowned'] = 'no error'
except LockError as e:
    out['extend_unowned'] = type(e).__name__
try:
    stolen.release()
    out['release_unowned'] = 'no error'
except LockError as e:
    out['release_unowned'] = type(e).__name__
out['stolen_kept'] = text(r.get('stolen'))
with r.lock('ctx', timeout=5) as held:
    out['context_manager_owned'] = held.owned()
out['context_manager_released'] = r.exists('ctx')
`);
  t.equal(out.acquire, true, 'acquire (SET NX PX)');
  t.equal(out.owned, true, 'owned() reads the token back');
  t.equal(out.token_after_acquire, 0, 'KGETLOCK gives the fencing token of the lock just taken');
  t.equal(out.other_nonblocking, false, 'another Lock cannot take it');
  t.equal(out.other_timeout, false, 'a blocking acquire gives up after blocking_timeout');
  t.equal(out.extend_add, true, 'extend adds time (the extend script)');
  t.ok((out.pttl_after_add as number) > 10_000 && (out.pttl_after_add as number) <= 15_000, `pttl after extend(10): ${String(out.pttl_after_add)}`);
  t.equal(out.extend_replace, true, 'extend with replace_ttl');
  t.ok((out.pttl_after_replace as number) > 1_000 && (out.pttl_after_replace as number) <= 2_000, `pttl after replace: ${String(out.pttl_after_replace)}`);
  t.equal(out.reacquire, true, 'reacquire (the reacquire script)');
  t.ok((out.pttl_after_reacquire as number) > 4_000, `pttl after reacquire: ${String(out.pttl_after_reacquire)}`);
  const waiter = out.waiter as { acquired: boolean; waited_s: number; token: number };
  t.equal(waiter.acquired, true, 'the blocked waiter got the lock once it was released');
  t.ok(waiter.waited_s >= 0.2, `it waited for the release (${waiter.waited_s.toFixed(2)} s)`);
  t.equal(waiter.token, 1, 'and a larger fencing token');
  t.equal(out.owned_after_release, false);
  t.equal(out.extend_unowned, 'LockNotOwnedError', 'extending a lock another owner now holds raises, as against Redis');
  t.equal(out.release_unowned, 'LockNotOwnedError', 'so does releasing it');
  t.equal(out.stolen_kept, 'someone-else', "and the other owner's lock is left alone");
  t.equal(out.context_manager_owned, true, 'with r.lock(...) holds the lock inside');
  t.equal(out.context_manager_released, 0, 'and releases it on exit');
});
