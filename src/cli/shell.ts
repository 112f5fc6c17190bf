// raftlock-cli's interactive shell: readline with a prompt, tab completion and a history file. One
// owner for the whole session; leaving (exit, quit, Ctrl-D, Ctrl-C, SIGTERM) releases every lock
// the shell holds.
import { readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { RAFTLOCK_VERSION } from '../commands/version.js';
import { runOperation, type Durability, type Operation, type Outcome } from './commands.js';
import { AbortedError, formatEndpoint, type LockConnection } from './connection.js';
import { formatOutcome, jsonLine, type Format } from './format.js';
import { EXIT } from './options.js';
import { completeShellLine, parseShellLine, SHELL_HELP, ShellInputError, type ShellCommand } from './shell-commands.js';

export const PROMPT = 'raftlock-cli> ';
const HISTORY_SIZE = 1000;

export interface ShellOptions {
  connection: LockConnection;
  owner: string;
  format: Format;
  /** The history file, or null for none. */
  historyPath: string | null;
  input: NodeJS.ReadableStream & { isTTY?: boolean };
  output: NodeJS.WritableStream;
  errors: NodeJS.WritableStream;
}

/** ~/.raftlock-cli-history, or RAFTLOCK_CLI_HISTORY (empty: no history file). */
export function historyPathFromEnv(env: NodeJS.ProcessEnv): string | null {
  const path = env['RAFTLOCK_CLI_HISTORY'];
  if (path === undefined) return join(homedir(), '.raftlock-cli-history');
  return path === '' ? null : path;
}

/** Lines of the history file, newest first (readline's order); the file lists them oldest first. */
function loadHistory(path: string | null): string[] {
  if (path === null) return [];
  try {
    return readFileSync(path, 'utf8').split('\n').filter((line) => line.trim() !== '').reverse().slice(0, HISTORY_SIZE);
  } catch {
    return [];
  }
}

interface HeldLock {
  resource: string;
  durability: Durability;
  /** Taken by a command abandoned at shutdown: it may or may not have been granted. */
  uncertain: boolean;
}

export class Shell {
  private readonly rl: Interface;
  private readonly held = new Map<string, HeldLock>();
  private readonly queue: string[] = [];
  private wake: (() => void) | null = null;
  private closed = false;
  private interrupted = false;
  private inFlight: Operation | null = null;
  private historyWarned = false;

  constructor(private readonly options: ShellOptions) {
    const terminal = options.input.isTTY === true;
    this.rl = createInterface({
      input: options.input,
      output: options.output,
      terminal,
      prompt: PROMPT,
      history: loadHistory(options.historyPath),
      historySize: HISTORY_SIZE,
      removeHistoryDuplicates: true,
      completer: (line: string) => completeShellLine(line, [...this.held.values()].map((h) => h.resource)),
    });
    this.rl.on('line', (line) => this.push(line));
    this.rl.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    this.rl.on('SIGINT', () => this.interrupt());
    this.rl.on('history', (history: string[]) => this.saveHistory(history));
  }

  /** Runs until exit or end of input, then releases the held locks; resolves with the exit status. */
  async run(): Promise<number> {
    const { connection, owner } = this.options;
    const endpoint = connection.endpoint;
    this.info(`raftlock-cli ${RAFTLOCK_VERSION} shell, connected to ${endpoint === null ? '?' : formatEndpoint(endpoint)}`);
    this.info(`owner ${owner}; exit, quit or Ctrl-D releases the locks this shell holds; help lists the commands`);
    this.prompt();
    for (;;) {
      const line = await this.nextLine();
      if (line === null) {
        // Ctrl-D or Ctrl-C left the cursor after the prompt.
        if (this.options.input.isTTY === true) this.print('');
        break;
      }
      if (await this.handle(line)) break;
      // Lines pasted ahead run without a prompt between them, so replies follow their commands.
      if (this.queue.length === 0) this.prompt();
    }
    this.rl.close();
    return this.releaseAll();
  }

  /** Ctrl-C, SIGINT or SIGTERM: stop reading, abandon the command in flight, release; a second one exits at once. */
  interrupt(): void {
    if (this.interrupted) process.exit(130);
    this.interrupted = true;
    this.queue.length = 0;
    if (this.inFlight !== null) this.options.connection.abortInFlight();
    this.rl.close();
  }

  private push(line: string): void {
    this.queue.push(line);
    this.wake?.();
  }

  /** The next queued line; null once input ended and the queue is drained, or after an interrupt. */
  private async nextLine(): Promise<string | null> {
    for (;;) {
      if (this.interrupted) return null;
      const line = this.queue.shift();
      if (line !== undefined) return line;
      if (this.closed) return null;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }

  /** Runs one line; true when the shell should leave. */
  private async handle(line: string): Promise<boolean> {
    let command: ShellCommand;
    try {
      command = parseShellLine(line);
    } catch (error) {
      if (!(error instanceof ShellInputError)) throw error;
      this.error(error.message);
      return false;
    }
    switch (command.kind) {
      case 'empty': return false;
      case 'exit': return true;
      case 'help':
        this.print(SHELL_HELP);
        return false;
      default:
        await this.runLockCommand(this.operationOf(command));
        return false;
    }
  }

  private operationOf(command: Exclude<ShellCommand, { kind: 'empty' | 'exit' | 'help' }>): Operation {
    const owner = this.options.owner;
    switch (command.kind) {
      case 'lock': return { ...command, owner };
      case 'unlock': return { ...command, owner };
      case 'extend': return { ...command, owner };
      case 'get-lock': return command;
    }
  }

  private async runLockCommand(op: Operation): Promise<void> {
    this.inFlight = op;
    try {
      const outcome = await runOperation(this.options.connection, op);
      this.track(op.durability, outcome);
      this.print(formatOutcome(outcome, this.options.format));
    } catch (error) {
      if (error instanceof AbortedError) {
        if (op.kind === 'lock') this.held.set(heldKey(op.durability, op.resource), { resource: op.resource, durability: op.durability, uncertain: true });
        return;
      }
      this.error((error as Error).message);
    } finally {
      this.inFlight = null;
    }
  }

  /** Keeps the set of locks this shell's owner holds up to date with what the server said. */
  private track(durability: Durability, outcome: Outcome): void {
    const key = heldKey(durability, outcome.resource);
    const holds = outcome.kind === 'lock' ? outcome.acquired
      : outcome.kind === 'extend' ? outcome.extended
        : outcome.kind === 'unlock' ? false
          : outcome.holder?.owner === this.options.owner;
    if (holds) this.held.set(key, { resource: outcome.resource, durability, uncertain: false });
    else this.held.delete(key);
  }

  /** Releases every held lock, printing each; EXIT.server if any release failed. */
  private async releaseAll(): Promise<number> {
    let status: number = EXIT.ok;
    for (const lock of this.held.values()) {
      const op: Operation = { kind: 'unlock', resource: lock.resource, owner: this.options.owner, durability: lock.durability };
      try {
        const outcome = await runOperation(this.options.connection, op);
        if (outcome.kind !== 'unlock' || (lock.uncertain && !outcome.unlocked)) continue;
        this.print(this.options.format === 'json'
          ? jsonLine([['resource', lock.resource], ['isUnlocked', outcome.unlocked], ['owner', this.options.owner], ['durability', lock.durability]])
          : outcome.unlocked ? `released ${lock.durability} lock ${lock.resource}` : `${lock.durability} lock ${lock.resource} was no longer held`);
      } catch (error) {
        this.error(`cannot release ${lock.durability} lock ${lock.resource}: ${(error as Error).message}`);
        status = EXIT.server;
      }
    }
    this.held.clear();
    this.options.connection.close();
    return status;
  }

  private saveHistory(history: string[]): void {
    const path = this.options.historyPath;
    if (path === null) return;
    try {
      writeFileSync(path, [...history].reverse().map((line) => `${line}\n`).join(''), { mode: 0o600 });
    } catch (error) {
      if (!this.historyWarned) this.error(`cannot write the history file ${path}: ${(error as Error).message}`);
      this.historyWarned = true;
    }
  }

  /** Prompts on a terminal only: piped input gets results alone. */
  private prompt(): void {
    if (!this.closed && this.options.input.isTTY === true) this.rl.prompt();
  }

  private print(text: string): void {
    this.options.output.write(`${text}\n`);
  }

  /** Banner lines: on the terminal, or on stderr when input is not one (stdout keeps only results). */
  private info(text: string): void {
    (this.options.input.isTTY === true ? this.options.output : this.options.errors).write(`${text}\n`);
  }

  private error(message: string): void {
    this.options.errors.write(`error: ${message}\n`);
  }
}

function heldKey(durability: Durability, resource: string): string {
  return `${durability}\u0000${resource}`;
}
