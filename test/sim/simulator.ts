/**
 * The deterministic simulator: N production replicas (raft/ core, WAL, lock
 * state machine) over per-node simulated disks, a simulated network and
 * drifting node clocks, all driven by one event queue in simulated time.
 *
 * Determinism: nothing reads real time or global randomness. Replica and
 * Wal are asynchronous, but every promise they wait on resolves either in a
 * microtask (MemoryFs) or from an event of this queue (fsync latency), so
 * after each event the loop lets the microtask queue drain (one macrotask
 * hop) before taking the next one. The same seed therefore replays the same
 * run, event for event; the trace hash proves it.
 */
import { Replica } from '../../src/cluster/replica.js';
import { LockStateMachine } from '../../src/lock/machine.js';
import { EPHEMERAL_TERM_TOKENS } from '../../src/lock/service.js';
import { MemoryFs, SnapshotStore, Wal, type WalRecord } from '../../src/storage/index.js';
import type { Entry, Message } from '../../raft/types.js';
import { EventQueue } from './events.js';
import { Prng, fnv1a, streamFor } from './prng.js';
import { SimFs } from './sim-fs.js';
import type { SimOptions } from './options.js';
import { Clients } from './clients.js';
import { Checks } from './checks.js';

export type NodeStatus = 'up' | 'down' | 'starting';

export interface SimNode {
  readonly id: string;
  readonly index: number;
  readonly fs: MemoryFs;
  status: NodeStatus;
  /** Bumped at every crash: callbacks of an older incarnation are ignored. */
  incarnation: number;
  replica: Replica | null;
  machine: LockStateMachine | null;
  /** Paused (SIGSTOP, a long GC) until this simulated instant. */
  pausedUntil: number;
  /** Work that arrived while paused (messages, client requests), run in order on resume. */
  deferred: (() => void)[];
  /** Local clock: base + (now - t0) * rate. */
  clockBase: number;
  clockT0: number;
  rate: number;
  lastTickLocal: number;
  ticking: boolean;
  /** This node's log as written to its WAL (index → entry), rebuilt from replay on restart. */
  log: (Entry | undefined)[];
  /** Entries up to here are covered by a snapshot the node installed or restarted from (not in `log`). */
  covered: number;
  appliedSeen: number;
  wasLeader: boolean;
  /** Term of this node's latest leadership, as its Raft core reported it. */
  leaderTerm: number;
  /** Log time of each proposal this incarnation made, by log index (reads clamp to the first pending one). */
  proposed: Map<number, number>;
  /** Overrides the fsync latency (named scenarios). */
  syncMsOverride: number | null;
  crashes: number;
}

export class SimViolation extends Error {
  override readonly name = 'SimViolation';
}

export type Phase = 'safety' | 'liveness' | 'converge' | 'done';

/** Messages beyond this many in flight are dropped, as a full socket buffer would. */
const IN_FLIGHT_MAX = 100_000;
/** Catch-up ticks delivered at once after a stall. */
const CATCH_UP_TICKS_MAX = 10_000;

export class Simulator {
  now = 0;
  phase: Phase = 'safety';
  readonly queue = new EventQueue();
  readonly nodes: SimNode[] = [];
  readonly violations: string[] = [];
  readonly lines: string[] = [];
  readonly clients: Clients;
  readonly checks: Checks;
  events = 0;
  messages = 0;
  tornTails = 0;
  private hash = 0x811c9dc5;
  private readonly net: Prng;
  private readonly faultRng: Prng;
  private readonly diskRng: Prng;
  /** Directed links cut, with a count so overlapping partitions heal independently. */
  private readonly blocked = new Map<string, number>();
  private dropP: number;
  private dupP: number;
  private inFlight = 0;
  private faultsOn = false;
  /** Named scenarios: only this node may stand for election (null: any node). */
  private campaigner: string | null = null;
  /** Named scenarios: messages this matches are lost (null: none). */
  private dropRule: ((m: Message) => boolean) | null = null;

  constructor(readonly options: SimOptions) {
    const seed = options.seed;
    this.net = streamFor(seed, 'net');
    this.faultRng = streamFor(seed, 'faults');
    this.diskRng = streamFor(seed, 'disk');
    this.dropP = options.net.dropP;
    this.dupP = options.net.dupP;
    const clockRng = streamFor(seed, 'clocks');
    for (let i = 0; i < options.nodes; i++) {
      this.nodes.push({
        id: `n${i + 1}`, index: i, fs: new MemoryFs(), status: 'down', incarnation: 0, replica: null, machine: null,
        pausedUntil: 0, deferred: [], clockBase: clockRng.int(0, 10_000), clockT0: 0,
        rate: 1 + clockRng.real(-options.driftMax, options.driftMax), lastTickLocal: 0, ticking: false,
        log: [], covered: 0, appliedSeen: 0, wasLeader: false, leaderTerm: 0, proposed: new Map(), syncMsOverride: null, crashes: 0,
      });
    }
    this.clients = new Clients(this);
    this.checks = new Checks(this);
  }

