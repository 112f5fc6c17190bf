// redis-cli (Debian redis-tools) against the built server, one-shot and interactive under a
// pseudo-terminal, where it fetches COMMAND DOCS for its hints and `help`.
import t from 'tap';
import { runCommand, startRaftlock, toolProblems, type ServerProcess } from '../../bench/lib/proc.js';

/** The part of a tap test these helpers use. */
interface Test {
  fail(message: string): boolean;
  teardown(fn: () => unknown): void;
}

/** Fails (never skips) when a tool is missing: .ci/run installs them. */
function toolsPresent(t: Test, needs: Parameters<typeof toolProblems>[0]): boolean {
  const problems = toolProblems(needs);
  if (problems.length > 0) t.fail(`missing: ${problems.join('; ')}. bash .ci/run installs what test:tools needs`);
  return problems.length === 0;
}

async function server(t: Test): Promise<ServerProcess> {
  const s = await startRaftlock();
  t.teardown(() => s.stop());
  return s;
}

/** `redis-cli -p P args...` without a terminal: plain replies, nil as an empty line. */
async function cli(port: number, ...args: string[]): Promise<string> {
  const result = await runCommand('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(`${result.command} exited with ${result.code ?? result.signal}: ${result.stderr}`);
  return result.stdout;
}

t.test('one-shot redis-cli commands get plain replies', async (t) => {
  if (!toolsPresent(t, { commands: ['redis-cli'] })) return;
  const { port } = await server(t);
  t.equal(await cli(port, 'PING'), 'PONG\n');
  t.equal(await cli(port, 'SET', 'k', 'v', 'NX', 'PX', '30000'), 'OK\n');
  t.equal(await cli(port, 'SET', 'k', 'w', 'NX', 'PX', '30000'), '\n', 'SET NX on a held key is nil (an empty line)');
  t.equal(await cli(port, 'GET', 'k'), 'v\n');
  t.equal(await cli(port, 'DEL', 'k'), '1\n');
  t.equal(await cli(port, 'GET', 'k'), '\n');
  t.equal(await cli(port, 'KLOCK', 'r', 'o', '30000'), '0\n', 'first PERSISTENT grant has token 0');
  t.equal(await cli(port, 'KLOCK', 'r', 'o2', '30000'), '\n', 'another owner gets nil');
  const [owner, token, remaining, ...rest] = (await cli(port, 'KGETLOCK', 'r')).split('\n');
  t.equal(owner, 'o');
  t.equal(token, '0');
  t.ok(Number(remaining) > 0 && Number(remaining) <= 30_000, `remaining ms ${remaining} in (0, 30000]`);
  t.same(rest, [''], 'a three-element array');
  t.equal(await cli(port, 'KUNLOCK', 'r', 'o'), '1\n');
  t.equal(await cli(port, 'KGETLOCK', 'r'), '\n', 'a free lock is nil');
  t.match(await cli(port, 'KLOCK', 'e', 'o', '30000', 'EPHEMERAL'), /^\d+\n$/, 'EPHEMERAL grant is an integer token');
  t.equal(await cli(port, 'foo', 'a'), "ERR unknown command 'foo', with args beginning with: 'a' \n\n", "Redis's exact text");
});

t.test('a redis-cli script session: SCRIPT LOAD, EXISTS, FLUSH, EVALSHA, EVAL, NOSCRIPT', async (t) => {
  if (!toolsPresent(t, { commands: ['redis-cli'] })) return;
  const { port } = await server(t);
  const release = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
  const sha = (await cli(port, 'SCRIPT', 'LOAD', release)).trim();
  t.match(sha, /^[0-9a-f]{40}$/, 'SCRIPT LOAD answers the SHA1');
  t.equal(await cli(port, 'SCRIPT', 'EXISTS', sha, '0'.repeat(40)), '1\n0\n');
  t.equal(await cli(port, 'SET', 'job', 'me', 'NX', 'PX', '30000'), 'OK\n');
  t.equal(await cli(port, 'EVALSHA', sha, '1', 'job', 'someone-else'), '0\n', 'not the owner: nothing released');
  t.equal(await cli(port, 'KGETLOCK', 'job').then((r) => r.split('\n')[1]), '0', 'the lock a script-free SET took has token 0');
  t.equal(await cli(port, 'EVALSHA', sha, '1', 'job', 'me'), '1\n', 'the owner releases');
  t.equal(await cli(port, 'EVAL', "return redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', 5100.0)", '1', 'job', 'you'), 'OK\n', 'a script acquires (5100.0 is sent as 5100)');
  t.equal(await cli(port, 'GET', 'job'), 'you\n');
  t.equal(await cli(port, 'EVAL', 'return {1, 2, nil, 4}', '0'), '1\n2\n', 'a table is cut at the first nil');
  t.equal(await cli(port, 'EVAL', "return redis.call('get', 'missing')", '0'), '\n', 'nil bulk is false, which replies nil');
  t.equal(await cli(port, 'EVALSHA', 'f'.repeat(40), '0'), 'NOSCRIPT No matching script. Please use EVAL.\n\n');
  t.equal(await cli(port, 'SCRIPT', 'FLUSH'), 'OK\n');
  t.equal(await cli(port, 'SCRIPT', 'EXISTS', sha), '0\n', 'flushed');
});

// Drives redis-cli in a pseudo-terminal: types each command, returns what the terminal showed while
// it was typed (hints) and the reply after Enter, with escape sequences removed.
const PTY_DRIVER = String.raw`
import fcntl, json, os, pty, re, select, struct, sys, termios, time
port, commands = sys.argv[1], json.loads(sys.argv[2])
prompt = ('127.0.0.1:%s> ' % port).encode()
pid, fd = pty.fork()
if pid == 0:
    os.environ['TERM'] = 'xterm'
    os.execvp('redis-cli', ['redis-cli', '-h', '127.0.0.1', '-p', port])
# Without a window size linenoise asks the terminal for the cursor position and waits for an answer.
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 200, 0, 0))
def read_until(done, timeout):
    data, end = b'', time.time() + timeout
    while not done(data):
        left = end - time.time()
        if left <= 0:
            sys.exit('redis-cli: no prompt within %ss; terminal so far: %r' % (timeout, data))
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b''
            if not chunk:
                return data
            data += chunk
    return data
def clean(b):
    return re.sub(r'\x1b\[[0-9;]*[A-Za-z]', '', b.decode('utf8', 'replace')).replace('\r', '')
read_until(lambda d: prompt in d, 20)
steps = []
for command in commands:
    os.write(fd, command.encode() + b'\r')
    out = read_until(lambda d: b'\n' in d and prompt in d[d.index(b'\n'):], 20)
    typed, reply = out.split(b'\n', 1)
    steps.append({'command': command, 'typed': clean(typed), 'reply': clean(reply[:reply.rindex(prompt)])})
os.write(fd, b'quit\r')
read_until(lambda d: False, 10)
_, status = os.waitpid(pid, 0)
print(json.dumps({'steps': steps, 'exit': os.waitstatus_to_exitcode(status)}))
`;

interface Step {
  command: string;
  typed: string;
  reply: string;
}

t.test('interactive redis-cli under a pseudo-terminal: replies, hints and help from COMMAND DOCS', async (t) => {
  if (!toolsPresent(t, { commands: ['redis-cli'], pythonModules: ['pty', 'termios'] })) return;
  const { port } = await server(t);
  const commands = ['PING', 'KLOCK r o 30000', 'KLOCK r o2 30000', 'help KLOCK', 'help SET', 'SET k v NX PX 30000', 'KGETLOCK r'];
  const result = await runCommand('/usr/bin/python3', ['-c', PTY_DRIVER, String(port), JSON.stringify(commands)], { timeoutMs: 90_000 });
  t.equal(result.code, 0, `the pty driver finished: ${result.stderr}`);
  if (result.code !== 0) return;
  const { steps, exit } = JSON.parse(result.stdout) as { steps: Step[]; exit: number };
  t.equal(exit, 0, 'redis-cli exits 0 after quit');
  const reply = (command: string): string => steps.find((s) => s.command === command)?.reply ?? '';
  t.equal(reply('PING'), 'PONG\n');
  t.equal(reply('KLOCK r o 30000'), '(integer) 0\n');
  t.equal(reply('KLOCK r o2 30000'), '(nil)\n');
  t.match(reply('help KLOCK'), /KLOCK resource owner ttl_ms/, 'help KLOCK shows the arguments from COMMAND DOCS');
  t.match(reply('help KLOCK'), /summary: .*fencing token/);
  t.match(reply('help SET'), /SET key value/);
  t.equal(reply('SET k v NX PX 30000'), 'OK\n');
  t.match(reply('KGETLOCK r'), /^1\) "o"\n2\) \(integer\) 0\n3\) \(integer\) \d+\n$/);
  const klockTyped = steps.find((s) => s.command === 'KLOCK r o 30000')?.typed ?? '';
  t.match(klockTyped, /resource owner ttl_ms/, 'typing KLOCK shows the hint built from COMMAND DOCS');
  for (const step of steps) t.notMatch(step.reply, /\(error\)|ERR/, `no error after ${step.command}`);
});
