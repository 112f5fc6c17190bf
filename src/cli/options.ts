// raftlock-cli's command line: kahuna-cli's flags (--lock, --unlock, --extend-lock, --owner,
// --expires, --format, -c/--connection-source) plus --get-lock, --wait, --ephemeral, --password.
import { randomUUID } from 'node:crypto';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { RAFTLOCK_VERSION } from '../commands/version.js';
import { MS_MAX, type Durability, type Operation } from './commands.js';
import { parseEndpoints, type Endpoint } from './connection.js';
import { FORMATS, type Format } from './format.js';

/** Exit statuses, documented in --help. */
export const EXIT = {
  ok: 0,
  refused: 1,
  usage: 2,
  server: 3,
} as const;

export const DEFAULT_CONNECTION_SOURCE = '127.0.0.1:6379';
export const DEFAULT_EXPIRES_MS = 30_000;
export const DEFAULT_TIMEOUT_S = 10;

export interface CliOptions {
  endpoints: Endpoint[];
  password: string | undefined;
  format: Format;
  /** Time allowed for one command (connecting, failover and retries included), beyond any --wait. */
  timeoutMs: number;
  /** The one-shot operation, or undefined for the interactive shell. */
  operation: Operation | undefined;
  /** --owner, for the shell (one-shot operations carry theirs). */
  owner: string | undefined;
}

const HELP_AFTER = `
One-shot operations (one of them; without any, raftlock-cli starts an interactive shell):
  --lock R [--owner O] [--expires MS] [--wait MS]   KLOCK; prints f{token} acquired {owner}
  --unlock R --owner O   (alias --unlock-lock)       KUNLOCK; prints unlocked
  --extend-lock R --owner O [--expires MS]           KEXTEND; prints f{token} extended
  --get-lock R                                       KGETLOCK; prints f{token} {owner} expires in {ms} ms
  --ephemeral makes any of them act on the EPHEMERAL lock table (default PERSISTENT).
  Without --owner, --lock uses a random UUID and prints it: pass it to --unlock and --extend-lock.

--format json prints one JSON object on stdout, also when the operation is refused:
  lock         {"resource","isAcquired","fencingToken","owner"}    (fencingToken -1 if not acquired)
  unlock       {"resource","isUnlocked","owner"}
  extend-lock  {"resource","isExtended","fencingToken","owner"}    (fencingToken -1 if not extended)
  get-lock     {"resource","isLocked","owner","fencingToken","expiresMs"}  (nulls if free)

Exit status:
  0  done: acquired, unlocked, extended, or the lock was found
  1  refused: held by another owner, not held by this owner, or no such lock
  2  usage error (message on stderr)
  3  no server reachable, no reply in time, or a server error (message on stderr)

The CLI connects to the first reachable endpoint of --connection-source and moves to the next
when a connection fails; any node of a cluster answers every command. A partition without a
leader (-TRYAGAIN) is retried with jittered backoff within --default-timeout.

Environment: RAFTLOCK_CLI_CONNECTION_SOURCE, RAFTLOCK_PASSWORD; the shell keeps its history in
~/.raftlock-cli-history (RAFTLOCK_CLI_HISTORY sets another file; empty: no history file).

Example (a backup job that must not run twice):
  raftlock-cli --lock backup-lock --expires 60000 --format json | jq .isAcquired
`;

function msParser(min: number): (value: string) => number {
  return (value) => {
    const ms = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(ms >= min && ms <= MS_MAX)) throw new InvalidArgumentError(`expected an integer from ${min} to ${MS_MAX} (milliseconds)`);
    return ms;
  };
}

function secondsParser(value: string): number {
  const seconds = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!(seconds > 0 && seconds <= 86_400)) throw new InvalidArgumentError('expected a number of seconds above 0 and at most 86400');
  return seconds;
}

