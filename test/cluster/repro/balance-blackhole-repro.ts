/**
 * Reproduction (found by npm run chaos) of two availability defects when a partition's leader is cut
 * off by a black hole (its TCP connections stay open, nothing gets through):
 *
 * 1. A command another node forwarded to that leader is never answered: the forwarding node waits on
 *    the peer link forever (no request timeout, no TRYAGAIN once another leader is elected).
 * 2. The new leader's balancer still sees the cut-off node (the preferred leader) as connected and
 *    hands leadership to it about once a second; each attempt stops proposals for an election
 *    timeout, so about half the writes get -TRYAGAIN server busy while a healthy majority is up.
 *
 *   npm run build && TS_NODE_TRANSPILE_ONLY=1 node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs test/cluster/repro/balance-blackhole-repro.ts
 *
 * 3 nodes, 1 partition; n1, its preferred leader, leads. n1's peer links are black-holed for 15 s.
 * Fixed in 4e938ef (forwarded commands whose leader changes answer -TRYAGAIN; leadership moves only
 * to caught-up, active followers); this script stays as a regression check.
 */
import { RawClient } from '../../helpers/raw-client.js';
import { proxiedCluster } from '../harness/proxy.js';

const { cluster, proxies } = await proxiedCluster({ nodes: 3, partitions: 1 });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const port = cluster.node('n2').port;

try {
  const info = await RawClient.connect(port);
  const leader = async (): Promise<string> => /partition0:role=\w+,term=\d+,leader=([^,]*),/.exec((await info.call('INFO', 'raft')) as string)?.[1] ?? '';
  while ((await leader()) !== 'n1') await sleep(100);
  console.log('n1 leads; black-holing its peer links for 15 s');
  for (const [key, proxy] of proxies) if (key.includes('n1')) proxy.setMode('blackhole');
  const started = performance.now();

  // 1. A command sent through n2 just after the cut.
  const first = await RawClient.connect(port);
  first.command('KLOCK', 'first', 'o', 60_000);
  const firstReply = first.reply(14_000).then((r) => `${JSON.stringify(r)} after ${Math.round(performance.now() - started)} ms`, () => 'no reply within 14 s');

  // 2. One KLOCK every 20 ms through n2 on a second connection (5 s client timeout, then reconnect).
  await sleep(3000);
  console.log(`after 3 s n2 names ${await leader()} as the leader`);
  let c = await RawClient.connect(port);
  const counts = new Map<string, number>();
  for (let i = 0; performance.now() - started < 15_000; i++) {
    let what: string;
    try {
      const reply = await c.call('KLOCK', `k${i}`, 'o', 60_000);
      const err = (reply as { err?: string } | null)?.err;
      what = err === undefined ? 'granted' : err.replace(/[:;].*$/, '');
    } catch {
      what = 'no reply within 5 s';
      c.close();
      c = await RawClient.connect(port);
    }
    counts.set(what, (counts.get(what) ?? 0) + 1);
    await sleep(20);
  }
  console.log(`the KLOCK sent just after the cut: ${await firstReply}`);
  console.log(`KLOCKs through n2 from 3 s to 15 s (n2 and n3 connected all along): ${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  const handoffs = cluster.nodes.flatMap((n) => n.log.filter((l) => /leadership transfer started/.test(l)));
  console.log(`leadership hand-offs to n1 attempted meanwhile: ${handoffs.length}`);
  for (const client of [info, first, c]) client.close();
} finally {
  await cluster.close();
  await Promise.all([...proxies.values()].map((p) => p.close()));
}
