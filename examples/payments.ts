// Preventing double payments: two workers get the same order (a retried message, a second
// replica); only the lock holder charges it, and the ledger refuses a write under an older
// fencing token, so even a holder that stalled past its lease cannot charge twice.
import { RaftLockClient } from 'raftlock';
import { FencedStore } from './fenced-store.js';

const client = new RaftLockClient(process.env.RAFTLOCK_ENDPOINTS ?? '127.0.0.1:6379');
const ledger = new FencedStore<string>(); // in production: your database, checking the token

async function pay(worker: string, orderId: string): Promise<void> {
  await using lock = await client.getOrCreateLock(`payment:${orderId}`, { expiryMs: 10_000 });
  if (!lock.isAcquired) {
    console.log(`${worker}: order ${orderId} is being paid by someone else`);
    return;
  }
  if (ledger.read(`order:${orderId}`) !== undefined) {
    console.log(`${worker}: order ${orderId} was already paid`);
    return;
  }
  // ... charge the card here ...
  ledger.write(`order:${orderId}`, lock.fencingToken, `paid by ${worker}`);
  console.log(`${worker}: charged order ${orderId} with fencing token ${lock.fencingToken}`);
}

await Promise.all([pay('worker-a', '1001'), pay('worker-b', '1001')]);
await pay('worker-c', '1001'); // a late retry of the same message
console.log(`ledger: ${ledger.read('order:1001')}`);
await client.close();
