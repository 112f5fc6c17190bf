// raftlock-cli's interactive shell in a pseudo-terminal (driven by /usr/bin/python3's pty module):
// the prompt, tab completion, lock and get-lock output, history (up-arrow, the history file, across
// sessions), bad input, and that exit, Ctrl-D, Ctrl-C and SIGTERM release the shell's locks.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Redis } from 'ioredis';
import { REPO_ROOT, runCommand, startRaftlock } from '../../bench/lib/proc.js';

const CLI_MAIN = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const PROMPT = 'raftlock-cli> ';

// Spawns the command in a pty and plays the steps: each writes `send` (or sends `signal`), then
// reads until `expect` (a regex) matches what the terminal showed since, escape sequences removed.
// Finally reads until the process exits and prints everything as JSON.
const PTY_DRIVER = String.raw`
import fcntl, json, os, pty, re, select, signal, struct, sys, termios, time
spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.environ.update(spec['env'])
    for name in spec['unset']:
        os.environ.pop(name, None)
    os.execv(spec['argv'][0], spec['argv'])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 200, 0, 0))
ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]')
def clean(b):
    return ANSI.sub('', b.decode('utf8', 'replace')).replace('\r', '')
shown = b''
def read_until(pattern, timeout):
    global shown
    start, end = len(shown), time.time() + timeout
    while True:
        text = clean(shown[start:])
        if pattern is not None and re.search(pattern, text):
            return text, True
        left = end - time.time()
        if left <= 0:
            return text, False
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b''
            if not chunk:
                return clean(shown[start:]), pattern is None
            shown += chunk
steps = []
for step in spec['steps']:
    if 'signal' in step:
        os.kill(pid, getattr(signal, step['signal']))
    if 'send' in step:
        os.write(fd, step['send'].encode())
    out, matched = read_until(step.get('expect'), 20)
    steps.append({'output': out, 'matched': matched})
    if not matched:
        break
rest, ended = read_until(None, 20)
if not ended:
    os.kill(pid, signal.SIGKILL)
_, status = os.waitpid(pid, 0)
print(json.dumps({'steps': steps, 'rest': rest, 'exit': os.waitstatus_to_exitcode(status), 'transcript': clean(shown)}))
`;

interface Step {
  send?: string;
  signal?: 'SIGTERM' | 'SIGINT';
  expect: string;
}

interface Session {
  steps: { output: string; matched: boolean }[];
  rest: string;
  exit: number;
  transcript: string;
}

/** Fails (never skips) when /usr/bin/python3 or its pty modules are missing. */
function pythonPresent(t: Test): boolean {
  const result = spawnSync('/usr/bin/python3', ['-c', 'import fcntl, pty, termios'], { encoding: 'utf8', timeout: 30_000 });
  if (result.error === undefined && result.status === 0) return true;
  t.fail(`the shell test drives a pseudo-terminal with /usr/bin/python3 and its pty module: ${result.error?.message ?? result.stderr.trim()} (apt-get install python3)`);
  return false;
}

/** Runs raftlock-cli with args in a pty through the steps; every step must match. */
async function session(t: Test, args: string[], steps: Step[], env: Record<string, string>): Promise<Session> {
  const spec = {
    argv: [process.execPath, CLI_MAIN, ...args],
    env: { TERM: 'xterm', ...env },
    unset: ['RAFTLOCK_CLI_CONNECTION_SOURCE', 'RAFTLOCK_PASSWORD', 'NO_COLOR'],
    steps,
  };
  const result = await runCommand('/usr/bin/python3', ['-c', PTY_DRIVER, JSON.stringify(spec)], { timeoutMs: 120_000 });
  if (result.code !== 0) throw new Error(`the pty driver failed: ${result.stderr}`);
  const played = JSON.parse(result.stdout) as Session;
  for (const [i, step] of played.steps.entries()) {
    t.ok(step.matched, `step ${i} (${JSON.stringify(steps[i]!.send ?? steps[i]!.signal)}) shows ${steps[i]!.expect}${step.matched ? '' : `; the terminal showed:\n${played.transcript}`}`);
  }
  t.equal(played.steps.length, steps.length, 'every step ran');
  return played;
}

