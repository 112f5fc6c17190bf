// In-process Raft throughput: three RawNodes over MemoryStorage and an in-memory transport.
// Measures committed entries/s at the leader for several proposal batch sizes.
// Reproduce: npm run build && node dist/bench/raft3.js
import { pathToFileURL } from 'node:url';
import { RawNode } from '../raft/rawnode.js';
import { MemoryStorage } from '../raft/storage.js';
import type { Message } from '../raft/types.js';

interface Node {
  raw: RawNode;
  storage: MemoryStorage;
  applied: number;
}

function rng(seed: number): () => number {
  return () => {
    seed = (seed * 48271) % 2147483647;
    return seed / 2147483647;
  };
}

function cluster(): Map<string, Node> {
  const ids = ['n1', 'n2', 'n3'];
  const nodes = new Map<string, Node>();
  for (const [i, id] of ids.entries()) {
    const storage = new MemoryStorage({ voters: ids, learners: [] });
    nodes.set(id, { raw: new RawNode({ id, storage, rng: rng(i + 1), maxInflightMsgs: 4096 }), storage, applied: 0 });
  }
  return nodes;
}

/** One round of the Ready loop on every node; returns the messages they sent. */
function step(nodes: Map<string, Node>): Message[] {
  const out: Message[] = [];
  for (const node of nodes.values()) {
    if (!node.raw.hasReady()) continue;
    const rd = node.raw.ready();
    node.storage.append(rd.entries);
    if (rd.hardState !== undefined) node.storage.setHardState(rd.hardState);
    for (const m of rd.messages) out.push(m);
    node.applied += rd.committedEntries.length;
    node.raw.advance(rd);
  }
  return out;
}

function deliver(nodes: Map<string, Node>, messages: Message[]): void {
  for (const m of messages) nodes.get(m.to)!.raw.step(m);
}

export function run(batches = [1, 16, 256], seconds = 2): { batch: number; entriesPerSec: number }[] {
  const results: { batch: number; entriesPerSec: number }[] = [];
  const payload = new Uint8Array(64);
  for (const batch of batches) {
    const nodes = cluster();
    // Nodes refuse votes for an election timeout after starting (CheckQuorum): tick until one leads.
    let leader: Node | undefined;
    for (let i = 0; i < 1000 && leader === undefined; i++) {
      for (const n of nodes.values()) n.raw.tick();
      for (let r = 0; r < 5; r++) deliver(nodes, step(nodes));
      leader = [...nodes.values()].find((n) => n.raw.status().role === 'leader');
    }
    if (leader === undefined) throw new Error('no leader elected');
    const start = performance.now();
    const appliedBefore = leader.applied;
    let ticks = 0;
    while (performance.now() - start < seconds * 1000) {
      for (let i = 0; i < batch; i++) leader.raw.propose(payload);
      // Deliver until this batch commits; a heartbeat tick now and then keeps the leader's quorum fresh.
      for (let round = 0; round < 4; round++) deliver(nodes, step(nodes));
      if (++ticks % 64 === 0) for (const n of nodes.values()) n.raw.tick();
    }
    const elapsed = (performance.now() - start) / 1000;
    results.push({ batch, entriesPerSec: Math.round((leader.applied - appliedBefore) / elapsed) });
  }
  return results;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log('3 RawNodes, MemoryStorage, in-memory transport, 64-byte entries; committed entries/s at the leader');
  console.table(run());
}
