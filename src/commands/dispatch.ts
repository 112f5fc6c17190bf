import type { CommandContext, CommandSpec, Pending } from './spec.js';
import { parseArgs, parseInteger } from './syntax.js';
import { COMMANDS, buildTable, type CommandEntry } from './table.js';
import { NOAUTH } from './auth-common.js';
import { BLOCKING } from './spec.js';
import type { Refusal } from '../stats/command-stats.js';

const TABLE = buildTable(COMMANDS);

/**
 * What dispatch found out about the command it was given, for the caller
 * that keeps statistics; set on every call (reuse one object: no allocation).
 */
export interface DispatchOutcome {
  /** The command's spec (a subcommand's own), or null when argv names none. */
  spec: CommandSpec | null;
  /** Why it was refused before running (its reply is that error), or null when it ran. */
  refused: Refusal | null;
}

/** For callers that keep no statistics. */
const UNOBSERVED: DispatchOutcome = { spec: null, refused: null };

/**
 * Runs one command: lookup, arity, authentication and generic syntax checks in
 * Redis's order, then the handler. Exactly one reply is written (now, or when
 * the returned promise settles); a refusal is always written now.
 */
export function dispatch(ctx: CommandContext, argv: string[], outcome: DispatchOutcome = UNOBSERVED): void | Pending {
  const name = argv[0]!;
  const top = TABLE.get(name) ?? TABLE.get(name.toLowerCase());
  outcome.spec = null;
  if (top === undefined) return refuse(ctx, outcome, 'unknown_command', unknownCommand(argv));
  let entry: CommandEntry = top;
  if (top.subcommands !== null && argv.length >= 2) {
    const sub = top.subcommands.get(argv[1]!.toLowerCase());
    if (sub === undefined) return refuse(ctx, outcome, 'unknown_subcommand', unknownSubcommand(argv));
    entry = sub;
  }
  const spec = entry.spec;
  outcome.spec = spec;
  if (argv.length < spec.arity.min || argv.length > spec.arity.max) {
    return refuse(ctx, outcome, 'arity', `ERR wrong number of arguments for '${spec.name}' command`);
  }
  if (!ctx.client.authenticated && !top.spec.flags.includes('no_auth')) return refuse(ctx, outcome, 'noauth', NOAUTH);
  outcome.refused = null;
  ctx.client.lastCommand = spec.name;
  if (ctx.server.forward !== undefined && ctx.client.forwarded !== true) {
    const key = routingKey(top.spec, argv);
    const sent = key === undefined || top.spec.forwardAs === undefined ? argv : top.spec.forwardAs(ctx, argv);
    const remote = key === undefined ? undefined : ctx.server.forward(ctx.server.partitionOf(key), sent, ctx.client, ctx.reply);
    // The leader's reply is written as it is; a KLOCK ... WAIT there blocks this client too.
    if (remote !== undefined) return top.spec.flags.includes('blocking') && hasWait(argv) ? Object.assign(remote, { [BLOCKING]: true }) : remote;
  }
  if (entry.syntax === null) return spec.handler!(ctx, argv, NO_ARGS);
  const parsed = parseArgs(entry.syntax, argv, entry === top ? 1 : 2);
  if (typeof parsed === 'string') return refuse(ctx, outcome, 'syntax', parsed);
  return spec.handler!(ctx, argv, parsed);
}

function refuse(ctx: CommandContext, outcome: DispatchOutcome, reason: Refusal, error: string): void {
  outcome.refused = reason;
  ctx.reply.error(error);
}

const NO_ARGS = Object.freeze({});

/**
 * The key whose partition serves argv: the first key. A command whose keys
 * are counted by an argument (EVAL) with no keys goes to partition 0 (the
 * key '' hashes to slot 0); with a count that is not valid, it runs where
 * it is, which answers the error. undefined: a command without keys.
 */
export function routingKey(spec: CommandSpec, argv: readonly string[]): string | undefined {
  if (spec.keyCount !== undefined) {
    const at = spec.keyCount.index;
    const count = argv[at] === undefined ? null : parseInteger(argv[at]);
    if (count === null || count < 0 || count > argv.length - at - 1) return undefined;
    return count === 0 ? '' : argv[at + 1];
  }
  return spec.keys === null ? undefined : argv[spec.keys.first];
}

/** Whether a blocking command asks to wait (a WAIT argument, in any case); allocates nothing for other arguments. */
function hasWait(argv: readonly string[]): boolean {
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.length === 4 && arg.toUpperCase() === 'WAIT') return true;
  }
  return false;
}

/**
 * Whether argv may run while earlier writes of the same client wait for the
 * log: writes may (the log keeps their order); anything else waits, so a
 * client always reads its own writes.
 */
export function pipelinable(argv: readonly string[]): boolean {
  const name = argv[0]!;
  const entry = TABLE.get(name) ?? TABLE.get(name.toLowerCase());
  if (entry === undefined || entry.subcommands !== null) return false;
  const flags = entry.spec.flags;
  // EVAL and EVALSHA (may_replicate) are writes through the log too: in order with the client's others.
  return flags.includes('write') || flags.includes('may_replicate');
}

/** Redis's text, user bytes included verbatim but CR/LF turned into spaces. */
export function unknownCommand(argv: readonly string[]): string {
  let args = '';
  for (let i = 1; i < argv.length && args.length < 128; i++) {
    args += `'${argv[i]!.slice(0, 128 - args.length)}' `;
  }
  return sanitize(`ERR unknown command '${argv[0]!.slice(0, 128)}', with args beginning with: ${args}`);
}

function unknownSubcommand(argv: readonly string[]): string {
  return sanitize(`ERR unknown subcommand '${argv[1]!.slice(0, 128)}'. Try ${argv[0]!.toUpperCase()} HELP.`);
}

function sanitize(text: string): string {
  return text.replace(/[\r\n]/g, ' ');
}
