/**
 * Simulated clients: each issues one PERSISTENT lock command at a time
 * against the node it believes leads, follows NotLeader hints, and records
 * what it saw in a history for the checkers.
 *
 * Outcomes: a reply is recorded with its log time; NotLeaderError means the
 * command certainly did not run, so the client retries elsewhere (and drops
 * the op if it gives up); OutcomeUnknownError, a reply lost to a crash, or a
 * timeout while the request may still run leaves the op with no reply.
 *
 * Log time of a write: the replica stamps a proposal with logNow() at the
 * moment propose() is called and applies it at exactly that log time if it
 * ever commits; the client reads the same value just before calling. So the
 * log time is known even when the outcome is not: if the op took effect at
 * all, it took effect then. A get is served at the logNowMs its callback gets.
 */
import type { LockOp as ReplicaOp } from '../../src/lock/commands.js';
import { decodeCommand, encodeCommand } from '../../src/lock/commands.js';
import { HistoryRecorder, type LockInput, type LockOutput } from './lin/history.js';
import type { Prng } from './prng.js';
import { streamFor } from './prng.js';
import type { SimNode, Simulator } from './simulator.js';

export interface ClientOp {
  readonly id: number;
  readonly client: SimClient;
  readonly input: LockInput;
  readonly call: number;
  deadline: number;
  finished: boolean;
  /** Bumped per attempt: callbacks of an older attempt are ignored. */
  attempt: number;
  /** The current attempt reached a leader (or a paused node's socket): it may take effect. */
  mayHaveEffect: boolean;
  logTime: number | undefined;
  node: SimNode | null;
  outcome: 'pending' | 'reply' | 'unknown' | 'no effect';
  output: LockOutput | undefined;
}

export interface SimClient {
  readonly name: string;
  readonly rng: Prng;
  target: number;
  current: ClientOp | null;
  active: boolean;
  /** Ops completed with a reply since the liveness phase began. */
  repliesSinceHeal: number;
}

/** Bytes of an acknowledged write's log entry: it must never be lost. */
export interface AckedWrite {
  readonly opId: number;
  readonly data: Uint8Array;
}

/** Attempts per op before the client gives up (each NotLeader reply is one). */
const ATTEMPTS_MAX = 50;

export class Clients {
  readonly list: SimClient[] = [];
  readonly recorder: HistoryRecorder;
  readonly acked: AckedWrite[] = [];
  readonly inflight = new Set<ClientOp>();
  started = 0;
  replies = 0;
  unknown = 0;

  constructor(private readonly sim: Simulator) {
    this.recorder = new HistoryRecorder(() => sim.now);
    for (let i = 0; i < sim.options.clients; i++) {
      const rng = streamFor(sim.options.seed, `client ${i}`);
      this.list.push({ name: `c${i + 1}`, rng, target: rng.int(0, sim.options.nodes - 1), current: null, active: false, repliesSinceHeal: 0 });
    }
  }

  start(): void {
    for (const c of this.list) {
      c.active = true;
      this.wake(c, c.rng.real(...this.sim.options.thinkMs));
    }
  }

  stop(): void {
    for (const c of this.list) c.active = false;
  }

  /** Liveness phase: no more client-side timeouts; every pending op must get its answer from the cluster. */
  enterLiveness(): ClientOp[] {
    for (const op of this.inflight) op.deadline = Infinity;
    for (const c of this.list) c.repliesSinceHeal = 0;
    return [...this.inflight];
  }

  /** Replies to requests in flight on a crashed node are lost: outcome unknown. */
  nodeCrashed(node: SimNode): void {
    for (const op of [...this.inflight]) {
      if (op.node === node) this.giveUp(op, 'reply lost to a crash');
    }
  }

  /** Issues one op now from a script (named scenarios), against a chosen node. */
  request(client: SimClient, input: LockInput, node: SimNode): ClientOp {
    const op = this.begin(client, input);
    client.target = node.index;
    this.attempt(op);
    return op;
  }

  private wake(c: SimClient, delayMs: number): void {
    this.sim.schedule(delayMs, () => {
      if (c.active && c.current === null) this.attempt(this.begin(c, this.randomInput(c)));
    });
  }

