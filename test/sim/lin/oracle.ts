/**
 * A brute-force linearizability oracle for tiny PERSISTENT histories, to test
 * the checker against: it tries every order and every whole-millisecond
 * instant for every op, and replays each candidate on the production lock
 * state machine. Exponential, so only for a handful of ops with short
 * intervals; its value is that it shares no code with the checker or model.
 */

import { LockStateMachine } from '../../../src/lock/machine.js';
import type { LockInput, LockOp, LockOutput } from './history.js';

interface Placed {
  readonly op: LockOp;
  readonly at: number;
}

/** True if some order and instants reproduce every answered reply. */
export function bruteForceLinearizable(ops: readonly LockOp[]): boolean {
  if (ops.some((op) => op.input.durability !== 'persistent')) {
    throw new RangeError('the oracle models PERSISTENT locks only (EPHEMERAL tokens and failover loss differ)');
  }
  // An unanswered op placed after every answered instant cannot change a
  // reply, so instants past the last reply (or log time) need not be tried.
  const horizon = Math.max(0, ...ops.map((op) => op.logTime ?? op.ret ?? op.call));
  return extend([], ops, horizon);
}

function extend(placed: Placed[], rest: readonly LockOp[], horizon: number): boolean {
  if (rest.every((op) => op.ret === undefined)) return true;
  const clock = placed.length === 0 ? -Infinity : placed[placed.length - 1]!.at;
  for (const op of rest) {
    const lo = Math.max(clock, op.logTime ?? op.call);
    const hi = op.logTime ?? op.ret ?? horizon;
    const others = rest.filter((other) => other !== op);
    for (let at = lo; at <= hi; at++) {
      const next = [...placed, { op, at }];
      if (replay(next) && extend(next, others, horizon)) return true;
    }
  }
  return false;
}

/** Whether the last placed op's reply matches what the state machine answers after the earlier ones. */
function replay(placed: readonly Placed[]): boolean {
  const machine = new LockStateMachine();
  let output: LockOutput = null;
  for (const { op, at } of placed) output = serve(machine, op.input, at);
  const expected = placed[placed.length - 1]!.op.output;
  return expected === undefined || sameOutput(output, expected);
}

function serve(machine: LockStateMachine, input: LockInput, nowMs: number): LockOutput {
  switch (input.kind) {
    case 'lock': return machine.lock(input.durability, input.resource, input.owner, input.ttlMs, nowMs);
    case 'unlock': return machine.unlock(input.durability, input.resource, input.owner, nowMs);
    case 'extend': return machine.extend(input.durability, input.resource, input.owner, input.ttlMs, nowMs);
    case 'get': return machine.info(input.durability, input.resource, nowMs);
  }
}

function sameOutput(a: LockOutput, b: LockOutput): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return a === b;
  return a.owner === b.owner && a.token === b.token && a.remainingMs === b.remainingMs;
}