function endpointsParser(value: string): Endpoint[] {
  try {
    return parseEndpoints(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

export function buildProgram(): Command {
  return new Command('raftlock-cli')
    .description('Command-line client for raftlock: take, release, extend and inspect fenced locks.')
    .version(RAFTLOCK_VERSION, '-v, --version')
    .addOption(new Option('-c, --connection-source <endpoints>', 'host:port list of cluster nodes')
      .env('RAFTLOCK_CLI_CONNECTION_SOURCE').default(parseEndpoints(DEFAULT_CONNECTION_SOURCE), DEFAULT_CONNECTION_SOURCE)
      .argParser(endpointsParser))
    .addOption(new Option('--password <password>', 'AUTH password (the server\'s --requirepass)').env('RAFTLOCK_PASSWORD'))
    .option('--lock <resource>', 'acquire a lock (KLOCK)')
    .option('--unlock <resource>', 'release a lock held by --owner (KUNLOCK)')
    .option('--unlock-lock <resource>', 'same as --unlock')
    .option('--extend-lock <resource>', 'extend a lock held by --owner to --expires from now (KEXTEND)')
    .option('--get-lock <resource>', 'show who holds a lock, its fencing token and remaining lease (KGETLOCK)')
    .option('--owner <owner>', 'lock owner (default for --lock and the shell: a random UUID)')
    .option('--expires <ms>', 'lease for --lock and --extend-lock', msParser(1), DEFAULT_EXPIRES_MS)
    .option('--wait <ms>', 'with --lock: queue up to this long for the lock (KLOCK ... WAIT)', msParser(0))
    .option('--ephemeral', 'use the EPHEMERAL lock table (leader memory) instead of PERSISTENT')
    .addOption(new Option('--format <format>', 'output format').choices(FORMATS).default('console'))
    .option('-t, --default-timeout <seconds>', 'time allowed for each command, beyond any --wait', secondsParser, DEFAULT_TIMEOUT_S)
    .addHelpText('after', HELP_AFTER)
    .exitOverride();
}

/** The exit status for a CommanderError: 0 after --help or --version, else a usage error. */
export function exitCodeOf(error: CommanderError): number {
  return ['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(error.code) ? EXIT.ok : EXIT.usage;
}

/** Parses argv (without node and script); throws CommanderError after printing help, the version or a usage error. */
export function parseCli(argv: string[]): CliOptions {
  const program = buildProgram();
  program.parse(argv, { from: 'user' });
  const opts = program.opts();
  const usage = (message: string): never => program.error(`error: ${message}`, { exitCode: EXIT.usage, code: 'raftlock.usage' });
  const durability: Durability = opts['ephemeral'] === true ? 'ephemeral' : 'persistent';
  const chosen = (['lock', 'unlock', 'unlockLock', 'extendLock', 'getLock'] as const).filter((key) => opts[key] !== undefined);
  if (chosen.length > 1) usage('give only one of --lock, --unlock (--unlock-lock), --extend-lock, --get-lock');
  const owner = opts['owner'] as string | undefined;
  if (owner === '') usage('--owner must not be empty');
  const resource = chosen.length === 1 ? (opts[chosen[0]!] as string) : undefined;
  if (resource === '') usage('the resource name must not be empty');
  const kind = chosen[0];
  if (opts['wait'] !== undefined && kind !== 'lock') usage('--wait only applies to --lock');
  const ttlMs = opts['expires'] as number;
  let operation: Operation | undefined;
  if (kind === 'lock') {
    operation = { kind: 'lock', resource: resource!, owner: owner ?? randomUUID(), ttlMs, waitMs: opts['wait'] as number | undefined, durability };
  } else if (kind === 'unlock' || kind === 'unlockLock') {
    if (owner === undefined) usage('--unlock needs --owner (the owner --lock printed)');
    operation = { kind: 'unlock', resource: resource!, owner: owner!, durability };
  } else if (kind === 'extendLock') {
    if (owner === undefined) usage('--extend-lock needs --owner (the owner --lock printed)');
    operation = { kind: 'extend', resource: resource!, owner: owner!, ttlMs, durability };
  } else if (kind === 'getLock') {
    operation = { kind: 'get-lock', resource: resource!, durability };
  }
  return {
    endpoints: opts['connectionSource'] as Endpoint[],
    password: opts['password'] as string | undefined,
    format: opts['format'] as Format,
    timeoutMs: Math.round((opts['defaultTimeout'] as number) * 1000),
    operation,
    owner,
  };
}
