/**
 * Reproduction (found by npm run chaos): a node exits with code 70 ("fatal error",
 * ErrTransferInvalid: leadership transfer refused: no leader known, from RaftlockServer.balance)
 * after a stall longer than an election timeout (here SIGSTOP; a long GC pause or CPU starvation
 * does the same). On resume the overdue tick timer catches up the missed ticks and the Raft core
 * steps down (check quorum); the overdue balance timer still sees the replica's cached role as
 * leader (the Ready loop is waiting for the WAL, so the role change is not applied yet) and calls
 * raw.transferLeader(), which throws on a follower that knows no leader.
 *
 *   npm run build && TS_NODE_TRANSPILE_ONLY=1 node --import ./node_modules/@tapjs/typescript/dist/esm/import.mjs test/cluster/repro/balance-crash-repro.ts
 *
 * 3 nodes, 3 partitions (partition 1 prefers n2). n2's peer links are reset for 2.5 s, so another
 * node X leads partition 1. The links heal; 2.2 s after X reconnects to n2 (before X's balancer
 * hands partition 1 back, which it does once n2 has been connected for 3 s) X is stopped for 3 s
 * while a client keeps writing to partition 1 through X, then continued.
 * Fixed in 4e938ef (a stale role no longer crashes the balancer); this script stays as a regression check.
 */
import { partitionOfKey } from '../../../src/cluster/slots.js';
import { RawClient } from '../../helpers/raw-client.js';
import { proxiedCluster } from '../harness/proxy.js';

const { cluster, proxies } = await proxiedCluster({ nodes: 3, partitions: 3 });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function leaders(id: string): Promise<string[]> {
  const c = await RawClient.connect(cluster.node(id).port);
  try {
    return [...((await c.call('INFO', 'raft')) as string).matchAll(/partition\d+:role=\w+,term=\d+,leader=([^,]*),/g)].map((m) => m[1]!);
  } finally {
    c.close();
  }
}

try {
  while ((await leaders('n1')).join(',') !== 'n1,n2,n3') await sleep(100);
  for (const [key, proxy] of proxies) if (key.includes('n2')) proxy.setMode('reset');
  let x = '';
  while (x !== 'n1' && x !== 'n3') x = (await leaders('n1'))[1]!;
  console.log(`n2 cut off; ${x} leads partition 1`);
  const keys = Array.from({ length: 5000 }, (_, i) => `k${i}`).filter((k) => partitionOfKey(k, 3) === 1);
  const writer = await RawClient.connect(cluster.node(x).port);
  let writing = true;
  const load = (async () => {
    for (let i = 0; writing; i++) {
      writer.command('KLOCK', keys[i % keys.length]!, `o${i}`, 100);
      await sleep(2);
    }
  })();
  await sleep(2500);
  const logged = cluster.node(x).log.length;
  for (const proxy of proxies.values()) proxy.heal();
  while (!cluster.node(x).log.slice(logged).some((l) => l.includes('"msg":"peer connected"') && l.includes('"peer":"n2"'))) await sleep(10);
  await sleep(2200);
  const child = cluster.node(x).child!;
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`exited: code ${code}, signal ${signal}`)));
  cluster.pause(x);
  console.log(`${x} reconnected to n2 2.2 s ago; stopping it for 3 s`);
  await sleep(3000);
  cluster.resume(x);
  const outcome = await Promise.race([exited, sleep(3000).then(() => 'still running 3 s after SIGCONT')]);
  console.log(`${x} ${outcome}`);
  const fatal = cluster.node(x).log.find((l) => l.includes('fatal error'));
  if (fatal !== undefined) console.log(fatal.slice(0, 300));
  writing = false;
  await load;
  writer.close();
} finally {
  await cluster.close();
  await Promise.all([...proxies.values()].map((p) => p.close()));
}
