/**
 * Random lock histories from a correct server, and single-reply mutations of
 * them, for testing the checkers: a correct history must always pass, and a
 * mutated one should mostly fail.
 */

import { LockStateMachine } from '../../../src/lock/machine.js';
import type { Durability, LockInfoOutput, LockInput, LockOp, LockOutput } from './history.js';

function input(kind: LockInput['kind'], owner: string, ttlMs: number, durability: Durability, resource: string): LockInput {
  if (kind === 'get') return { kind, resource, durability };
  if (kind === 'unlock') return { kind, resource, owner, durability };
  return { kind, resource, owner, ttlMs, durability };
}

/** Deterministic 32-bit generator (xorshift) so every run and failure reproduces from its seed. */
export function rng(seed: number): (n: number) => number {
  let x = (seed * 2654435761) >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

export interface GenerateOptions {
  seed: number;
  ops: number;
  clients: number;
  resources: number;
  /** Percent of ops whose reply is lost. */
  lostPercent: number;
  /** Record logTime on every op that took effect (as the simulator can). */
  logTime: boolean;
}

/** An op and the instant a correct server applies it at (undefined: never). */
export interface Scheduled {
  readonly op: LockOp;
  readonly at: number | undefined;
}

/**
 * A correct server: each op takes effect atomically at a distinct random
 * instant inside its interval, applied by the production lock state machine,
 * which is an independent implementation of the same contract. Clients run
 * one op at a time; after a lost reply a client moves on, and the lost op took
 * effect (later) or not at all.
 */
export function generate(options: GenerateOptions): LockOp[] {
  const random = rng(options.seed);
  const freeAt = Array.from({ length: options.clients }, () => random(50));
  const rows: Scheduled[] = [];
  const taken = new Set<number>();
  for (let id = 0; id < options.ops; id++) {
    const client = freeAt.indexOf(Math.min(...freeAt));
    const call = freeAt[client]! + random(20);
    const ret = call + 20 + random(200);
    freeAt[client] = ret;
    const lost = random(100) < options.lostPercent;
    const at = lost && random(2) === 0 ? undefined : freeInstant(taken, call, lost ? ret + 300 : ret, random);
    const input = randomInput(random, `c${client}`, options.resources);
    rows.push({ op: { id, client: `c${client}`, call, ret: lost ? undefined : ret, input, output: undefined }, at });
  }
  const ops = serveInOrder(rows);
  if (!options.logTime) return ops;
  return ops.map((op, i) => (rows[i]!.at === undefined ? op : { ...op, logTime: rows[i]!.at }));
}

function freeInstant(taken: Set<number>, lo: number, hi: number, random: (n: number) => number): number {
  const start = lo + random(hi - lo + 1);
  for (let i = 0; i <= hi - lo; i++) {
    const candidate = lo + ((start - lo + i) % (hi - lo + 1));
    if (!taken.has(candidate)) {
      taken.add(candidate);
      return candidate;
    }
  }
  throw new Error(`no free instant in [${lo}, ${hi}]`);
}

function randomInput(random: (n: number) => number, client: string, resources: number): LockInput {
  // Owners are mostly the client itself, sometimes another client's name, so
  // re-locks by the holder and ops by non-holders both happen.
  const owner = random(5) === 0 ? `c${random(4)}` : client;
  const resource = `r${random(resources)}`;
  const durability: Durability = random(4) === 0 ? 'ephemeral' : 'persistent';
  const ttlMs = 50 + random(600);
  const roll = random(100);
  const kind = roll < 40 ? 'lock' : roll < 60 ? 'unlock' : roll < 75 ? 'extend' : 'get';
  return input(kind, owner, ttlMs, durability, resource);
}

/**
 * Applies the scheduled ops to the production lock state machine in instant
 * order and fills in the replies of the answered ones (same order as rows).
 */
export function serveInOrder(rows: readonly Scheduled[]): LockOp[] {
  const machine = new LockStateMachine();
  const outputs = new Map<LockOp, LockOutput>();
  const byInstant = rows.filter((row) => row.at !== undefined).sort((a, b) => a.at! - b.at!);
  for (const { op, at } of byInstant) outputs.set(op, serve(machine, op.input, at!));
  return rows.map(({ op, at }) => {
    if (op.ret !== undefined && at === undefined) throw new Error(`op #${op.id} has a reply but never ran`);
    return { ...op, output: op.ret === undefined ? undefined : outputs.get(op) };
  });
}

function serve(machine: LockStateMachine, input: LockInput, nowMs: number): LockOutput {
  switch (input.kind) {
    case 'lock': return machine.lock(input.durability, input.resource, input.owner, input.ttlMs, nowMs);
    case 'unlock': return machine.unlock(input.durability, input.resource, input.owner, nowMs);
    case 'extend': return machine.extend(input.durability, input.resource, input.owner, input.ttlMs, nowMs);
    case 'get': return machine.info(input.durability, input.resource, nowMs);
  }
}

/** Changes one reply into a different reply of the same type. */
export function mutate(op: LockOp, random: (n: number) => number): LockOp {
  const output = op.output;
  let next: LockOutput;
  if (op.input.kind === 'unlock') next = !output;
  else if (op.input.kind === 'get') next = mutateInfo(output as LockInfoOutput | null, random);
  else if (output === null) next = BigInt(random(4));
  else next = random(2) === 0 ? null : (output as bigint) + (random(2) === 0 ? 1n : -1n);
  return { ...op, output: next };
}

function mutateInfo(output: LockInfoOutput | null, random: (n: number) => number): LockInfoOutput | null {
  if (output === null) return { owner: `c${random(4)}`, token: BigInt(random(4)), remainingMs: 1 + random(300) };
  switch (random(4)) {
    case 0: return null;
    case 1: return { ...output, owner: `${output.owner}x` };
    case 2: return { ...output, token: output.token + 1n };
    default: return { ...output, remainingMs: output.remainingMs + (random(2) === 0 ? 1 : -1) * (1 + random(5)) };
  }
}
