import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../bench/lib/proc.js';
import { SERVER_NODE_FLAGS } from '../../src/server/node-flags.js';

const read = (path: string): string => readFileSync(join(REPO_ROOT, path), 'utf8');

t.test('every way of starting the server passes the same V8 flags', async (t) => {
  const flags = SERVER_NODE_FLAGS.join(' ');
  t.equal(read('src/server/main.ts').split('\n')[0], `#!/usr/bin/env -S node ${flags}`, 'the raftlock-server bin (shebang)');
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; bin: Record<string, string> };
  t.equal(pkg.scripts['start'], `node ${flags} dist/src/server/main.js`, 'npm start');
  t.equal(pkg.bin['raftlock-server'], 'dist/src/server/main.js', 'the bin is the file with that shebang');
  const entrypoint = /^ENTRYPOINT (.*)$/m.exec(read('Dockerfile'))?.[1];
  t.same(JSON.parse(entrypoint ?? 'null'), ['node', ...SERVER_NODE_FLAGS, 'dist/src/server/main.js'], 'the Docker image');
  t.match(read('src/server/local-cluster.ts'), /spawn\(process\.execPath, \[\s*\.\.\.SERVER_NODE_FLAGS, server,/, 'npm run cluster');
  t.match(read('README.md'), flags, 'the README names them');
});

t.test('the flags give the server its full young generation from the start', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const script = "const v8 = require('node:v8'); console.log(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size)";
  const newSpace = (flags: readonly string[]): number => {
    const run = spawnSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(run.stderr);
    return Number(run.stdout.trim());
  };
  t.ok(newSpace(SERVER_NODE_FLAGS) >= 16 * 1024 * 1024, 'at least one 16 MiB semi-space at start');
  t.ok(newSpace([]) < 16 * 1024 * 1024, 'without them V8 starts smaller (and grows and shrinks it)');
});
