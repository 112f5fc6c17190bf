// The backup script of the seed, unchanged but for the binary name: raftlock-cli piped into jq
// (Debian's jq), in bash, with raftlock-cli on PATH and its server in RAFTLOCK_CLI_CONNECTION_SOURCE.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import t, { type Test } from 'tap';
import { REPO_ROOT, startRaftlock } from '../../bench/lib/proc.js';

const CLI_MAIN = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const JQ = '/usr/bin/jq';

interface BashResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A server, and `bash -c script` runs with raftlock-cli on PATH pointed at it. */
async function setUp(t: Test): Promise<(script: string, env?: Record<string, string>) => Promise<BashResult>> {
  const server = await startRaftlock();
  t.teardown(() => server.stop());
  const bin = mkdtempSync(join(tmpdir(), 'raftlock-cli-bin-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  writeFileSync(join(bin, 'raftlock-cli'), `#!/bin/sh\nexec '${process.execPath}' '${CLI_MAIN}' "$@"\n`);
  chmodSync(join(bin, 'raftlock-cli'), 0o755);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}${delimiter}${process.env['PATH'] ?? ''}`, RAFTLOCK_CLI_CONNECTION_SOURCE: `127.0.0.1:${server.port}` };
  delete env['RAFTLOCK_PASSWORD'];
  return (script, extra = {}) => new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Fails (never skips) when jq is missing: .ci/run installs it. */
function jqPresent(t: Test): boolean {
  if (existsSync(JQ)) return true;
  t.fail(`${JQ} is missing: apt-get install jq (bash .ci/run installs what test:tools needs)`);
  return false;
}

t.test('raftlock-cli --lock ... --format json | jq .isAcquired: true, then false for another owner, true after --unlock', async (t) => {
  if (!jqPresent(t)) return;
  const bash = await setUp(t);
  const lock = 'raftlock-cli --lock backup-lock --expires 60000 --format json | jq .isAcquired';
  t.same(await bash(lock), { code: 0, stdout: 'true\n', stderr: '' });
  t.same(await bash(lock), { code: 0, stdout: 'false\n', stderr: '' }, 'a second shell (another random owner) is refused; jq still reads the JSON');
  const owner = (await bash('raftlock-cli --get-lock backup-lock --format json | jq -r .owner')).stdout.trim();
  t.match(owner, /^[0-9a-f-]{36}$/, 'the holder is the first random owner');
  const unlock = await bash(`raftlock-cli --unlock backup-lock --owner ${owner} --format json`);
  t.equal(unlock.code, 0);
  t.same(JSON.parse(unlock.stdout), { resource: 'backup-lock', isUnlocked: true, owner });
  t.same(await bash(lock), { code: 0, stdout: 'true\n', stderr: '' }, 'released: the next lock is acquired');
});

// examples/backup.sh (the seed's backup script with raftlock-cli for kahuna-cli) as the README
// shows it, with its stand-in for the backup replaced by a sleep of HOLD_S seconds.
const BACKUP_SCRIPT = ((): string => {
  const script = readFileSync(join(REPO_ROOT, 'examples', 'backup.sh'), 'utf8');
  const standIn = /^echo "backing up\.\.\.".*$/m;
  if (!standIn.test(script)) throw new Error('examples/backup.sh no longer has its "backing up..." line');
  return script.replace(standIn, 'echo "backing up as $OWNER"\nsleep "$HOLD_S"');
})();

t.test('the backup script runs once at a time and releases the lock when it ends', async (t) => {
  if (!jqPresent(t)) return;
  const bash = await setUp(t);
  const first = bash(BACKUP_SCRIPT, { HOLD_S: '4' });
  for (let i = 0; (await bash('raftlock-cli --get-lock backup-lock > /dev/null; echo $?')).stdout !== '0\n'; i++) {
    if (i > 100) throw new Error('the first backup never took the lock');
    await new Promise((r) => setTimeout(r, 100));
  }
  t.same(await bash(BACKUP_SCRIPT, { HOLD_S: '0' }), { code: 0, stdout: 'another backup is running\n', stderr: '' });
  const done = await first;
  t.equal(done.code, 0);
  t.match(done.stdout, /^backing up as backup-.*\n$/);
  t.equal(done.stderr, '');
  t.same(await bash('raftlock-cli --get-lock backup-lock --format json | jq .isLocked'), { code: 0, stdout: 'false\n', stderr: '' }, 'the trap released it');
  t.match((await bash(BACKUP_SCRIPT, { HOLD_S: '0' })).stdout, /^backing up as /, 'the next run gets the lock');
});