  get traceHash(): string {
    return this.hash.toString(16).padStart(8, '0');
  }

  /** Adds a line to the trace (hashed always, kept when options.keepTrace). */
  trace(line: string): void {
    this.hash = fnv1a(line, fnv1a(String(Math.round(this.now * 1000)), this.hash));
    if (this.options.keepTrace) this.lines.push(`${this.now.toFixed(3).padStart(10)} ${line}`);
  }

  violation(message: string): void {
    this.trace(`VIOLATION ${message}`);
    this.violations.push(`[t=${this.now.toFixed(3)}ms] ${message}`);
  }

  schedule(delayMs: number, run: () => void): void {
    this.queue.push(this.now + Math.max(0, delayMs), run);
  }

  // ---------------------------------------------------------------- running

  /** Runs events up to `untilMs` (or until stop() holds, checked between events), then sets now to it. */
  async runUntil(untilMs: number, stop?: () => boolean): Promise<void> {
    while (this.violations.length === 0) {
      if (stop?.() === true) return;
      const next = this.queue.peekTime();
      if (next === undefined || next > untilMs) {
        this.now = Math.max(this.now, untilMs);
        return;
      }
      const event = this.queue.pop()!;
      this.now = event.time;
      this.events++;
      try {
        event.run();
      } catch (error) {
        this.violation(`exception: ${describeError(error)}`);
      }
      await settle();
      this.checks.observe();
    }
  }

  async runFor(ms: number, stop?: () => boolean): Promise<void> {
    await this.runUntil(this.now + ms, stop);
  }

  /** Runs until cond() holds; a violation if it does not within maxMs. */
  async runUntilTrue(cond: () => boolean, maxMs: number, what: string): Promise<boolean> {
    await this.runFor(maxMs, cond);
    if (cond()) return true;
    if (this.violations.length === 0) this.violation(`liveness: ${what} did not happen within ${maxMs} ms`);
    return false;
  }

  /** Opens every node for the first time. */
  async boot(): Promise<void> {
    for (const node of this.nodes) this.startNode(node);
    await settle();
    await this.runFor(0);
  }

  // ------------------------------------------------------------------ clocks

  localExact(node: SimNode): number {
    return node.clockBase + (this.now - node.clockT0) * node.rate;
  }

  /** The node's monotonic clock in whole ms (what the replica sees). */
  clock(node: SimNode): number {
    return Math.floor(this.localExact(node));
  }

  setRate(node: SimNode, rate: number): void {
    node.clockBase = this.localExact(node);
    node.clockT0 = this.now;
    node.rate = rate;
    this.trace(`${node.id} clock rate ${rate.toFixed(4)}`);
  }

  // ------------------------------------------------------------------- nodes

  isPaused(node: SimNode): boolean {
    return node.pausedUntil > this.now;
  }

  /** Opens the node's WAL and replica from its disk; the node is 'up' once both are open. */
  startNode(node: SimNode): void {
    node.status = 'starting';
    const incarnation = node.incarnation;
    this.trace(`${node.id} start (incarnation ${incarnation})`);
    void this.open(node, incarnation).catch((error: unknown) => {
      if (node.incarnation !== incarnation) return;
      this.violation(`${node.id} failed to restart from its disk: ${describeError(error)}`);
    });
  }

