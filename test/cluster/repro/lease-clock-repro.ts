/**
 * Reproduction (found by npm run chaos): a leader that was cut off keeps stamping proposals that never
 * commit; when it leads again its log clock starts from those stamps, ahead of the committed log
 * time, so leases granted meanwhile by the other leader expire early in real time (DESIGN.md §3.4).
 *
 *   npm run build && TS_NODE_TRANSPILE_ONLY=1 node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs test/cluster/repro/lease-clock-repro.ts
 *
 * 3 nodes, 1 partition (n1 leads it). n1's peer links are black-holed while clients keep reading
 * through n1 (each read proposes a tick stamped with n1's log clock); n2 or n3 takes over with the
 * committed log time, which stood still during the election. A lock is taken with a 5 s lease, the
 * links heal, the balancer hands the partition back to n1, and a second owner retries KLOCK.
 * Expected: the second owner gets the lock no sooner than 5 s after the first KLOCK was sent.
 * Fixed in 4e938ef (a new leader's log clock starts at the largest log time in its log); this script
 * now prints ok and stays as a regression check.
 */
import { RawClient } from '../../helpers/raw-client.js';
import { proxiedCluster } from '../harness/proxy.js';

const { cluster, proxies } = await proxiedCluster({ nodes: 3, partitions: 1 });
const PROBE_TTL_MS = 2 ** 31 - 1;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const port = (id: string): number => cluster.node(id).port;

async function leaderSeenBy(id: string): Promise<string> {
  const c = await RawClient.connect(port(id));
  try {
    return /partition0:role=\w+,term=\d+,leader=([^,]*),/.exec((await c.call('INFO', 'raft')) as string)?.[1] ?? '';
  } finally {
    c.close();
  }
}

async function retry(c: RawClient, ...args: (string | number)[]): Promise<unknown> {
  for (;;) {
    const reply = await c.call(...args);
    if (!String((reply as { err?: string } | null)?.err ?? '').startsWith('TRYAGAIN')) return reply;
    await sleep(50);
  }
}

try {
  while ((await leaderSeenBy('n2')) !== 'n1') await sleep(100);
  const viaN2 = await RawClient.connect(port('n2'));
  // The probe: a lock with a 24-day lease; ttl - remaining is the partition's log time since its grant.
  await retry(viaN2, 'KLOCK', 'probe', 'p', PROBE_TTL_MS);
  const logTime = async (): Promise<{ call: number; ret: number; logMs: number }> => {
    const call = performance.now();
    const info = (await retry(viaN2, 'KGETLOCK', 'probe')) as [string, number, number];
    return { call, ret: performance.now(), logMs: PROBE_TTL_MS - info[2] };
  };
  console.log('n1 leads; black-holing its links while clients keep reading through n1');
  for (const [key, proxy] of proxies) if (key.includes('n1')) proxy.setMode('blackhole');
  const readers: RawClient[] = [];
  const cutAt = performance.now();
  while (performance.now() - cutAt < 2500) {
    const c = await RawClient.connect(port('n1'));
    c.command('KGETLOCK', 'x');
    readers.push(c);
    await sleep(50);
  }
  let leader = '';
  while (leader !== 'n2' && leader !== 'n3') leader = await leaderSeenBy('n2');
  console.log(`${leader} leads now`);
  const sentAt = performance.now();
  console.log('KLOCK x a 5000 ->', await retry(viaN2, 'KLOCK', 'x', 'a', 5000));
  const before = await logTime();
  for (const proxy of proxies.values()) {
    proxy.setMode('reset');
    proxy.heal();
  }
  console.log('healed; waiting for the balancer to hand the partition back to n1');
  while ((await leaderSeenBy('n2')) !== 'n1') await sleep(20);
  console.log(`n1 leads again ${Math.round(performance.now() - sentAt)} ms after a's KLOCK was sent`);
  const after = await logTime();
  const realMs = Math.round(after.ret - before.call);
  const logMs = after.logMs - before.logMs;
  console.log(`log time advanced ${logMs} ms while at most ${realMs} ms of real time passed: ${logMs > realMs + 10 ? `AHEAD by ${logMs - realMs} ms` : 'ok'}`);
  for (;;) {
    const reply = await retry(viaN2, 'KLOCK', 'x', 'b', 5000);
    if (reply !== null) {
      const elapsed = Math.round(performance.now() - sentAt);
      console.log(`KLOCK x b -> ${String(reply)} ${elapsed} ms after a's KLOCK was sent: ${elapsed < 5000 ? 'EARLY: a\'s 5000 ms lease expired early' : 'ok'}`);
      break;
    }
    await sleep(10);
  }
  for (const c of [viaN2, ...readers]) c.close();
} finally {
  await cluster.close();
  await Promise.all([...proxies.values()].map((p) => p.close()));
}