  private begin(c: SimClient, input: LockInput): ClientOp {
    const id = this.recorder.invoke(c.name, input);
    const deadline = this.sim.phase === 'safety' ? this.sim.now + this.sim.options.clientTimeoutMs : Infinity;
    const op: ClientOp = {
      id, client: c, input, call: this.sim.now, deadline, finished: false, attempt: 0, mayHaveEffect: false, logTime: undefined, node: null,
      outcome: 'pending', output: undefined,
    };
    c.current = op;
    this.inflight.add(op);
    this.started++;
    this.sim.trace(`${c.name} #${id} invoke ${describeInput(input)}`);
    if (deadline !== Infinity) {
      this.sim.schedule(deadline - this.sim.now, () => {
        if (!op.finished && op.deadline !== Infinity) this.giveUp(op, 'client timeout');
      });
    }
    return op;
  }

  private randomInput(c: SimClient): LockInput {
    const r = c.rng;
    const resource = `r${r.int(0, this.sim.options.resources - 1)}`;
    const owner = c.name;
    const ttlMs = Math.round(r.real(...this.sim.options.ttlMs));
    const durability = r.next() < this.sim.options.ephemeralShare ? 'ephemeral' : 'persistent';
    const roll = r.next();
    if (roll < 0.4) return { kind: 'lock', resource, owner, ttlMs, durability };
    if (roll < 0.55) return { kind: 'unlock', resource, owner, durability };
    if (roll < 0.7) return { kind: 'extend', resource, owner, ttlMs, durability };
    return { kind: 'get', resource, durability };
  }

  private attempt(op: ClientOp): void {
    op.attempt++;
    op.mayHaveEffect = false;
    op.node = null;
    if (op.attempt > ATTEMPTS_MAX) {
      this.giveUp(op, `${ATTEMPTS_MAX} attempts`);
      return;
    }
    const node = this.sim.nodes[op.client.target]!;
    const attempt = op.attempt;
    // The request reaches the node after a short hop; a down node refuses the connection.
    this.sim.schedule(op.client.rng.real(0.1, 1), () => {
      if (op.finished || op.attempt !== attempt) return;
      if (node.status !== 'up') {
        this.retry(op, null);
        return;
      }
      op.node = node;
      const incarnation = node.incarnation;
      // Runs even if the client has given up by then: a stale request still takes effect.
      const run = () => {
        if (op.attempt !== attempt || node.incarnation !== incarnation || node.status !== 'up') return;
        this.execute(op, node);
      };
      if (this.sim.isPaused(node)) {
        // The request waits in the paused process's socket and runs when it wakes.
        op.mayHaveEffect = op.input.kind !== 'get';
        node.deferred.push(run);
      } else {
        run();
      }
    });
  }

  private execute(op: ClientOp, node: SimNode): void {
    const replica = node.replica!;
    const machine = node.machine!;
    const attempt = op.attempt;
    const input = op.input;
    const current = () => !op.finished && op.attempt === attempt;
    if (input.durability === 'ephemeral') {
      this.executeEphemeral(op, node, current);
      return;
    }
    if (input.kind === 'get') {
      if (this.sim.options.readGuard && replica.isLeader && !committedInTerm(node)) {
        this.sim.schedule(this.sim.options.tickMs / 2, () => {
          if (!current()) return;
          if (node.replica !== replica) this.retry(op, null);
          else if (this.sim.isPaused(node)) node.deferred.push(() => current() && node.replica === replica && this.execute(op, node));
          else this.execute(op, node);
        });
        return;
      }
      replica.read((replicaNowMs) => {
        const logNowMs = this.readInstant(node, replicaNowMs);
        return { info: machine.info('persistent', input.resource, logNowMs), logNowMs };
      }).then(
        ({ info, logNowMs }) => {
          if (!current()) return;
          const output: LockOutput = info === null ? null : { owner: info.owner, token: info.token, remainingMs: info.remainingMs };
          this.reply(op, output, logNowMs);
        },
        (error: unknown) => {
          if (current()) this.failed(op, error);
        },
      );
      return;
    }
    const replicaOp = toReplicaOp(input);
    const leader = replica.isLeader;
    const logTime = replica.logNow();
    op.mayHaveEffect = leader;
    if (leader) {
      op.logTime = logTime;
      this.recorder.setLogTime(op.id, logTime);
    }
    if (leader && this.sim.options.answerNoops) {
      // As the server does: a write that would change nothing is answered from the state if the replica can.
      const answer = replica.answerNoop(replicaOp);
      if (answer !== undefined) {
        // It holds from the log time reads are evaluated at up to the log clock; recorded at the former.
        const at = replica.appliedLogTime;
        op.logTime = at;
        this.recorder.setLogTime(op.id, at);
        this.sim.trace(`${node.id} answers op #${op.id} without the log`);
        this.reply(op, answer as LockOutput, at);
        return;
      }
    }
    const before = leader ? replica.raw.status().lastIndex : 0;
    const proposal = replica.propose(replicaOp);
    if (leader) {
      const after = replica.raw.status().lastIndex;
      if (after === before + 1) node.proposed.set(after, logTime);
    }
    proposal.then(
      (result) => {
        if (!current()) return;
        this.acked.push({ opId: op.id, data: encodeCommand({ logTimeMs: logTime, op: replicaOp }) });
        this.reply(op, result as LockOutput, logTime);
      },
      (error: unknown) => {
        if (current()) this.failed(op, error);
      },
    );
  }

