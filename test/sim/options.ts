/**
 * What one simulated run looks like: cluster size, timing, network and disk
 * behaviour, fault rates and client load. randomOptions() derives all of it
 * from the seed, so a seed names a whole scenario, not only its dice rolls.
 */
import { streamFor } from './prng.js';

export interface NetOptions {
  /** One-way latency of each message, uniform in [min, max] ms: overlapping ranges reorder messages. */
  latencyMs: [number, number];
  dropP: number;
  dupP: number;
}

export interface FaultOptions {
  /** The fault scheduler rolls its dice this often (simulated ms). */
  everyMs: number;
  crashP: number;
  pauseP: number;
  partitionP: number;
  oneWayP: number;
  driftP: number;
  downMs: [number, number];
  pauseMs: [number, number];
  partitionMs: [number, number];
  /** Most nodes down at once (a majority may go down: safety must still hold). */
  downMax: number;
}

export interface SimOptions {
  seed: number;
  nodes: number;
  tickMs: number;
  electionTicks: number;
  /** Clock rate bound: every node clock runs at a rate in [1 - driftMax, 1 + driftMax]. */
  driftMax: number;
  /**
   * Ticks the driver delivers after a stall: the production driver must tick
   * once per tickMs of monotonic time elapsed (catch up), or a paused leader
   * would trust a lease its followers no longer keep. false models a driver
   * that ticks once per timer callback.
   */
  tickCatchUp: boolean;
  safetyMs: number;
  /** After healing: pending client ops must finish and every client must complete one more op within this. */
  livenessBudgetMs: number;
  clients: number;
  resources: number;
  /** During the safety phase a client gives up on an op after this long (outcome unknown). */
  clientTimeoutMs: number;
  thinkMs: [number, number];
  ttlMs: [number, number];
  net: NetOptions;
  /** Latency of each fsync (file or directory), uniform in [min, max] ms. */
  syncMs: [number, number];
  /** null: no random faults (named scenarios inject their own). */
  faults: FaultOptions | null;
  /** Keep every trace line (for --seed); the hash is kept either way. */
  keepTrace: boolean;
  /**
   * The log time a get is evaluated and recorded at. 'replica': the
   * logNowMs Replica.read hands its callback (the leader's running clock).
   * 'pending': that, but no later than the log time of the first entry the
   * leader has not applied yet. 'committed': the log time of the last applied
   * command, which every later leader starts from.
   */
  readInstant: 'replica' | 'pending' | 'committed';
  /**
   * The replica's bound on how stale a read's evaluation time may be (it
   * commits a tick first beyond it); undefined: the production default.
   * Infinity leaves lease reads unguarded, to test the lease alone.
   */
  readStalenessMs: number | undefined;
  /**
   * A get waits until the leader has committed an entry of its own term.
   * Replica.read serves from the leader lease as soon as applied >= commit,
   * but a new leader's commit index may lag what its predecessor committed,
   * so without this guard a fresh leader serves stale reads.
   */
  readGuard: boolean;
  /** Model steps the linearizability search may spend per lock. */
  linStepsMax: number;
  /** Largest MsgApp payload (the Raft core's maxSizePerMsg); undefined: the production default. */
  msgBytesMax: number | undefined;
  /**
   * Snapshot every this many applied entries, keeping a few entries after
   * each, so that snapshots, log compaction and InstallSnapshot to lagging
   * or restarted followers happen under faults; null: no snapshot store.
   */
  snapshotEvery: number | null;
  /** Writes that would change nothing are answered without the log when the replica can (as the server does). */
  answerNoops: boolean;
  /** Share of client ops on EPHEMERAL locks (the leader's memory, gated by Replica.ephemeralAccess). */
  ephemeralShare: number;
}

/** A calm three-node cluster with no faults: the base for named scenarios. */
export function baseOptions(seed: number): SimOptions {
  return {
    seed,
    nodes: 3,
    tickMs: 10,
    electionTicks: 10,
    driftMax: 0.02,
    tickCatchUp: true,
    safetyMs: 5_000,
    livenessBudgetMs: 10_000,
    clients: 3,
    resources: 2,
    clientTimeoutMs: 1_500,
    thinkMs: [5, 200],
    ttlMs: [50, 2_000],
    net: { latencyMs: [1, 5], dropP: 0, dupP: 0 },
    syncMs: [0.2, 2],
    faults: null,
    keepTrace: false,
    linStepsMax: 2_000_000,
    readInstant: 'replica',
    readGuard: false,
    readStalenessMs: undefined,
    msgBytesMax: undefined,
    snapshotEvery: null,
    answerNoops: true,
    ephemeralShare: 0,
  };
}

/** Everything drawn from the seed: cluster size, network quality, fault rates. */
export function randomOptions(seed: number, overrides: Partial<SimOptions> = {}): SimOptions {
  const r = streamFor(seed, 'options');
  const nodes = r.chance(0.6) ? 3 : 5;
  const latencyMax = r.pick([3, 10, 30]);
  const options: SimOptions = {
    ...baseOptions(seed),
    nodes,
    driftMax: r.pick([0, 0.01, 0.05]),
    safetyMs: r.int(20, 40) * 1000,
    clients: r.int(2, 5),
    resources: r.int(1, 3),
    net: {
      latencyMs: [1, latencyMax],
      dropP: r.pick([0, 0.01, 0.05, 0.15]),
      dupP: r.pick([0, 0.01, 0.05]),
    },
    syncMs: r.pick<[number, number]>([[0.1, 1], [0.5, 5], [1, 20]]),
    faults: {
      everyMs: 250,
      crashP: r.pick([0.01, 0.03, 0.08]),
      pauseP: r.pick([0, 0.02, 0.05]),
      partitionP: r.pick([0, 0.02, 0.06]),
      oneWayP: r.pick([0, 0.02, 0.05]),
      driftP: 0.05,
      downMs: [50, r.pick([500, 3000])],
      pauseMs: [20, r.pick([300, 2000])],
      partitionMs: [100, r.pick([1000, 5000])],
      downMax: r.chance(0.3) ? nodes : Math.floor(nodes / 2),
    },
    snapshotEvery: r.pick([null, 20, 60]),
    ephemeralShare: r.pick([0, 0.3, 0.6]),
  };
  return { ...options, ...overrides };
}
