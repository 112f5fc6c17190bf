/**
 * EVAL, EVALSHA, EVAL_RO and EVALSHA_RO. A script runs on the leader of the
 * partition its keys belong to (all in one, else CROSSSLOT; with no keys,
 * partition 0, the one of slot 0). EVAL and EVALSHA go through the Raft log
 * like any write: the entry carries the script, and every replica runs it
 * when the entry applies, so its effects are atomic, in log order, and the
 * same everywhere. The _RO variants run as reads on the leader, and fail at
 * the first write command.
 */
import type { ReplyWriter } from '../../resp/encoder.js';
import { defineCommand, type ArgSpec, type CommandContext, type CommandSpec, type Pending } from './spec.js';
import { parseInteger, NOT_AN_INTEGER } from './syntax.js';
import { respond } from './respond.js';
import { serviceForKeys } from './partition.js';
import { scriptCacheOf } from '../script/cache.js';
import { compileScript, runScript } from '../script/run.js';
import { sha1Hex } from '../script/sha1.js';
import { SCRIPT_INSTRUCTIONS_MAX } from '../script/vm.js';
import type { ScriptReply } from '../script/reply.js';
import type { ScriptOp } from '../lock/commands.js';

export const NOSCRIPT = 'NOSCRIPT No matching script. Please use EVAL.';
export const TOO_MANY_KEYS = "ERR Number of keys can't be greater than number of args";
export const NEGATIVE_KEYS = "ERR Number of keys can't be negative";

const ARGS_TAIL: ArgSpec[] = [
  { name: 'numkeys', type: 'integer' },
  { name: 'key', type: 'key', optional: true, multiple: true },
  { name: 'arg', type: 'string', optional: true, multiple: true },
];

function evalSpec(name: string, byDigest: boolean, readOnly: boolean, summary: string): CommandSpec {
  return defineCommand({
    name,
    summary,
    since: readOnly ? '7.0.0' : '2.6.0',
    group: 'scripting',
    complexity: 'Depends on the script that is executed.',
    arity: { min: 3, max: Infinity },
    flags: readOnly
      ? ['readonly', 'noscript', 'stale', 'skip_monitor', 'no_mandatory_keys', 'movablekeys']
      : ['noscript', 'stale', 'skip_monitor', 'may_replicate', 'no_mandatory_keys', 'movablekeys'],
    aclCategories: ['@slow', '@scripting'],
    keyCount: { index: 2 },
    args: [byDigest ? { name: 'sha1', type: 'string' } : { name: 'script', type: 'string' }, ...ARGS_TAIL],
    ...(byDigest ? { forwardAs: (ctx: CommandContext, argv: string[]) => asEval(ctx, argv, readOnly) } : {}),
    handler: (ctx, argv) => evaluate(ctx, argv, byDigest, readOnly),
  });
}

export const evalCommand = evalSpec('eval', false, false,
  'Runs a Lua script atomically on the partition of its keys; its writes go through the Raft log and every replica runs it.');
export const evalshaCommand = evalSpec('evalsha', true, false,
  'Runs a script by its SHA1 (from SCRIPT LOAD or an earlier EVAL on this node); NOSCRIPT if this node does not have it.');
export const evalRoCommand = evalSpec('eval_ro', false, true,
  'Runs a read-only Lua script as a read on the partition leader; write commands inside it fail.');
export const evalshaRoCommand = evalSpec('evalsha_ro', true, true,
  'Runs a read-only script by its SHA1, as a read on the partition leader.');

/** EVALSHA of a script this node has, as the EVAL the leader runs without needing its own copy. */
function asEval(ctx: CommandContext, argv: string[], readOnly: boolean): string[] {
  const body = scriptCacheOf(ctx.server).get(argv[1]!);
  return body === undefined ? argv : [readOnly ? 'EVAL_RO' : 'EVAL', body, ...argv.slice(2)];
}

function evaluate(ctx: CommandContext, argv: string[], byDigest: boolean, readOnly: boolean): void | Pending {
  const numkeys = parseInteger(argv[2]!);
  if (numkeys === null) return ctx.reply.error(NOT_AN_INTEGER);
  if (numkeys > argv.length - 3) return ctx.reply.error(TOO_MANY_KEYS);
  if (numkeys < 0) return ctx.reply.error(NEGATIVE_KEYS);
  const cache = scriptCacheOf(ctx.server);
  let body: string;
  if (byDigest) {
    const found = cache.get(argv[1]!);
    if (found === undefined) return ctx.reply.error(NOSCRIPT);
    body = found;
  } else {
    body = argv[1]!;
    const compileError = compileScript(body);
    if (compileError !== null) return ctx.reply.error(compileError);
    cache.addEvaluated(body, sha1Hex(body));
  }
  const keys = argv.slice(3, 3 + numkeys);
  const args = argv.slice(3 + numkeys);
  const service = keys.length > 0 ? serviceForKeys(ctx, keys) : ctx.server.services[0]!;
  if (service === undefined) return;
  const op: ScriptOp = {
    kind: 'script', body, keys, args, wallClockMs: ctx.server.wallClockMs(), budget: SCRIPT_INSTRUCTIONS_MAX,
    partition: keys.length > 0 ? ctx.server.partitionOf(keys[0]!) : 0, partitions: ctx.server.services.length,
  };
  if (readOnly) {
    const reply = service.read('persistent', (nowMs) => runScript(service.machine, { ...op, nowMs, readOnly: true }));
    return respond(ctx, reply, (c, r) => writeScriptReply(c.reply, r));
  }
  return respond(ctx, service.write(op), (c, r) => writeScriptReply(c.reply, r as ScriptReply));
}

/** Writes a script's reply in the client's protocol (a nil is RESP3's null for RESP3 clients). */
export function writeScriptReply(reply: ReplyWriter, value: ScriptReply): void {
  if (value === null) return reply.nullBulk();
  if (typeof value === 'number') return reply.integer(value);
  if (typeof value === 'string') return reply.bulk(value);
  if (Array.isArray(value)) {
    reply.array(value.length);
    for (const item of value) writeScriptReply(reply, item);
    return;
  }
  if ('err' in value) return reply.error(value.err);
  if ('ok' in value) return reply.simple(value.ok);
  reply.double(value.double);
}
