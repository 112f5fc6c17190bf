import type { CommandSpec } from './spec.js';
import { compileSyntax, type CompiledSyntax } from './syntax.js';
import auth from './auth.js';
import client from './client.js';
import cluster from './cluster.js';
import { askingCommand, readonlyCommand, readwriteCommand } from './cluster-client.js';
import command from './command.js';
import config from './config.js';
import dbsize from './dbsize.js';
import del from './del.js';
import echo from './echo.js';
import { evalCommand, evalRoCommand, evalshaCommand, evalshaRoCommand } from './eval.js';
import exists from './exists.js';
import expire from './expire.js';
import get from './get.js';
import hello from './hello.js';
import info from './info.js';
import kextend from './kextend.js';
import kgetlock from './kgetlock.js';
import klock from './klock.js';
import kunlock from './kunlock.js';
import latency from './latency.js';
import persist from './persist.js';
import pexpire from './pexpire.js';
import ping from './ping.js';
import pttl from './pttl.js';
import quit from './quit.js';
import reset from './reset.js';
import script from './script.js';
import select from './select.js';
import set from './set.js';
import slowlog from './slowlog.js';
import time from './time.js';
import ttl from './ttl.js';
import unlink from './unlink.js';

/** Every command raftlock serves, in the order COMMAND lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  klock, kunlock, kextend, kgetlock,
  set, get, del, unlink, exists, expire, pexpire, ttl, pttl, persist, dbsize,
  evalCommand, evalshaCommand, evalRoCommand, evalshaRoCommand, script,
  ping, echo, hello, auth, select, client, quit, reset,
  command, info, config, slowlog, latency, time, cluster, readonlyCommand, readwriteCommand, askingCommand,
];

export interface CommandEntry {
  readonly spec: CommandSpec;
  readonly syntax: CompiledSyntax | null;
  readonly subcommands: ReadonlyMap<string, CommandEntry> | null;
}

/**
 * The dispatch table, checked when it loads: names unique and lower-case,
 * arities sane, handlers present, grammars compile.
 */
export function buildTable(commands: readonly CommandSpec[]): Map<string, CommandEntry> {
  const table = new Map<string, CommandEntry>();
  for (const spec of commands) {
    const entry = compileEntry(spec, '');
    if (table.has(spec.name)) throw new Error(`duplicate command '${spec.name}'`);
    table.set(spec.name, entry);
    table.set(spec.name.toUpperCase(), entry);
  }
  return table;
}

function compileEntry(spec: CommandSpec, parent: string): CommandEntry {
  const expected = parent === '' ? /^[a-z][a-z0-9_-]*$/ : new RegExp(`^${parent}\\|[a-z][a-z0-9_-]*$`);
  if (!expected.test(spec.name)) throw new Error(`bad command name '${spec.name}'`);
  const minArity = parent === '' ? 1 : 2;
  if (!(spec.arity.min >= minArity && spec.arity.max >= spec.arity.min)) throw new Error(`${spec.name}: bad arity`);
  if (spec.handler === undefined && spec.subcommands === undefined) throw new Error(`${spec.name}: no handler`);
  let subcommands: Map<string, CommandEntry> | null = null;
  if (spec.subcommands !== undefined) {
    subcommands = new Map();
    for (const sub of spec.subcommands) {
      const name = sub.name.slice(spec.name.length + 1);
      if (subcommands.has(name)) throw new Error(`duplicate subcommand '${sub.name}'`);
      subcommands.set(name, compileEntry(sub, spec.name));
    }
  }
  return { spec, syntax: spec.parse ? compileSyntax(spec) : null, subcommands };
}
