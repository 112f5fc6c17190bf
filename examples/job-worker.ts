// A job-queue worker that waits its turn: three workers want the same nightly job; each waits in
// the server's FIFO queue for the lock (no polling, no retry storm) and runs once it holds it.
import { RaftLockClient } from 'raftlock';

const client = new RaftLockClient(process.env.RAFTLOCK_ENDPOINTS ?? '127.0.0.1:6379');

async function worker(name: string): Promise<void> {
  await using lock = await client.getOrCreateLock('jobs:nightly-report', { expiryMs: 5_000, waitMs: 10_000 });
  if (!lock.isAcquired) {
    console.log(`${name}: gave up waiting`);
    return;
  }
  console.log(`${name}: running the job (fencing token ${lock.fencingToken})`);
  await new Promise((r) => setTimeout(r, 200)); // the job
  console.log(`${name}: done`);
}

await Promise.all(['worker-1', 'worker-2', 'worker-3'].map(worker));
await client.close();
