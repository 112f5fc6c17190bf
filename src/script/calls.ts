/**
 * The Redis commands a script may call (redis.call / redis.pcall), run
 * synchronously against one partition's lock state machine at the log time
 * of the script's entry: the same on every replica.
 *
 * Arity and syntax are checked with the commands' own specs (the command
 * table's grammar), and SET/EXPIRE build their writes with the commands'
 * own helpers, so a command behaves the same inside and outside a script.
 */
import type { LockStateMachine } from '../lock/machine.js';
import type { CommandSpec, ParsedArgs } from '../commands/spec.js';
import { compileSyntax, parseArgs, type CompiledSyntax } from '../commands/syntax.js';
import { COMMANDS } from '../commands/table.js';
import setSpec, { setRequest } from '../commands/set.js';
import getSpec from '../commands/get.js';
import delSpec from '../commands/del.js';
import unlinkSpec from '../commands/unlink.js';
import existsSpec from '../commands/exists.js';
import expireSpec from '../commands/expire.js';
import pexpireSpec from '../commands/pexpire.js';
import ttlSpec from '../commands/ttl.js';
import pttlSpec from '../commands/pttl.js';
import persistSpec from '../commands/persist.js';
import klockSpec from '../commands/klock.js';
import kunlockSpec from '../commands/kunlock.js';
import kextendSpec from '../commands/kextend.js';
import kgetlockSpec from '../commands/kgetlock.js';
import { expireRequest, ttlSeconds } from '../commands/expire-common.js';
import { durabilityOf, invalidExpire, validTtl } from '../commands/lock-args.js';
import { OK, errorReply, type ScriptReply } from './reply.js';

/** Where and when a script's commands run. */
export interface CallContext {
  readonly machine: LockStateMachine;
  /** Log time of the script's entry: what leases are measured against. */
  readonly nowMs: number;
  /** The leader's wall clock when it proposed the script (SET EXAT/PXAT). */
  readonly wallClockMs: number;
  /** EVAL_RO / EVALSHA_RO: write commands are refused. */
  readonly readOnly: boolean;
  /** Whether a key belongs to the partition the script runs on. */
  isLocal(key: string): boolean;
}

export const UNKNOWN_COMMAND = 'ERR Unknown Redis command called from script';
export const WRONG_ARITY = 'ERR Wrong number of args calling Redis command from script';
export const NOT_ALLOWED = 'ERR This Redis command is not allowed from script';
export const WRITE_IN_READ_ONLY = 'ERR Write commands are not allowed from read-only scripts.';
export const NON_LOCAL_KEY = 'ERR Script attempted to access a non local key in a cluster node';
export const EPHEMERAL_IN_SCRIPT = 'ERR EPHEMERAL locks live in the leader\'s memory only and cannot be used from scripts, which every replica runs';

type Exec = (c: CallContext, argv: readonly string[], parsed: ParsedArgs) => ScriptReply;

interface Callable {
  readonly spec: CommandSpec;
  readonly syntax: CompiledSyntax | null;
  readonly write: boolean;
  readonly exec: Exec;
}

const NO_ARGS: ParsedArgs = Object.freeze({});

function callable(spec: CommandSpec, exec: Exec): [string, Callable] {
  return [spec.name, { spec, syntax: spec.parse ? compileSyntax(spec) : null, write: spec.flags.includes('write'), exec }];
}