  private async open(node: SimNode, incarnation: number): Promise<void> {
    const fs = new SimFs(node.fs, () => this.syncDelay(node, incarnation));
    const { wal, groups, report } = await Wal.open({ fs, dir: `/${node.id}/wal` });
    if (node.incarnation !== incarnation) return;
    if (report.truncatedTail !== null) {
      this.tornTails++;
      this.trace(`${node.id} wal truncated a torn tail`);
    }
    const replay = groups.get(0);
    node.log = [];
    node.proposed = new Map();
    for (const entry of replay?.entries ?? []) node.log[entry.index] = entry;
    const machine = new LockStateMachine();
    const observed = {
      append: (records: readonly WalRecord[]) => {
        if (node.incarnation === incarnation) this.noteAppend(node, records);
        return wal.append(records);
      },
      compact: (group: number, index: number) => wal.compact(group, index),
    } as unknown as Wal;
    const voters = this.nodes.map((n) => n.id);
    const snapshotEvery = this.options.snapshotEvery;
    const snapshots = snapshotEvery === null ? undefined : await SnapshotStore.open({ fs, dir: `/${node.id}/snap` });
    if (node.incarnation !== incarnation) return;
    const replica = await Replica.open({
      id: node.id, group: 0, conf: { voters, learners: [] }, wal: observed, replay, machine, snapshots,
      snapshotPolicy: snapshotEvery === null ? undefined : { minEntries: snapshotEvery, tableRatio: 0, trailingEntries: 5 },
      clock: () => this.clock(node),
      rng: streamFor(this.options.seed, `raft ${node.id} ${incarnation}`).fn,
      send: (messages) => {
        if (node.incarnation === incarnation && node.status === 'up') this.send(node, messages);
      },
      raft: { electionTicks: this.options.electionTicks, heartbeatTicks: 1, maxSizePerMsg: this.options.msgBytesMax },
      readStalenessMs: this.options.readStalenessMs,
      // As the server does: EPHEMERAL locks live with the leader, tokens from term x 2^32.
      onLeadership: (leader, term) => machine.resetEphemeral(leader ? term * EPHEMERAL_TERM_TOKENS : 0),
      onFatal: (error) => {
        if (node.incarnation === incarnation) this.violation(`${node.id} replica failed: ${describeError(error)}`);
      },
    });
    if (node.incarnation !== incarnation) return;
    this.watchReady(node, replica, incarnation);
    node.replica = replica;
    node.machine = machine;
    node.status = 'up';
    node.appliedSeen = replica.appliedIndex;
    node.covered = replica.snapshotIndex;
    node.wasLeader = false;
    node.lastTickLocal = this.localExact(node);
    this.trace(`${node.id} up (log ${replica.raw.status().lastIndex}, commit ${replica.raw.status().commit})`);
    this.scheduleTick(node, incarnation);
  }

  /** Sees every Ready the replica takes from its core, to catch a leadership as the core reports it. */
  private watchReady(node: SimNode, replica: Replica, incarnation: number): void {
    const raw = replica.raw;
    const ready = raw.ready.bind(raw);
    raw.ready = () => {
      const rd = ready();
      if (rd.softState?.role === 'leader' && node.incarnation === incarnation) this.checks.raftLeader(node, raw.status().term);
      return rd;
    };
  }

  private noteAppend(node: SimNode, records: readonly WalRecord[]): void {
    for (const record of records) {
      if (record.type === 'snapshot') {
        // An installed snapshot replaces the log it covers, and all of it if the log conflicts.
        if (node.log[record.index]?.term !== record.term) node.log = [];
        else node.log.length = Math.max(node.log.length, record.index + 1);
        for (let i = 0; i <= record.index; i++) node.log[i] = undefined;
        if (record.index > node.covered) node.covered = record.index;
        continue;
      }
      if (record.type !== 'entries' || record.entries.length === 0) continue;
      node.log.length = record.entries[0]!.index;
      for (const entry of record.entries) node.log[entry.index] = entry;
    }
  }

  private syncDelay(node: SimNode, incarnation: number): Promise<void> {
    const [lo, hi] = this.options.syncMs;
    const ms = node.syncMsOverride ?? this.diskRng.real(lo, hi);
    return new Promise((resolve) => {
      this.schedule(ms, () => {
        // A crash while the fsync was in flight: the process is gone, nothing resumes.
        if (node.incarnation !== incarnation) return;
        // A paused process sees its I/O complete only when it runs again.
        if (this.isPaused(node)) node.deferred.push(resolve);
        else resolve();
      });
    });
  }

  private scheduleTick(node: SimNode, incarnation: number): void {
    const nextLocal = node.lastTickLocal + this.options.tickMs;
    const delay = (nextLocal - this.localExact(node)) / node.rate;
    node.ticking = true;
    this.schedule(Math.max(delay, 0.001), () => this.tickEvent(node, incarnation));
  }

  private tickEvent(node: SimNode, incarnation: number): void {
    if (node.incarnation !== incarnation || node.status !== 'up') return;
    if (this.isPaused(node)) {
      node.ticking = false;
      return;
    }
    const replica = node.replica!;
    const elapsed = this.localExact(node) - node.lastTickLocal;
    let due = Math.floor(elapsed / this.options.tickMs + 1e-9);
    if (!this.options.tickCatchUp) due = Math.min(due, 1);
    due = Math.min(due, CATCH_UP_TICKS_MAX);
    for (let i = 0; i < due; i++) replica.tick();
    node.lastTickLocal = this.options.tickCatchUp
      ? node.lastTickLocal + due * this.options.tickMs
      : this.localExact(node);
    this.scheduleTick(node, incarnation);
  }

