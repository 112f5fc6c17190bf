#!/usr/bin/env node
// raftlock-cli: one lock operation from the flags (--lock, --unlock, --extend-lock, --get-lock),
// or, without one, an interactive shell. Exit statuses are listed in options.ts (EXIT) and --help.
import { randomUUID } from 'node:crypto';
import { CommanderError } from 'commander';
import { runOperation, succeeded, type Operation } from './commands.js';
import { LockConnection } from './connection.js';
import { formatOutcome } from './format.js';
import { EXIT, exitCodeOf, parseCli, type CliOptions } from './options.js';
import { historyPathFromEnv, Shell } from './shell.js';

function optionsOrExit(): CliOptions {
  try {
    return parseCli(process.argv.slice(2));
  } catch (error) {
    if (error instanceof CommanderError) process.exit(exitCodeOf(error));
    throw error;
  }
}

async function oneShot(connection: LockConnection, op: Operation, options: CliOptions): Promise<number> {
  try {
    const outcome = await runOperation(connection, op);
    process.stdout.write(`${formatOutcome(outcome, options.format)}\n`);
    return succeeded(outcome) ? EXIT.ok : EXIT.refused;
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    return EXIT.server;
  } finally {
    connection.close();
  }
}

async function shell(connection: LockConnection, options: CliOptions): Promise<number> {
  try {
    await connection.connect();
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    return EXIT.server;
  }
  const session = new Shell({
    connection,
    owner: options.owner ?? randomUUID(),
    format: options.format,
    historyPath: historyPathFromEnv(process.env),
    input: process.stdin,
    output: process.stdout,
    errors: process.stderr,
  });
  process.on('SIGINT', () => session.interrupt());
  process.on('SIGTERM', () => session.interrupt());
  return session.run();
}

async function main(): Promise<void> {
  const options = optionsOrExit();
  const connection = new LockConnection({ endpoints: options.endpoints, password: options.password, timeoutMs: options.timeoutMs });
  const status = options.operation === undefined ? await shell(connection, options) : await oneShot(connection, options.operation, options);
  process.exit(status);
}

void main();
