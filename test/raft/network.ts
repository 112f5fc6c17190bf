/**
 * A tiny in-test cluster: N RawNodes over MemoryStorage, a message queue
 * with partitions and a drop filter, and a seeded PRNG. Each node's Ready is
 * handled in the contract's order: persist, send, apply, advance.
 */
import { decodeConfChange } from '../../raft/confchange.js';
import type { RaftConfig } from '../../raft/config.js';
import { RawNode } from '../../raft/rawnode.js';
import { MemoryStorage } from '../../raft/storage.js';
import type { ConfState, Entry, Message, NodeId, ReadState, Ready, Snapshot } from '../../raft/types.js';
import { mulberry32 } from '../helpers/random.js';

/** mulberry32: small, fast, good enough for election timeouts and fault choices. */
export const seededRng = mulberry32;

const enc = new TextEncoder();
const dec = new TextDecoder();
export const bytes = (s: string): Uint8Array => enc.encode(s);
export const text = (b: Uint8Array): string => dec.decode(b);

export interface SimNode {
  id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  /** Data of applied normal entries, in order: the test state machine. */
  applied: string[];
  appliedIndex: number;
  conf: ConfState;
  readStates: ReadState[];
  /** Every Ready handled, for tests that inspect ordering. */
  readies: Ready[];
}

export type NodeOptions = Partial<Omit<RaftConfig, 'id' | 'storage' | 'rng'>>;

export class Network {
  readonly nodes = new Map<NodeId, SimNode>();
  /** Messages sent and not yet delivered. */
  queue: Message[] = [];
  /** Directed links that drop everything: "a->b". */
  private readonly cut = new Set<string>();
  /** Extra drop rule, e.g. to lose one kind of message. */
  dropIf: ((m: Message) => boolean) | null = null;
  /** Every message delivered, for tests that count traffic. */
  delivered: Message[] = [];
  readonly rng: () => number;

  constructor(
    ids: NodeId[],
    readonly options: NodeOptions = {},
    seed = 1,
    learners: NodeId[] = [],
  ) {
    this.rng = seededRng(seed);
    const conf = { voters: ids, learners };
    for (const id of [...ids, ...learners]) this.addNode(id, new MemoryStorage(conf));
  }

  /** Starts a node over `storage` (a fresh one for a joiner, the old one for a restart). */
  addNode(id: NodeId, storage: MemoryStorage, options: NodeOptions = {}): SimNode {
    const snap = storage.snapshot();
    const raw = new RawNode({ id, storage, rng: this.rng, ...this.options, ...options });
    const node: SimNode = {
      id, raw, storage, applied: decodeState(snap), appliedIndex: snap.meta.index, conf: snap.meta.conf,
      readStates: [], readies: [],
    };
    this.nodes.set(id, node);
    return node;
  }