const CALLABLE = new Map<string, Callable>([
  callable(getSpec, (c, argv) => c.machine.get(argv[1]!, c.nowMs) ?? null),
  callable(setSpec, (c, argv, parsed) => {
    const request = setRequest(argv, parsed, () => c.wallClockMs);
    if (typeof request === 'string') return errorReply(request);
    const { key, value, mode, expiry } = request.op;
    const { written, previous } = c.machine.set(key, value, { mode, expiry }, c.nowMs);
    if (request.get) return previous ?? null;
    return written ? OK : null;
  }),
  callable(delSpec, (c, argv) => c.machine.del(argv.slice(1), c.nowMs)),
  callable(unlinkSpec, (c, argv) => c.machine.del(argv.slice(1), c.nowMs)),
  callable(existsSpec, (c, argv) => c.machine.exists(argv.slice(1), c.nowMs)),
  callable(expireSpec, (c, argv, parsed) => expire(c, expireRequest('expire', argv, parsed))),
  callable(pexpireSpec, (c, argv, parsed) => expire(c, expireRequest('pexpire', argv, parsed))),
  callable(ttlSpec, (c, argv) => ttlSeconds(c.machine.pttl(argv[1]!, c.nowMs))),
  callable(pttlSpec, (c, argv) => c.machine.pttl(argv[1]!, c.nowMs)),
  callable(persistSpec, (c, argv) => c.machine.persist(argv[1]!, c.nowMs)),
  callable(klockSpec, (c, argv, parsed) => {
    // As Redis runs blocking commands inside scripts: without blocking (WAIT is ignored).
    const ttlMs = parsed['ttl_ms'] as number;
    if (!validTtl(ttlMs)) return errorReply(invalidExpire('klock'));
    return token(c.machine.lock('persistent', argv[1]!, argv[2]!, ttlMs, c.nowMs));
  }),
  callable(kunlockSpec, (c, argv) => (c.machine.unlock('persistent', argv[1]!, argv[2]!, c.nowMs) ? 1 : 0)),
  callable(kextendSpec, (c, argv, parsed) => {
    const ttlMs = parsed['ttl_ms'] as number;
    if (!validTtl(ttlMs)) return errorReply(invalidExpire('kextend'));
    return token(c.machine.extend('persistent', argv[1]!, argv[2]!, ttlMs, c.nowMs));
  }),
  callable(kgetlockSpec, (c, argv) => {
    const info = c.machine.info('persistent', argv[1]!, c.nowMs);
    return info === null ? null : [info.owner, Number(info.token), info.remainingMs];
  }),
]);

function expire(c: CallContext, op: ReturnType<typeof expireRequest>): ScriptReply {
  if (typeof op === 'string') return errorReply(op);
  return c.machine.expire(op.key, op.ttlMs, op.condition, c.nowMs);
}

function token(t: bigint | null): ScriptReply {
  return t === null ? null : Number(t);
}

/** Every command raftlock serves, for telling "not allowed" from "unknown" (built on first use). */
let served: Map<string, CommandSpec> | undefined;

function servedSpec(name: string): CommandSpec | undefined {
  served ??= new Map(COMMANDS.map((spec) => [spec.name, spec]));
  return served.get(name);
}

function wrongArity(spec: CommandSpec, argc: number): boolean {
  return argc < spec.arity.min || argc > spec.arity.max;
}

/**
 * Runs one redis.call: the reply, or an error reply (never throws for a bad
 * command). argv[0] is the command name in any case.
 */
export function runCall(c: CallContext, argv: readonly string[]): ScriptReply {
  const name = argv[0]!.toLowerCase();
  const entry = CALLABLE.get(name);
  if (entry === undefined) {
    const other = servedSpec(name);
    if (other === undefined) return errorReply(UNKNOWN_COMMAND);
    return errorReply(wrongArity(other, argv.length) ? WRONG_ARITY : NOT_ALLOWED);
  }
  const { spec } = entry;
  if (wrongArity(spec, argv.length)) return errorReply(WRONG_ARITY);
  if (entry.write && c.readOnly) return errorReply(WRITE_IN_READ_ONLY);
  const keys = spec.keys!;
  const last = keys.last < 0 ? argv.length + keys.last : keys.last;
  for (let i = keys.first; i <= last; i += keys.step) {
    if (!c.isLocal(argv[i]!)) return errorReply(NON_LOCAL_KEY);
  }
  let parsed = NO_ARGS;
  if (entry.syntax !== null) {
    const result = parseArgs(entry.syntax, argv, 1);
    if (typeof result === 'string') return errorReply(result);
    parsed = result;
  }
  if (spec.group === 'lock' && durabilityOf(parsed) === 'ephemeral') return errorReply(EPHEMERAL_IN_SCRIPT);
  return entry.exec(c, argv, parsed);
}
