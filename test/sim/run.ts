/**
 * One full simulated run: boot, safety phase under faults, liveness phase
 * after healing, convergence, then the final checks. The result carries the
 * trace hash (the same seed must give the same hash) and every violation.
 */
import { randomOptions, type SimOptions } from './options.js';
import { Simulator } from './simulator.js';

export interface SimResult {
  seed: number;
  ok: boolean;
  violations: string[];
  traceHash: string;
  trace: string[];
  events: number;
  messages: number;
  simMs: number;
  wallMs: number;
  ops: { started: number; replies: number; unknown: number; acked: number };
  crashes: number;
  /** Restarts whose WAL open truncated a torn tail. */
  tornTails: number;
  elections: number;
  committed: number;
  lin: boolean | 'unknown' | 'skipped';
  options: SimOptions;
}

/** Runs the seed's random scenario. */
export async function runSeed(seed: number, overrides: Partial<SimOptions> = {}): Promise<SimResult> {
  const sim = new Simulator(randomOptions(seed, overrides));
  const started = performance.now();
  await sim.boot();
  sim.clients.start();
  sim.startFaults();
  await sim.runUntil(sim.options.safetyMs);
  await livenessPhase(sim);
  return finish(sim, started);
}

/**
 * Heals everything, then requires: every op pending at the heal gets its
 * answer, every client completes one more op, and all nodes converge on the
 * leader's commit index, all within the tick budget.
 */
export async function livenessPhase(sim: Simulator): Promise<void> {
  if (sim.violations.length > 0) return;
  sim.phase = 'liveness';
  sim.healAll();
  const pending = sim.clients.enterLiveness();
  const budget = sim.options.livenessBudgetMs;
  const deadline = sim.now + budget;
  const answered = () => pending.every((op) => op.finished) && sim.clients.list.every((c) => c.repliesSinceHeal > 0 || !c.active);
  if (!(await sim.runUntilTrue(answered, budget, `answers to ${pending.length} pending ops and one op per client`))) return;
  sim.clients.stop();
  sim.phase = 'converge';
  await sim.runUntilTrue(() => converged(sim), Math.max(deadline - sim.now, 10 * sim.options.tickMs * sim.options.electionTicks),
    'convergence of every node on the leader\'s commit index');
}

function converged(sim: Simulator): boolean {
  if (sim.clients.inflight.size > 0) return false;
  const leader = sim.leader();
  if (leader === undefined) return false;
  const { commit, term, lastIndex } = leader.replica!.raw.status();
  // Commit must reach the leader's whole log, which ends in its own term: nothing older is left pending.
  // (An entry a snapshot covers is gone from `log`; the leader's last entry is then still its term's.)
  const lastTerm = leader.log[commit]?.term ?? (commit <= leader.covered ? term : undefined);
  if (commit !== lastIndex || lastTerm !== term) return false;
  return sim.nodes.every((n) => n.status === 'up' && n.replica!.appliedIndex === commit);
}

export function finish(sim: Simulator, started: number): SimResult {
  sim.phase = 'done';
  let lin: SimResult['lin'] = 'skipped';
  if (sim.violations.length === 0) {
    sim.checks.checkAckedWrites();
    sim.checks.checkStates();
    lin = sim.checks.checkHistory().linOk;
  }
  return {
    seed: sim.options.seed,
    ok: sim.violations.length === 0,
    violations: [...sim.violations],
    traceHash: sim.traceHash,
    trace: sim.lines,
    events: sim.events,
    messages: sim.messages,
    simMs: Math.round(sim.now),
    wallMs: Math.round(performance.now() - started),
    ops: { started: sim.clients.started, replies: sim.clients.replies, unknown: sim.clients.unknown, acked: sim.clients.acked.length },
    crashes: sim.nodes.reduce((sum, n) => sum + n.crashes, 0),
    tornTails: sim.tornTails,
    elections: sim.checks.elections,
    committed: sim.checks.committedCount,
    lin,
    options: sim.options,
  };
}

export function reproduceLine(seed: number): string {
  return `reproduce with: npm run sim -- --seed ${seed}`;
}
