import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../bench/lib/proc.js';
import { RawClient } from '../helpers/raw-client.js';

const MAIN = new URL('../../dist/src/server/main.js', import.meta.url).pathname;

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, RAFTLOCK_HTTP_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

async function waitReady(proc: ReturnType<typeof run>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!proc.output().stderr.includes('ready to accept connections')) {
    if (Date.now() > deadline) throw new Error(`server not ready: ${proc.output().stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('the server binary starts, serves and shuts down cleanly on SIGTERM', async (t) => {
  t.ok(existsSync(MAIN), 'built server exists (npm test builds first)');
  const dir = mkdtempSync(join(tmpdir(), 'raftlock-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const proc = run(['--port', String(port), '--data-dir', join(dir, 'data')]);
  t.teardown(() => proc.child.kill('SIGKILL'));
  await waitReady(proc);
  const c = await RawClient.connect(port);
  t.equal(await c.call('KLOCK', 'r', 'o', 1000), 0);
  const identity = JSON.parse(readFileSync(join(dir, 'data', 'node.json'), 'utf8'));
  t.equal(identity.nodeId, 'n1', 'data dir created with the node identity');
  proc.child.kill('SIGTERM');
  t.equal(await proc.exited, 0, 'exit code 0');
  await c.closed;
  const log = proc.output().stderr.trim().split('\n').map((l) => JSON.parse(l));
  t.ok(log.some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM'), 'logs the signal');
  t.ok(log.some((l) => l.msg === 'shut down cleanly'));
});

t.test('flags read RAFTLOCK_<FLAG>; a data dir of another node is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftlock-proc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const first = run([], { RAFTLOCK_PORT: String(port), RAFTLOCK_DATA_DIR: dir, RAFTLOCK_NODE_ID: 'a' });
  t.teardown(() => first.child.kill('SIGKILL'));
  await waitReady(first);
  t.match(first.output().stderr, `"port":${port}`);
  first.child.kill('SIGINT');
  t.equal(await first.exited, 0);
  const second = run(['--port', String(port), '--data-dir', dir, '--node-id', 'b']);
  t.equal(await second.exited, 1);
  t.match(second.output().stderr, /belongs to node 'a', not 'b'/);
});

t.test('--help lists the flags; bad flags are refused clearly', async (t) => {
  const help = run(['--help']);
  t.equal(await help.exited, 0);
  for (const flag of ['--port', '--bind', '--data-dir', '--requirepass', '--maxclients', '--timeout', 'RAFTLOCK_']) {
    t.match(help.output().stdout, flag);
  }
  const bad = run(['--port', 'seventy']);
  t.equal(await bad.exited, 1);
  t.match(bad.output().stderr, /--port.*expected an integer/);
  for (const flag of ['--peers', '--cluster-port', '--cluster-secret']) t.match(help.output().stdout, flag);
  const stranger = run(['--node-id', 'n9', '--peers', 'n1=127.0.0.1:17001,n2=127.0.0.1:17002']);
  t.equal(await stranger.exited, 1);
  t.match(stranger.output().stderr, /--peers' must list this node \('n9'/);
  const malformed = run(['--peers', 'n1:17001']);
  t.equal(await malformed.exited, 1);
  t.match(malformed.output().stderr, /expected id=host:port, got 'n1:17001'/);
});