  node(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** Crash and restart from storage: everything handed to storage survived (it was "fsync'd"). */
  restart(id: NodeId): SimNode {
    const old = this.node(id);
    this.queue = this.queue.filter((m) => m.to !== id && m.from !== id);
    return this.addNode(id, old.storage);
  }

  remove(id: NodeId): void {
    this.nodes.delete(id);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  partition(...groups: NodeId[][]): void {
    for (const g of groups) {
      for (const a of g) {
        for (const other of this.nodes.keys()) {
          if (!g.includes(other)) {
            this.cut.add(`${a}->${other}`);
            this.cut.add(`${other}->${a}`);
          }
        }
      }
    }
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}->${to}`);
  }

  heal(): void {
    this.cut.clear();
    this.dropIf = null;
  }

  /** Handles every pending Ready of one node: persist, send, apply, advance. */
  handleReady(n: SimNode): void {
    while (n.raw.hasReady()) this.processReady(n, n.raw.ready());
  }

  /** Persist, send, apply, advance: the order the Ready contract requires. */
  processReady(n: SimNode, rd: Ready): void {
    n.readies.push(rd);
    if (rd.snapshot !== undefined) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) this.queue.push(structuredClone(m));
    if (rd.snapshot !== undefined) this.restoreSnapshot(n, rd.snapshot);
    for (const e of rd.committedEntries) this.apply(n, e);
    n.readStates.push(...rd.readStates);
    n.raw.advance(rd);
  }

  private restoreSnapshot(n: SimNode, snap: Snapshot): void {
    n.applied = decodeState(snap);
    n.appliedIndex = snap.meta.index;
    n.conf = snap.meta.conf;
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.appliedIndex + 1) throw new Error(`${n.id} applies ${e.index} after ${n.appliedIndex}`);
    n.appliedIndex = e.index;
    if (e.type === 'conf') n.conf = n.raw.applyConfChange(decodeConfChange(e.data));
    if (e.type === 'normal') n.applied.push(text(e.data));
  }

  /** Handles all readies; returns true if any message was queued. */
  flush(): boolean {
    const before = this.queue.length;
    for (const n of this.nodes.values()) this.handleReady(n);
    return this.queue.length > before;
  }

  deliverable(m: Message): boolean {
    if (!this.nodes.has(m.to) || this.cut.has(`${m.from}->${m.to}`)) return false;
    return this.dropIf === null || !this.dropIf(m);
  }

  /** Delivers queued messages and the ones they cause until the network is quiet. */
  stabilize(maxRounds = 10_000): void {
    this.flush();
    for (let round = 0; this.queue.length > 0; round++) {
      if (round >= maxRounds) throw new Error('network did not quiesce');
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) this.deliverOne(m);
      this.flush();
    }
  }

  deliverOne(m: Message): void {
    if (!this.deliverable(m)) return;
    this.delivered.push(m);
    this.node(m.to).raw.step(m);
  }

  /** Ticks every node `n` times, stabilizing after each tick. */
  tick(n = 1, ids: NodeId[] = [...this.nodes.keys()]): void {
    for (let i = 0; i < n; i++) {
      for (const id of ids) this.node(id).raw.tick();
      this.stabilize();
    }
  }

  /** Ticks until exactly one leader is known to a majority, or fails. */
  elect(maxTicks = 200): NodeId {
    for (let i = 0; i < maxTicks; i++) {
      const l = this.stableLeader();
      if (l !== null) return l;
      this.tick();
    }
    throw new Error('no leader elected');
  }

  /** The leader, if exactly one node leads in the highest term. */
  stableLeader(): NodeId | null {
    const leaders = this.leaders();
    if (leaders.length !== 1) return null;
    const top = Math.max(...[...this.nodes.values()].map((n) => n.raw.status().term));
    const l = leaders[0]!;
    return this.node(l).raw.status().term === top ? l : null;
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.raw.status().role === 'leader').map((n) => n.id);
  }

  propose(id: NodeId, data: string): { index: number; term: number } {
    return this.node(id).raw.propose(bytes(data));
  }
}

/** Snapshot data of the test state machine: the applied commands as JSON (empty = initial state). */
export function encodeState(applied: string[]): Uint8Array {
  return bytes(JSON.stringify(applied));
}

function decodeState(snap: Snapshot): string[] {
  return snap.data.byteLength === 0 ? [] : (JSON.parse(text(snap.data)) as string[]);
}

/** Takes a snapshot at the node's applied index and compacts its log up to `keep` entries behind it. */
export function compact(n: SimNode, keep = 0): void {
  const snap = n.storage.createSnapshot(n.appliedIndex, n.conf, encodeState(n.applied));
  const upTo = snap.meta.index - keep;
  if (upTo > n.storage.firstIndex() - 1) n.storage.compact(upTo);
}

/** A lone RawNode in a cluster of `voters`, stepped by hand. */
export function loneNode(id: NodeId, voters: NodeId[], options: Partial<Omit<RaftConfig, 'id' | 'storage'>> = {}, learners: NodeId[] = []): { raw: RawNode; storage: MemoryStorage } {
  const storage = new MemoryStorage({ voters, learners });
  const raw = new RawNode({ id, storage, rng: () => 0, ...options });
  return { raw, storage };
}

/** Persists and advances every Ready of a lone node; returns the messages it would send. */
export function drain(raw: RawNode, storage: MemoryStorage): Message[] {
  const out: Message[] = [];
  while (raw.hasReady()) {
    const rd = raw.ready();
    if (rd.snapshot !== undefined) storage.applySnapshot(rd.snapshot);
    storage.append(rd.entries);
    if (rd.hardState !== undefined) storage.setHardState(rd.hardState);
    out.push(...rd.messages);
    raw.advance(rd);
  }
  return out;
}
