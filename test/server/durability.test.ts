import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../bench/lib/proc.js';
import { RawClient } from '../helpers/raw-client.js';

const MAIN = new URL('../../dist/src/server/main.js', import.meta.url).pathname;

async function start(port: number, dataDir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [MAIN, '--port', String(port), '--data-dir', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 15_000;
  while (!stderr.includes('ready to accept connections')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return child;
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

t.test('acknowledged PERSISTENT locks survive kill -9 with the same owner, token and lease', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftlock-durability-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const acknowledged = new Map<string, { owner: string; token: number }>();
  let seed = 42;
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  for (let round = 0; round < 3; round++) {
    const server = await start(port, dir);
    t.teardown(() => server.kill('SIGKILL'));
    const clients = await Promise.all(Array.from({ length: 6 }, () => RawClient.connect(port)));
    // Everything acknowledged before is still there, unchanged.
    for (const [resource, lock] of acknowledged) {
      const info = (await clients[0]!.call('KGETLOCK', resource)) as [string, number, number] | null;
      if (info === null || info[0] !== lock.owner || info[1] !== lock.token) {
        t.fail(`round ${round}: ${resource} was ${JSON.stringify(lock)}, now ${JSON.stringify(info)}`);
      }
    }
    // Many clients race for locks; kill -9 lands at a random moment while replies are in flight.
    let stop = false;
    const workers = clients.map(async (c, i) => {
      while (!stop) {
        const resource = `r${Math.floor(random() * 40)}`;
        const owner = `round${round}-c${i}`;
        let reply: unknown;
        try {
          reply = await c.call('KLOCK', resource, owner, 3_600_000);
        } catch {
          return;
        }
        if (typeof reply === 'number') {
          const before = acknowledged.get(resource);
          if (before !== undefined && before.owner !== owner && reply <= before.token) t.fail(`token went back on ${resource}`);
          if (before === undefined || before.owner !== owner) acknowledged.set(resource, { owner, token: reply });
        }
      }
    });
    await new Promise((r) => setTimeout(r, 150 + Math.floor(random() * 300)));
    await kill9(server);
    stop = true;
    await Promise.all(workers);
    for (const c of clients) c.close();
  }
  const server = await start(port, dir);
  t.teardown(() => server.kill('SIGKILL'));
  const c = await RawClient.connect(port);
  let checked = 0;
  for (const [resource, lock] of acknowledged) {
    const info = (await c.call('KGETLOCK', resource)) as [string, number, number] | null;
    t.same(info?.slice(0, 2), [lock.owner, lock.token], `${resource} kept owner and token`);
    t.ok(info !== null && info[2] > 3_000_000, 'lease not shortened by the crashes');
    checked += 1;
  }
  t.ok(checked >= 10, `checked ${checked} acknowledged locks`);
  c.close();
});