async function setUp(t: Test): Promise<{ port: number; redis: Redis; historyPath: string }> {
  const server = await startRaftlock();
  t.teardown(() => server.stop());
  const redis = new Redis({ host: '127.0.0.1', port: server.port, protocol: 2 });
  t.teardown(() => redis.disconnect());
  const dir = mkdtempSync(join(tmpdir(), 'raftlock-cli-shell-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { port: server.port, redis, historyPath: join(dir, 'history') };
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const AFTER_PROMPT = `\\n${escape(PROMPT)}$`;

t.test('shell: prompt, completion, lock and get-lock, history, bad input, and exit releasing the locks', async (t) => {
  if (!pythonPresent(t)) return;
  const { port, redis, historyPath } = await setUp(t);
  const played = await session(t, ['-c', `127.0.0.1:${port}`], [
    { expect: `owner [0-9a-f-]{36};[^\\n]*\\n${escape(PROMPT)}$` },
    { send: 'elo\t', expect: '^elock$' },
    { send: ' r1 30000\r', expect: `f\\d+ acquired [0-9a-f-]{36}${AFTER_PROMPT}` },
    { send: 'lock r2 30000\r', expect: `f0 acquired [0-9a-f-]{36}${AFTER_PROMPT}` },
    { send: 'get-lock r2\r', expect: `f0 [0-9a-f-]{36} expires in \\d+ ms${AFTER_PROMPT}` },
    { send: 'frobnicate r2\r', expect: `error: unknown command 'frobnicate' \\(type help for the commands\\)${AFTER_PROMPT}` },
    { send: 'lock r3 soon\r', expect: `error: ttl_ms must be an integer from 1 to 2147483647, got 'soon'${AFTER_PROMPT}` },
    { send: '\x1b[A\x1b[A\x1b[A', expect: `${escape(PROMPT)}get-lock r2$` },
    { send: '\r', expect: `f0 [0-9a-f-]{36} expires in \\d+ ms${AFTER_PROMPT}` },
    { send: 'exit\r', expect: 'released persistent lock r2' },
  ], { RAFTLOCK_CLI_HISTORY: historyPath });
  t.equal(played.exit, 0, 'exit status 0');
  const owner = /owner ([0-9a-f-]{36});/.exec(played.steps[0]!.output)?.[1];
  t.ok(owner !== undefined, 'the banner shows the session owner');
  t.match(played.steps[2]!.output, `acquired ${owner}`, 'the tab-completed elock took r1 for the session owner');
  t.match(played.transcript, 'released ephemeral lock r1');
  t.equal(await redis.call('KGETLOCK', 'r2'), null, 'exit released the PERSISTENT lock');
  t.equal(await redis.call('KGETLOCK', 'r1', 'EPHEMERAL'), null, 'exit released the EPHEMERAL lock');
  const history = readFileSync(historyPath, 'utf8');
  t.equal(history, ['elock r1 30000', 'lock r2 30000', 'frobnicate r2', 'lock r3 soon', 'get-lock r2', 'exit', ''].join('\n'),
    'the history file lists the lines oldest first; a line run again moves to the end');
});

t.test('shell: history carries over to the next session; Ctrl-D releases the locks', async (t) => {
  if (!pythonPresent(t)) return;
  const { port, redis, historyPath } = await setUp(t);
  await session(t, ['-c', `127.0.0.1:${port}`], [{ expect: `${escape(PROMPT)}$` }, { send: 'get-lock nothing\r', expect: `not found${AFTER_PROMPT}` }, { send: 'quit\r', expect: 'quit\\n' }], { RAFTLOCK_CLI_HISTORY: historyPath });
  const played = await session(t, ['-c', `127.0.0.1:${port}`, '--owner', 'dora'], [
    { expect: `owner dora;[^\\n]*\\n${escape(PROMPT)}$` },
    { send: '\x1b[A\x1b[A', expect: `${escape(PROMPT)}get-lock nothing$` },
    { send: '\x15lock r3 30000\r', expect: `f0 acquired dora${AFTER_PROMPT}` },
    { send: '\x04', expect: 'released persistent lock r3' },
  ], { RAFTLOCK_CLI_HISTORY: historyPath });
  t.equal(played.exit, 0);
  t.equal(await redis.call('KGETLOCK', 'r3'), null, 'Ctrl-D released the lock');
});

t.test('shell: Ctrl-C and SIGTERM release the locks, also while a lock waits in the queue', async (t) => {
  if (!pythonPresent(t)) return;
  const { port, redis, historyPath } = await setUp(t);
  const env = { RAFTLOCK_CLI_HISTORY: historyPath };
  const ctrlC = await session(t, ['-c', `127.0.0.1:${port}`, '--format', 'json'], [
    { expect: `${escape(PROMPT)}$` },
    { send: 'elock r4 30000\r', expect: `\\{"resource":"r4","isAcquired":true,"fencingToken":\\d+,"owner":"[0-9a-f-]{36}"\\}${AFTER_PROMPT}` },
    { send: '\x03', expect: '\\{"resource":"r4","isUnlocked":true,"owner":"[0-9a-f-]{36}","durability":"ephemeral"\\}' },
  ], env);
  t.equal(ctrlC.exit, 0);
  t.equal(await redis.call('KGETLOCK', 'r4', 'EPHEMERAL'), null, 'Ctrl-C released the lock');

  t.equal(await redis.call('KLOCK', 'busy', 'someone-else', '30000'), 0, 'another owner holds busy');
  const term = await session(t, ['-c', `127.0.0.1:${port}`, '--owner', 'erin'], [
    { expect: `${escape(PROMPT)}$` },
    { send: 'lock r5 30000\r', expect: `f0 acquired erin${AFTER_PROMPT}` },
    { send: 'lock busy 30000 wait 60000\r', expect: 'lock busy 30000 wait 60000\\n$' },
    { signal: 'SIGTERM', expect: 'released persistent lock r5' },
  ], env);
  t.equal(term.exit, 0);
  t.equal(await redis.call('KGETLOCK', 'r5'), null, 'SIGTERM released the lock');
  t.same(await redis.call('KGETLOCK', 'busy').then((r) => (r as unknown[])[0]), 'someone-else', 'the abandoned wait took nothing');
  t.equal(await redis.call('KUNLOCK', 'busy', 'someone-else'), 1);
  t.equal(await redis.call('KGETLOCK', 'busy'), null, 'and left no waiter behind to take it');
});