  /**
   * An EPHEMERAL op, as the server's lock service runs it: in the leader's
   * memory at its log clock, once Replica.ephemeralAccess allows (under the
   * lease, past the inherited horizon, within the committed horizon).
   */
  private executeEphemeral(op: ClientOp, node: SimNode, current: () => boolean): void {
    const replica = node.replica!;
    const machine = node.machine!;
    const input = op.input;
    const reach = input.kind === 'lock' || input.kind === 'extend' ? replica.logNow() + input.ttlMs : 0;
    let access: Promise<void> | undefined;
    try {
      access = replica.ephemeralAccess(reach);
    } catch (error) {
      // A request the client gave up on meanwhile is refused with nobody listening.
      if (!current()) return;
      const code = (error as { code?: unknown }).code;
      // Refused before anything ran: a lock-delay is retried like a missing leader.
      if (code === 'RAFTLOCK_ERR_LOCK_DELAY') this.retry(op, null);
      else this.failed(op, error);
      return;
    }
    if (access !== undefined) {
      access.then(
        () => {
          if (!current()) return;
          if (node.replica !== replica || node.status !== 'up') this.retry(op, null);
          else if (this.sim.isPaused(node)) node.deferred.push(() => current() && node.replica === replica && this.executeEphemeral(op, node, current));
          else this.executeEphemeral(op, node, current);
        },
        (error: unknown) => {
          if (current()) this.failed(op, error);
        },
      );
      return;
    }
    const nowMs = replica.logNow();
    if (current()) {
      op.mayHaveEffect = input.kind !== 'get';
      op.logTime = nowMs;
      this.recorder.setLogTime(op.id, nowMs);
    }
    let output: LockOutput;
    switch (input.kind) {
      case 'lock': output = machine.lock('ephemeral', input.resource, input.owner, input.ttlMs, nowMs); break;
      case 'unlock': output = machine.unlock('ephemeral', input.resource, input.owner, nowMs); break;
      case 'extend': output = machine.extend('ephemeral', input.resource, input.owner, input.ttlMs, nowMs); break;
      case 'get': {
        const info = machine.info('ephemeral', input.resource, nowMs);
        output = info === null ? null : { owner: info.owner, token: info.token, remainingMs: info.remainingMs };
        break;
      }
    }
    this.sim.trace(`${node.id} serves op #${op.id} from its EPHEMERAL table`);
    // A stale request still takes effect; only a current one gets its reply.
    if (current()) this.reply(op, output, nowMs);
  }

  /** The log time a get is evaluated at (see SimOptions.readInstant). */
  private readInstant(node: SimNode, replicaNowMs: number): number {
    const mode = this.sim.options.readInstant;
    if (mode === 'replica') return replicaNowMs;
    const replica = node.replica!;
    const applied = replica.appliedIndex;
    if (mode === 'committed') {
      for (let i = applied; i > 1; i--) {
        const stamp = this.stampAt(node, i);
        if (stamp !== undefined) return stamp;
      }
      return 0;
    }
    const last = replica.raw.status().lastIndex;
    for (let i = applied + 1; i <= last; i++) {
      const stamp = this.stampAt(node, i);
      if (stamp !== undefined) return Math.min(stamp, replicaNowMs);
    }
    return replicaNowMs;
  }

  /** Log time of the command at index i of the node's log, if it is a command. */
  private stampAt(node: SimNode, i: number): number | undefined {
    // The WAL copy is the leader's log where it exists; beyond it lie proposals not yet persisted.
    const entry = node.log[i];
    if (entry !== undefined) return entry.type === 'normal' ? decodeCommand(entry.data).logTimeMs : undefined;
    return node.proposed.get(i);
  }