  /** Power loss: un-fsynced writes are lost or torn; replies in flight are lost. */
  crash(node: SimNode, downMs: number | null): void {
    if (node.status === 'down') return;
    node.incarnation++;
    node.crashes++;
    node.status = 'down';
    node.fs.crash(streamFor(this.options.seed, `crash ${node.id} ${node.incarnation}`).fn);
    node.replica = null;
    node.machine = null;
    node.pausedUntil = 0;
    node.deferred = [];
    node.ticking = false;
    node.wasLeader = false;
    this.trace(`${node.id} CRASH${downMs === null ? '' : ` for ${Math.round(downMs)} ms`}`);
    this.clients.nodeCrashed(node);
    if (downMs === null) return;
    const incarnation = node.incarnation;
    this.schedule(downMs, () => {
      if (node.status === 'down' && node.incarnation === incarnation) this.startNode(node);
    });
  }

  restart(node: SimNode): void {
    if (node.status === 'down') this.startNode(node);
  }

  pause(node: SimNode, ms: number): void {
    if (node.status !== 'up' || this.isPaused(node)) return;
    node.pausedUntil = this.now + ms;
    this.trace(`${node.id} PAUSE for ${Math.round(ms)} ms`);
    const incarnation = node.incarnation;
    const until = node.pausedUntil;
    this.schedule(ms, () => {
      if (node.incarnation === incarnation && node.pausedUntil === until) this.resume(node);
    });
  }

  resume(node: SimNode): void {
    node.pausedUntil = 0;
    this.trace(`${node.id} resume`);
    if (node.status !== 'up') return;
    // The tick timer fires first after a stall (and catches up); then queued input is read.
    if (!node.ticking) this.tickEvent(node, node.incarnation);
    const work = node.deferred;
    node.deferred = [];
    for (const run of work) run();
  }

  // ----------------------------------------------------------------- network

  private send(from: SimNode, messages: Message[]): void {
    for (const m of messages) {
      const to = this.nodeById(m.to);
      if (to === undefined) {
        this.violation(`${from.id} sent ${m.type} to unknown node ${m.to}`);
        continue;
      }
      this.messages++;
      if (this.isBlocked(m.from, m.to) || this.scriptDrops(m) || this.net.chance(this.dropP) || this.inFlight >= IN_FLIGHT_MAX) continue;
      this.transmit(m, to);
      if (this.net.chance(this.dupP)) this.transmit(m, to);
    }
  }

  private transmit(m: Message, to: SimNode): void {
    const [lo, hi] = this.options.net.latencyMs;
    this.inFlight++;
    this.schedule(this.net.real(lo, hi), () => {
      this.inFlight--;
      this.deliver(m, to);
    });
  }

  private deliver(m: Message, to: SimNode): void {
    if (this.isBlocked(m.from, m.to) || this.scriptDrops(m) || to.status !== 'up') return;
    const incarnation = to.incarnation;
    const step = () => {
      if (to.incarnation !== incarnation || to.status !== 'up') return;
      this.trace(`${m.from}>${m.to} ${describeMessage(m)}`);
      to.replica!.step(m);
    };
    if (this.isPaused(to)) to.deferred.push(step);
    else step();
  }

  nodeById(id: string): SimNode | undefined {
    return this.nodes.find((n) => n.id === id);
  }

  isBlocked(from: string, to: string): boolean {
    return (this.blocked.get(`${from}>${to}`) ?? 0) > 0;
  }

  /** Cuts the directed links; heals them after ms (null: until healAll). */
  cut(links: [string, string][], ms: number | null): void {
    for (const [a, b] of links) this.blocked.set(`${a}>${b}`, (this.blocked.get(`${a}>${b}`) ?? 0) + 1);
    this.trace(`CUT ${links.map(([a, b]) => `${a}>${b}`).join(' ')}${ms === null ? '' : ` for ${Math.round(ms)} ms`}`);
    if (ms === null) return;
    this.schedule(ms, () => {
      for (const [a, b] of links) {
        const key = `${a}>${b}`;
        const left = (this.blocked.get(key) ?? 0) - 1;
        if (left > 0) this.blocked.set(key, left);
        else this.blocked.delete(key);
      }
      this.trace(`MEND ${links.map(([a, b]) => `${a}>${b}`).join(' ')}`);
    });
  }

