// The README's examples are the files in examples/, and each runs as written against a real server.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { ProcessCluster } from '../../bench/lib/cluster.js';
import { runCommand } from '../../bench/lib/proc.js';

const ROOT = new URL('../../', import.meta.url);

t.test('every README code block marked as an example is that file, verbatim', async (t) => {
  const readme = readFileSync(new URL('README.md', ROOT), 'utf8');
  const marked = [...readme.matchAll(/<!-- example: (\S+) -->\n```\w*\n([\s\S]*?)\n```/g)];
  t.ok(marked.length >= 3, `${marked.length} examples in the README`);
  for (const [, path, code] of marked) {
    t.equal(code, readFileSync(new URL(path!, ROOT), 'utf8').trimEnd(), `${path} matches the README`);
  }
});

async function run(example: string, endpoint: string): Promise<string[]> {
  const script = new URL(`dist/examples/${example}.js`, ROOT).pathname;
  const result = await runCommand(process.execPath, [script], { timeoutMs: 30_000, env: { ...process.env, RAFTLOCK_ENDPOINTS: endpoint } });
  if (result.code !== 0) throw new Error(`${example} exited ${result.code}: ${result.stderr}`);
  return result.stdout.trimEnd().split('\n');
}

t.test('the examples against a real server process', async (t) => {
  // A one-node cluster of real processes (the same binary npm start runs).
  const cluster = await ProcessCluster.start({ nodes: 1, partitions: 8 });
  t.teardown(() => cluster.close());
  const endpoint = `127.0.0.1:${cluster.nodes[0]!.port}`;

  const payments = await run('payments', endpoint);
  const charged = payments.filter((l) => l.includes('charged order 1001'));
  t.equal(charged.length, 1, 'exactly one worker charged the order');
  t.match(charged[0], /with fencing token 0$/);
  t.ok(payments.some((l) => /being paid by someone else|already paid/.test(l) && !l.startsWith('worker-c')), 'the other worker backed off');
  t.ok(payments.includes('worker-c: order 1001 was already paid'), 'the late retry finds it paid');
  t.match(payments.at(-1), /^ledger: paid by worker-[ab]$/);

  const jobs = await run('job-worker', endpoint);
  t.same(jobs.filter((l) => l.endsWith('done')).length, 3, 'every worker ran the job');
  const starts = jobs.filter((l) => l.includes('running the job'));
  t.same(starts.map((l) => /token (\d+)/.exec(l)![1]), ['0', '1', '2'], 'one after another, each with the next token');
  for (let i = 0; i < jobs.length; i += 2) t.match(jobs[i + 1], new RegExp(`^${jobs[i]!.split(':')[0]}: done$`), 'never two at once');

  const election = await run('leader-election', endpoint);
  t.equal(election.length, 4, election.join(' | '));
  t.match(election[0], /^node-[ab]: leading with fencing token 0$/);
  t.match(election[1], /^node-[ab]: no longer leader$/);
  t.match(election[2], /^node-[ab]: leading with fencing token 1$/);
  t.not(election[0]!.slice(0, 6), election[2]!.slice(0, 6), 'the other candidate took over');
});

t.test('examples/backup.sh is valid bash', async (t) => {
  const child = spawn('bash', ['-n', new URL('examples/backup.sh', ROOT).pathname], { stdio: 'pipe' });
  const code = await new Promise((r) => child.on('exit', r));
  t.equal(code, 0, 'bash -n accepts it (test/tools runs it with raftlock-cli and jq)');
});