  private failed(op: ClientOp, error: unknown): void {
    const code = (error as { code?: unknown }).code;
    if (code === 'RAFTLOCK_ERR_NOT_LEADER') {
      const hint = (error as { leader?: string | null }).leader ?? null;
      op.mayHaveEffect = false;
      this.retry(op, hint);
      return;
    }
    this.giveUp(op, code === 'RAFTLOCK_ERR_OUTCOME_UNKNOWN' ? 'outcome unknown' : `error ${String(error)}`);
  }

  /** Follows the leader hint (or tries another node) after a short backoff. */
  private retry(op: ClientOp, hint: string | null): void {
    const c = op.client;
    const hinted = hint === null ? undefined : this.sim.nodeById(hint);
    const others = this.sim.nodes.filter((n) => n.index !== c.target);
    c.target = hinted !== undefined && hinted.index !== c.target ? hinted.index : c.rng.pick(others).index;
    op.node = null;
    if (this.sim.now + 5 >= op.deadline) {
      this.giveUp(op, 'client timeout');
      return;
    }
    const attempt = op.attempt;
    this.sim.schedule(c.rng.real(1, 20), () => {
      if (!op.finished && op.attempt === attempt) this.attempt(op);
    });
  }

  private reply(op: ClientOp, output: LockOutput, logTime: number): void {
    this.recorder.setLogTime(op.id, logTime);
    this.recorder.complete(op.id, output);
    op.outcome = 'reply';
    op.output = output;
    this.replies++;
    op.client.repliesSinceHeal++;
    this.sim.trace(`${op.client.name} #${op.id} reply ${describeOutput(output)} log ${logTime}`);
    this.end(op);
  }

  private giveUp(op: ClientOp, why: string): void {
    if (op.input.kind !== 'get' && (op.mayHaveEffect || why === 'outcome unknown' || why === 'reply lost to a crash')) {
      this.recorder.failUnknown(op.id);
      op.outcome = 'unknown';
      this.unknown++;
      this.sim.trace(`${op.client.name} #${op.id} unknown (${why})`);
    } else {
      // A read changes nothing, and a write that never reached a leader never ran.
      this.recorder.failNoEffect(op.id);
      op.outcome = 'no effect';
      this.sim.trace(`${op.client.name} #${op.id} no effect (${why})`);
    }
    this.end(op);
  }

  private end(op: ClientOp): void {
    op.finished = true;
    op.node = null;
    this.inflight.delete(op);
    const c = op.client;
    if (c.current === op) c.current = null;
    if (c.active) this.wake(c, c.rng.real(...this.sim.options.thinkMs));
  }
}

/** The log entry bytes a write op was (or would have been) proposed as, once it reached a leader. */
export function commandBytes(op: ClientOp): Uint8Array | undefined {
  if (op.input.kind === 'get' || op.input.durability === 'ephemeral' || op.logTime === undefined) return undefined;
  return encodeCommand({ logTimeMs: op.logTime, op: toReplicaOp(op.input) });
}

/** The leader's commit index points at an entry of its own term (so it covers everything committed before it). */
function committedInTerm(node: SimNode): boolean {
  const status = node.replica!.raw.status();
  return node.log[status.commit]?.term === status.term;
}

function toReplicaOp(input: Exclude<LockInput, { kind: 'get' }>): ReplicaOp {
  switch (input.kind) {
    case 'lock':
      return { kind: 'lock', durability: input.durability, resource: input.resource, owner: input.owner, ttlMs: input.ttlMs };
    case 'unlock':
      return { kind: 'unlock', durability: input.durability, resource: input.resource, owner: input.owner };
    case 'extend':
      return { kind: 'extend', durability: input.durability, resource: input.resource, owner: input.owner, ttlMs: input.ttlMs };
  }
}

function describeInput(input: LockInput): string {
  const owner = input.kind === 'get' ? '' : ` ${input.owner}`;
  const ttl = input.kind === 'lock' || input.kind === 'extend' ? ` ${input.ttlMs}ms` : '';
  return `${input.kind} ${input.resource}${owner}${ttl}`;
}

function describeOutput(output: LockOutput): string {
  if (output === null) return 'nil';
  if (typeof output === 'object') return `[${output.owner} ${output.token} ${output.remainingMs}ms]`;
  return String(output);
}
