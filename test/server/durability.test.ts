import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../bench/lib/proc.js';
import { RawClient } from '../helpers/raw-client.js';

const MAIN = new URL('../../dist/src/server/main.js', import.meta.url).pathname;

async function start(port: number, dataDir: string): Promise<ChildProcess> {
  // Frequent snapshots, so that crashes land before, during and after them.
  const args = [MAIN, '--port', String(port), '--http-port', '0', '--data-dir', dataDir, '--snapshot-min-entries', '150'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
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

interface Known {
  /** The holder as of the last acknowledged write, or null when it was released. */
  owner: string | null;
  /** The largest token acknowledged for the resource. */
  token: number;
  /** A write whose reply the crash cut off may or may not have been applied. */
  uncertain: boolean;
}

t.test('acknowledged PERSISTENT locks and unlocks survive kill -9 with the same owner, token and lease', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'raftlock-durability-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const known = new Map<string, Known>();
  let seed = 42;
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  let acknowledgedWrites = 0;
  for (let round = 0; round < 4; round++) {
    const server = await start(port, dir);
    t.teardown(() => server.kill('SIGKILL'));
    const clients = await Promise.all(Array.from({ length: 6 }, () => RawClient.connect(port)));
    await verify(t, clients[0]!, known, `round ${round}`);
    // Many clients lock and unlock; kill -9 lands at a random moment while replies are in flight.
    // One write per resource at a time: replies on different connections
    // arrive in no particular order, so concurrent writes to one resource
    // would leave the model unsure which came first.
    const busy = new Set<string>();
    let stop = false;
    const workers = clients.map(async (c, i) => {
      const owner = `round${round}-c${i}`;
      while (!stop) {
        const resource = `r${Math.floor(random() * 40)}`;
        if (busy.has(resource)) continue;
        busy.add(resource);
        const state = known.get(resource) ?? { owner: null, token: -1, uncertain: false };
        known.set(resource, state);
        const unlock = state.owner === owner && random() < 0.7;
        let reply: unknown;
        try {
          reply = unlock ? await c.call('KUNLOCK', resource, owner) : await c.call('KLOCK', resource, owner, 3_600_000);
        } catch {
          state.uncertain = true;
          return;
        } finally {
          busy.delete(resource);
        }
        acknowledgedWrites += 1;
        if (unlock) {
          if (reply !== 1) t.fail(`${resource}: the holder's unlock was refused (${String(reply)})`);
          state.owner = null;
        } else if (typeof reply === 'number') {
          if (state.owner !== owner && reply <= state.token) t.fail(`token went back on ${resource}: ${reply} after ${state.token}`);
          state.owner = owner;
          state.token = Math.max(state.token, reply);
        } else if (state.owner === owner) {
          // (A refusal of a lock seen free is a race with another client's KLOCK, not an error.)
          t.fail(`${resource}: KLOCK refused to its holder`);
        }
      }
    });
    await new Promise((r) => setTimeout(r, 200 + Math.floor(random() * 400)));
    await kill9(server);
    stop = true;
    await Promise.all(workers);
    for (const c of clients) c.close();
  }
  const server = await start(port, dir);
  t.teardown(() => server.kill('SIGKILL'));
  const c = await RawClient.connect(port);
  const checked = await verify(t, c, known, 'at the end');
  const info = String(await c.call('INFO', 'raft'));
  t.ok(checked >= 10, `checked ${checked} resources after ${acknowledgedWrites} acknowledged writes`);
  t.ok(acknowledgedWrites > 600, 'enough writes for several snapshots');
  t.match(info, /partition0:.*snapshot_index=[1-9]\d{2,}/, 'the server restarted from a snapshot');
  c.close();
});

/**
 * Every resource is as the acknowledged writes left it, with the lease not
 * shortened by the crashes. A resource with a write the crash cut off may
 * show that write applied or not; its state is then learnt from the server,
 * as long as its token did not go back.
 */
async function verify(t: Test, client: RawClient, known: Map<string, Known>, when: string): Promise<number> {
  let checked = 0;
  for (const [resource, state] of known) {
    const info = (await client.call('KGETLOCK', resource)) as [string, number, number] | null;
    checked += 1;
    if (info !== null && info[2] <= 3_000_000) t.fail(`${when}: ${resource} lease shortened to ${info[2]} ms`);
    if (state.uncertain) {
      if (info !== null && info[1] < state.token) t.fail(`${when}: ${resource} token went back from ${state.token} to ${info[1]}`);
      state.owner = info?.[0] ?? null;
      if (info !== null) state.token = info[1];
      state.uncertain = false;
    } else if (state.owner === null ? info !== null : info?.[0] !== state.owner || info[1] !== state.token) {
      t.fail(`${when}: ${resource} was ${JSON.stringify(state)}, now ${JSON.stringify(info)}`);
    }
  }
  t.pass(`${when}: ${checked} resources as acknowledged`);
  return checked;
}
