/**
 * Runs a script against one partition's lock state machine: natively when
 * its text is one of the known lock scripts, else in the Lua VM. This is
 * what a script's log entry does when it applies (on every replica, at the
 * entry's log time), and what EVAL_RO does as a read on the leader.
 */
import type { LockStateMachine } from '../lock/machine.js';
import { partitionOfKey } from '../cluster/slots.js';
import { runCall, type CallContext } from './calls.js';
import { knownScript } from './known.js';
import type { ScriptReply } from './reply.js';
import { luaVm, type VmRun } from './vm.js';

/** A script run: what the VM needs (text, KEYS, ARGV, instruction budget), and where and when it runs. */
export interface ScriptRun extends Omit<VmRun, 'host'> {
  /** Log time the script runs at. */
  readonly nowMs: number;
  /** The leader's wall clock when it took the script (SET EXAT/PXAT inside it). */
  readonly wallClockMs: number;
  /** The partition it runs on, of how many: keys it touches must belong to it. */
  readonly partition: number;
  readonly partitions: number;
  /** EVAL_RO: write commands fail. */
  readonly readOnly: boolean;
}

export function runScript(machine: LockStateMachine, run: ScriptRun): ScriptReply {
  const context = callContext(machine, run, run.nowMs, run.readOnly);
  const known = knownScript(run.body);
  if (known !== undefined) {
    const reply = known.native(context, run.keys, run.args);
    if (reply !== undefined) return reply;
  }
  return luaVm().execute({ ...run, host: (argv) => runCall(context, argv) });
}

function callContext(machine: LockStateMachine, run: Omit<ScriptRun, 'nowMs' | 'readOnly'>, nowMs: number, readOnly: boolean): CallContext {
  const { partition, partitions } = run;
  return {
    machine,
    nowMs,
    wallClockMs: run.wallClockMs,
    readOnly,
    isLocal: partitions === 1 ? allLocal : (key) => partitionOfKey(key, partitions) === partition,
  };
}

const allLocal = (): boolean => true;

/** Thrown by a write on the view noopScriptOutcome() gives a native script. */
const WOULD_WRITE = Symbol('would write');

/** Per machine, a view that reads through to it and throws on writes. */
const READ_VIEWS = new WeakMap<LockStateMachine, LockStateMachine>();

/** The write methods a native script may call. */
const WRITES = ['set', 'del', 'expire', 'persist', 'lock', 'unlock', 'extend'] as const;

/**
 * The reply of a known lock script if running it at run.nowMs would change
 * nothing (a release of a lock not held, an acquire of a held one), so the
 * leader may answer without a log entry; undefined if it would write, or if
 * the script is not one run natively. Never changes the machine: the native
 * run sees a view of it whose writes throw.
 */
export function noopScriptOutcome(machine: LockStateMachine, run: Omit<ScriptRun, 'nowMs' | 'readOnly'>, nowMs: number): ScriptReply | undefined {
  const known = knownScript(run.body);
  if (known === undefined) return undefined;
  let view = READ_VIEWS.get(machine);
  if (view === undefined) {
    view = Object.create(machine) as LockStateMachine;
    for (const write of WRITES) {
      view[write] = () => {
        throw WOULD_WRITE;
      };
    }
    READ_VIEWS.set(machine, view);
  }
  try {
    return known.native(callContext(view, run, nowMs, false), run.keys, run.args);
  } catch (e) {
    if (e === WOULD_WRITE) return undefined;
    throw e;
  }
}

/** Compiles a script that is not run natively; null when it compiles, else Redis's error text. */
export function compileScript(body: string): string | null {
  return knownScript(body) !== undefined ? null : luaVm().compile(body);
}
