// redis-benchmark (Debian redis-tools) against the built server: its built-in tests and a custom
// lock command complete without errors. This checks behaviour; bench/run.ts measures speed.
import t from 'tap';
import { runCommand, startRaftlock, toolProblems, type ServerProcess } from '../../bench/lib/proc.js';

/** The part of a tap test these helpers use. */
interface Test {
  fail(message: string): boolean;
  teardown(fn: () => unknown): void;
}

/** Fails (never skips) when a tool is missing: .ci/run installs them. */
function toolsPresent(t: Test): boolean {
  const problems = toolProblems({ commands: ['redis-benchmark', 'redis-cli'] });
  if (problems.length > 0) t.fail(`missing: ${problems.join('; ')}. bash .ci/run installs what test:tools needs`);
  return problems.length === 0;
}

async function server(t: Test): Promise<ServerProcess> {
  const s = await startRaftlock();
  t.teardown(() => s.stop());
  return s;
}

/** `name: 12345.67 requests per second` lines of redis-benchmark -q, by test name. */
function requestsPerSecond(output: string): Map<string, number> {
  const rps = new Map<string, number>();
  for (const line of output.split(/[\r\n]+/)) {
    const m = /^(.+?): ([\d.]+) requests per second/.exec(line.trim());
    if (m !== null) rps.set(m[1]!, Number(m[2]));
  }
  return rps;
}

async function benchmark(port: number, args: string[]): Promise<{ code: number | null; output: string }> {
  const result = await runCommand('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-q', ...args], { timeoutMs: 90_000 });
  return { code: result.code, output: result.stdout + result.stderr };
}

t.test('redis-benchmark -t ping,set,get completes without errors', async (t) => {
  if (!toolsPresent(t)) return;
  const { port } = await server(t);
  const { code, output } = await benchmark(port, ['-n', '20000', '-t', 'ping,set,get']);
  t.equal(code, 0, 'exit code 0');
  t.notMatch(output, /ERR|Error/, 'no errors in the output');
  const rps = requestsPerSecond(output);
  for (const test of ['PING_INLINE', 'PING_MBULK', 'SET', 'GET']) {
    t.ok((rps.get(test) ?? 0) > 0, `${test}: ${rps.get(test) ?? 'no result'} requests per second`);
  }
});

t.test('redis-benchmark runs KLOCK as a custom command without errors', async (t) => {
  if (!toolsPresent(t)) return;
  const { port } = await server(t);
  const command = ['KLOCK', 'lock:__rand_int__', 'owner', '30000', 'EPHEMERAL'];
  const { code, output } = await benchmark(port, ['-n', '20000', '-r', '1000', ...command]);
  t.equal(code, 0, 'exit code 0');
  t.notMatch(output, /ERR|Error/, 'no errors in the output');
  t.ok((requestsPerSecond(output).get(command.join(' ')) ?? 0) > 0, 'a non-zero rate for KLOCK');
  // 20000 requests over 1000 keys reach every key (a miss has odds of about 2e-9).
  for (const key of ['lock:000000000000', 'lock:000000000999']) {
    const info = await runCommand('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'KGETLOCK', key, 'EPHEMERAL']);
    t.match(info.stdout, /^owner\n\d+\n\d+\n$/, `${key} is held by the benchmark's owner`);
  }
});
