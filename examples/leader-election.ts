// Leader election with auto-renewal: each candidate tries to take the 'leader' lock; the winner
// keeps it renewed (autoExtend) and leads until lock.signal says it lost it. Here the leader steps
// down after a while and a standby takes over.
import { RaftLockClient, type RaftLock } from 'raftlock';

const client = new RaftLockClient(process.env.RAFTLOCK_ENDPOINTS ?? '127.0.0.1:6379');

async function campaign(name: string): Promise<RaftLock> {
  for (;;) {
    const lock = await client.getOrCreateLock('services/scheduler/leader', {
      expiryMs: 3_000, waitMs: 5_000, autoExtend: true, owner: name,
    });
    if (lock.isAcquired) return lock;
  }
}

async function lead(name: string, termMs: number): Promise<void> {
  const lock = await campaign(name);
  console.log(`${name}: leading with fencing token ${lock.fencingToken}`);
  lock.signal.addEventListener('abort', () => console.log(`${name}: no longer leader`));
  // Lead: do work while lock.signal is not aborted, passing lock.fencingToken along with every write.
  await new Promise((r) => setTimeout(r, termMs));
  if (!lock.signal.aborted) await lock.release(); // step down
}

await Promise.all([lead('node-a', 1_500), lead('node-b', 500)]);
await client.close();
