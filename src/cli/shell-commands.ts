// The interactive shell's command language: `lock R MS [wait MS]`, `unlock R`, `extend-lock R MS`,
// `get-lock R`, their EPHEMERAL twins prefixed with `e`, `help`, `exit` and `quit`.
import { MS_MAX, type Durability } from './commands.js';

export type ShellCommand =
  | { kind: 'lock'; resource: string; ttlMs: number; waitMs: number | undefined; durability: Durability }
  | { kind: 'unlock'; resource: string; durability: Durability }
  | { kind: 'extend'; resource: string; ttlMs: number; durability: Durability }
  | { kind: 'get-lock'; resource: string; durability: Durability }
  | { kind: 'help' }
  | { kind: 'exit' }
  | { kind: 'empty' };

/** A line the shell cannot run; the message says why. */
export class ShellInputError extends Error {}

const LOCK_COMMANDS = ['lock', 'unlock', 'extend-lock', 'get-lock'] as const;
type LockCommandName = (typeof LOCK_COMMANDS)[number];

/** Every command name, for tab completion. */
export const SHELL_COMMAND_NAMES: readonly string[] = [
  ...LOCK_COMMANDS, ...LOCK_COMMANDS.map((name) => `e${name}`), 'help', 'exit', 'quit',
];

/** Command names whose first argument is a resource name. */
export const RESOURCE_COMMAND_NAMES: readonly string[] = SHELL_COMMAND_NAMES.filter((name) => /lock$/.test(name));

const USAGE: Record<LockCommandName, string> = {
  'lock': 'lock resource ttl_ms [wait timeout_ms]',
  'unlock': 'unlock resource',
  'extend-lock': 'extend-lock resource ttl_ms',
  'get-lock': 'get-lock resource',
};

export const SHELL_HELP = `Commands (the owner is this shell's; names are case-insensitive):
  lock R MS [wait MS]   acquire R for MS milliseconds, queueing up to wait MS if it is held
  unlock R              release R
  extend-lock R MS      extend R to MS milliseconds from now
  get-lock R            show R's owner, fencing token and remaining lease
  elock, eunlock, eextend-lock, eget-lock   the same on EPHEMERAL locks
  help                  this text
  exit, quit, Ctrl-D    release every lock this shell holds and leave`;

/** Parses one line; throws ShellInputError for an unknown command or bad arguments. */
export function parseShellLine(line: string): ShellCommand {
  const words = line.trim().split(/\s+/).filter((w) => w.length > 0);
  if (words.length === 0) return { kind: 'empty' };
  const name = words[0]!.toLowerCase();
  const args = words.slice(1);
  if (name === 'help' || name === 'exit' || name === 'quit') {
    if (args.length > 0) throw new ShellInputError(`${name} takes no arguments`);
    return name === 'help' ? { kind: 'help' } : { kind: 'exit' };
  }
  const ephemeral = name.startsWith('e') && (LOCK_COMMANDS as readonly string[]).includes(name.slice(1));
  const base = (ephemeral ? name.slice(1) : name) as LockCommandName;
  if (!(LOCK_COMMANDS as readonly string[]).includes(base)) {
    throw new ShellInputError(`unknown command '${words[0]}' (type help for the commands)`);
  }
  return lockCommand(base, args, ephemeral ? 'ephemeral' : 'persistent');
}

function lockCommand(base: LockCommandName, args: string[], durability: Durability): ShellCommand {
  const usage = (): never => {
    throw new ShellInputError(`usage: ${durability === 'ephemeral' ? 'e' : ''}${USAGE[base]}`);
  };
  const [resource, second, third, fourth, ...rest] = args;
  if (resource === undefined || rest.length > 0) return usage();
  switch (base) {
    case 'lock': {
      if (second === undefined) return usage();
      const hasWait = third !== undefined;
      if (hasWait && (third.toLowerCase() !== 'wait' || fourth === undefined)) return usage();
      if (!hasWait && fourth !== undefined) return usage();
      const waitMs = hasWait ? milliseconds(fourth!, 0, 'timeout_ms') : undefined;
      return { kind: 'lock', resource, ttlMs: milliseconds(second, 1, 'ttl_ms'), waitMs, durability };
    }
    case 'extend-lock':
      if (second === undefined || third !== undefined) return usage();
      return { kind: 'extend', resource, ttlMs: milliseconds(second, 1, 'ttl_ms'), durability };
    case 'unlock':
    case 'get-lock':
      if (second !== undefined) return usage();
      return base === 'unlock' ? { kind: 'unlock', resource, durability } : { kind: 'get-lock', resource, durability };
  }
}

function milliseconds(text: string, min: number, name: string): number {
  const ms = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(ms >= min && ms <= MS_MAX)) throw new ShellInputError(`${name} must be an integer from ${min} to ${MS_MAX}, got '${text}'`);
  return ms;
}

/** Tab completion: command names for the first word, then resources (those this shell holds). */
export function completeShellLine(line: string, heldResources: readonly string[]): [string[], string] {
  const words = line.trimStart().split(/\s+/);
  if (words.length <= 1) {
    const word = words[0] ?? '';
    const hits = SHELL_COMMAND_NAMES.filter((name) => name.startsWith(word.toLowerCase()));
    return [hits.length > 0 ? hits : [...SHELL_COMMAND_NAMES], word];
  }
  const word = words[words.length - 1]!;
  if (words.length === 2 && RESOURCE_COMMAND_NAMES.includes(words[0]!.toLowerCase())) {
    const unique = [...new Set(heldResources)];
    return [unique.filter((r) => r.startsWith(word)), word];
  }
  return [[], word];
}