  /** A symmetric partition between two sides. */
  partition(sideA: string[], sideB: string[], ms: number | null): void {
    const links: [string, string][] = [];
    for (const a of sideA) for (const b of sideB) links.push([a, b], [b, a]);
    this.cut(links, ms);
  }

  isolate(id: string, ms: number | null): void {
    this.partition([id], this.nodes.map((n) => n.id).filter((n) => n !== id), ms);
  }

  /**
   * Named scenarios choose who stands for election: the (pre-)vote requests
   * of every other node are lost (null: any node may campaign).
   */
  onlyCampaigner(id: string | null): void {
    this.campaigner = id;
    this.trace(`SCRIPT campaigner ${id ?? 'any'}`);
  }

  /** Named scenarios script who hears what: every message `rule` matches is lost, when sent and when delivered. */
  dropWhen(rule: ((m: Message) => boolean) | null, what = 'nothing'): void {
    this.dropRule = rule;
    this.trace(`SCRIPT drop ${what}`);
  }

  private scriptDrops(m: Message): boolean {
    if (this.campaigner !== null && m.from !== this.campaigner && (m.type === 'MsgVote' || m.type === 'MsgPreVote')) return true;
    return this.dropRule?.(m) === true;
  }

  /** Liveness phase: every link mended, nothing dropped, every node running. */
  healAll(): void {
    this.faultsOn = false;
    this.blocked.clear();
    this.campaigner = null;
    this.dropRule = null;
    this.dropP = 0;
    this.dupP = 0;
    this.trace('HEAL all');
    for (const node of this.nodes) {
      if (node.status === 'down') this.startNode(node);
      else if (this.isPaused(node)) this.resume(node);
    }
  }

  setLossy(dropP: number, dupP: number): void {
    this.dropP = dropP;
    this.dupP = dupP;
  }

  // ------------------------------------------------------------------ faults

  startFaults(): void {
    if (this.options.faults === null) return;
    this.faultsOn = true;
    this.schedule(this.options.faults.everyMs, () => this.faultEvent());
  }

  private faultEvent(): void {
    const f = this.options.faults;
    if (!this.faultsOn || f === null) return;
    const r = this.faultRng;
    const up = this.nodes.filter((n) => n.status === 'up');
    const down = this.nodes.length - up.length;
    if (up.length > 0 && down < f.downMax && r.chance(f.crashP)) this.crash(r.pick(up), r.real(...f.downMs));
    if (up.length > 0 && r.chance(f.pauseP)) this.pause(r.pick(up), r.real(...f.pauseMs));
    if (r.chance(f.partitionP)) this.randomPartition(r.real(...f.partitionMs));
    if (r.chance(f.oneWayP)) {
      const [a, b] = r.shuffle(this.nodes.map((n) => n.id));
      this.cut([[a!, b!]], r.real(...f.partitionMs));
    }
    if (r.chance(f.driftP)) this.setRate(r.pick(this.nodes), 1 + r.real(-this.options.driftMax, this.options.driftMax));
    this.schedule(f.everyMs, () => this.faultEvent());
  }

  private randomPartition(ms: number): void {
    const ids = this.faultRng.shuffle(this.nodes.map((n) => n.id));
    const cut = this.faultRng.int(1, ids.length - 1);
    this.partition(ids.slice(0, cut), ids.slice(cut), ms);
  }

  // ------------------------------------------------------------------ status

  /** The leader with the highest term among running nodes, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    let bestTerm = -1;
    for (const node of this.nodes) {
      if (node.status !== 'up' || !node.replica!.isLeader) continue;
      const term = node.replica!.raw.status().term;
      if (term > bestTerm) {
        best = node;
        bestTerm = term;
      }
    }
    return best;
  }
}

/** Lets every microtask chain started by the last event run to completion (one macrotask hop). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return String(error);
}

function describeMessage(m: Message): string {
  switch (m.type) {
    case 'MsgApp':
      return `${m.type} t${m.term} i${m.index}/${m.logTerm} n${m.entries.length} c${m.commit}`;
    case 'MsgAppResp':
      return `${m.type} t${m.term} i${m.index}${m.reject ? ` reject hint ${m.rejectHint}/${m.logTerm}` : ''}`;
    case 'MsgVote':
    case 'MsgPreVote':
      return `${m.type} t${m.term} last ${m.lastLogIndex}/${m.lastLogTerm}`;
    case 'MsgVoteResp':
    case 'MsgPreVoteResp':
      return `${m.type} t${m.term}${m.reject ? ' reject' : ''}`;
    case 'MsgHeartbeat':
      return `${m.type} t${m.term} c${m.commit} r${m.round}`;
    default:
      return `${m.type} t${m.term}`;
  }
}
