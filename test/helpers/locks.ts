// Helpers of the tests that drive lock clients (redlock, ioredis) against real servers.
import type { Cluster, Redis } from 'ioredis';
import type { ProcessCluster } from '../../bench/lib/cluster.js';
import { waitForLeadership } from '../../bench/lib/leaders.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The fencing token of a PERSISTENT lock, from KGETLOCK; null when it is free. */
export async function tokenOf(client: Redis | Cluster, key: string): Promise<number | null> {
  const info = (await client.call('KGETLOCK', key)) as [string, number, number] | null;
  return info === null ? null : info[1];
}

/**
 * Until every partition has a leader (CLUSTER INFO says ok, asked through `client`) and the leaders
 * have moved to their preferred nodes, which they do a few seconds after start.
 */
export async function settledCluster(cluster: ProcessCluster, client: Redis): Promise<void> {
  for (let i = 0; ; i++) {
    if (/cluster_state:ok/.test(await client.cluster('INFO'))) break;
    if (i >= 200) throw new Error('no leader for every partition within 20 s');
    await sleep(100);
  }
  await waitForLeadership(cluster, { balanced: true, stableMs: 1000, timeoutMs: 60_000 });
}
