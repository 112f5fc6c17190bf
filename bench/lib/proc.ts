// Real server processes for the benchmark harness and the tool tests: free ports, spawn, wait until
// the server answers PING, stop with SIGTERM (SIGKILL after a grace period), temp dirs removed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../../src/server/node-flags.js';

/** The repository root (this file is bench/lib/proc.ts, or dist/bench/lib/proc.js once built). */
export const REPO_ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/bench/') ? '../../../' : '../../', import.meta.url));

/** The built server binary: `npm run build` produces it. */
export const RAFTLOCK_MAIN = join(REPO_ROOT, 'dist', 'src', 'server', 'main.js');

/** How the harnesses start the server (relative to the repository root), for reports. */
export const SERVER_COMMAND = `node ${SERVER_NODE_FLAGS.join(' ')} dist/src/server/main.js`;

const HOST = '127.0.0.1';
const OUTPUT_BYTES_MAX = 64 * 1024;

/** Asks the kernel for a free TCP port on 127.0.0.1 (listen on port 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The absolute path of an executable on PATH, or null. */
export function which(command: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** The Debian package that provides each external tool this repository drives. */
export const TOOL_PACKAGES: Record<string, string> = {
  'redis-server': 'redis-server',
  'redis-cli': 'redis-tools',
  'redis-benchmark': 'redis-tools',
};

/** Names of the tools that are missing, each with the package that installs it. */
export function missingTools(commands: string[]): string[] {
  return commands
    .filter((command) => which(command) === null)
    .map((command) => `${command} (apt-get install ${TOOL_PACKAGES[command] ?? command})`);
}

/** Why /usr/bin/python3 cannot import the given modules (redis is Debian's python3-redis), or null. */
export function pythonProblem(modules: string[]): string | null {
  const result = spawnSync('/usr/bin/python3', ['-c', `import ${modules.join(', ')}`], { encoding: 'utf8', timeout: 30_000 });
  if (result.error !== undefined) return `/usr/bin/python3 cannot run (${result.error.message}); apt-get install python3 python3-redis`;
  if (result.status !== 0) return `/usr/bin/python3 cannot import ${modules.join(', ')} (apt-get install python3-redis): ${result.stderr.trim()}`;
  return null;
}

/** Everything missing among the given tools and /usr/bin/python3 modules, each with how to install it. */
export function toolProblems(needs: { commands?: string[]; pythonModules?: string[] }): string[] {
  const problems = missingTools(needs.commands ?? []);
  const python = needs.pythonModules === undefined ? null : pythonProblem(needs.pythonModules);
  return python === null ? problems : [...problems, python];
}

export interface CommandResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion (stdin closed, or fed `input`) and collects its output; kills it
 * with SIGKILL after timeoutMs. Never rejects on a non-zero exit: the caller judges the result.
 */
export function runCommand(command: string, args: string[], options: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  const { timeoutMs = 120_000, input, env } = options;
  const shown = [command, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (input !== undefined) child.stdin?.end(input);
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${timeoutMs} ms]\n`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${shown}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ command: shown, code, signal, stdout, stderr });
    });
  });
}

/** Encodes a command as a RESP multibulk. */
function encodeCommand(args: string[]): string {
  return `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
}

/**
 * Sends PING (after AUTH when a password is given) over a raw socket and returns the first line of
 * the PING reply, e.g. `+PONG`. Rejects on a connection error or after timeoutMs.
 */
export function respPing(port: number, options: { host?: string; password?: string; timeoutMs?: number } = {}): Promise<string> {
  const { host = HOST, password, timeoutMs = 1000 } = options;
  const request = (password === undefined ? '' : encodeCommand(['AUTH', password])) + encodeCommand(['PING']);
  const linesWanted = password === undefined ? 1 : 2;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host });
    let received = '';
    const finish = (error: Error | null, line?: string): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error !== null) reject(error);
      else resolve(line!);
    };
    const timer = setTimeout(() => finish(new Error(`no PING reply within ${timeoutMs} ms`)), timeoutMs);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: string) => {
      received += chunk;
      const lines = received.split('\r\n');
      if (lines.length > linesWanted) finish(null, lines[linesWanted - 1]);
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(new Error('connection closed before the PING reply')));
  });
}

/** Keeps the last OUTPUT_BYTES_MAX characters of a stream, so a chatty server cannot grow memory. */
class OutputTail {
  private text = '';
  append(chunk: string): void {
    this.text += chunk;
    if (this.text.length > 2 * OUTPUT_BYTES_MAX) this.text = this.text.slice(-OUTPUT_BYTES_MAX);
  }
  toString(): string {
    return this.text.length > OUTPUT_BYTES_MAX ? '…' + this.text.slice(-OUTPUT_BYTES_MAX) : this.text;
  }
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /** Shown in errors and reports, e.g. `raftlock` or `redis-server`. */
  name: string;
  /** The executable to run. */
  command: string;
  /** Its arguments for a given port and temp dir (fresh per attempt). */
  args(port: number, dir: string): string[];
  env?: NodeJS.ProcessEnv;
  /**
   * A line the server logs once it listens. Waiting for it as well as for PONG makes sure the PONG
   * comes from this process, not from another that took the port between freePort() and spawn.
   */
  readyLog?: RegExp;
  /** Sent as AUTH before the readiness PING. */
  password?: string;
  /** How long to wait for PONG; default 15 s (the machine is noisy). */
  readyTimeoutMs?: number;
  /** Attempts on fresh ports when the chosen port was taken in the meantime; default 3. */
  attempts?: number;
}

const live = new Set<ServerProcess>();

/** A server process started by startServer; stop() is idempotent and removes its temp dir. */
export class ServerProcess {
  private readonly stdoutTail = new OutputTail();
  private readonly stderrTail = new OutputTail();
  private stopping: Promise<ExitStatus> | null = null;
  private status: ExitStatus | null = null;
  readonly exited: Promise<ExitStatus>;

  constructor(
    readonly name: string,
    readonly port: number,
    readonly dir: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => this.stdoutTail.append(chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.stderrTail.append(chunk));
    this.exited = new Promise((resolve) => {
      const done = (status: ExitStatus): void => {
        this.status ??= status;
        resolve(this.status);
      };
      child.on('exit', (code, signal) => done({ code, signal }));
      child.on('error', (error) => {
        this.stderrTail.append(`\n[spawn error] ${error.message}\n`);
        done({ code: null, signal: null });
      });
    });
    live.add(this);
  }

  get stdout(): string {
    return this.stdoutTail.toString();
  }

  get stderr(): string {
    return this.stderrTail.toString();
  }

  /** Null while the process runs. */
  get exitStatus(): ExitStatus | null {
    return this.status;
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves with how it exited. Always removes the temp dir. */
  stop(graceMs = 5000): Promise<ExitStatus> {
    this.stopping ??= (async () => {
      try {
        if (this.status === null) {
          this.child.kill('SIGTERM');
          let timer: NodeJS.Timeout | undefined;
          const killed = new Promise<void>((resolve) => {
            timer = setTimeout(() => {
              this.child.kill('SIGKILL');
              resolve();
            }, graceMs);
          });
          await Promise.race([this.exited, killed]);
          clearTimeout(timer);
        }
        return await this.exited;
      } finally {
        rmSync(this.dir, { recursive: true, force: true });
        live.delete(this);
      }
    })();
    return this.stopping;
  }

  /** Last-resort synchronous cleanup when the harness itself exits. */
  killNow(): void {
    if (this.status === null) this.child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  describe(): string {
    return `${this.name} (pid ${this.child.pid ?? '?'}, port ${this.port})`;
  }
}

process.on('exit', () => {
  for (const server of [...live]) server.killNow();
});

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isPortTaken(output: string): boolean {
  return /EADDRINUSE|Address already in use/i.test(output);
}

function exitText(status: ExitStatus): string {
  return status.signal !== null ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
}

/** Polls PING (once readyLog, if any, is logged) until PONG; throws with the output if the process exits or the deadline passes. */
async function waitUntilReady(server: ServerProcess, options: StartOptions): Promise<void> {
  const timeoutMs = options.readyTimeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  let lastProblem = 'no attempt yet';
  while (server.exitStatus === null) {
    if (options.readyLog !== undefined && !options.readyLog.test(server.stderr + server.stdout)) {
      lastProblem = `no log line matching ${options.readyLog} yet`;
    } else {
      try {
        const reply = await respPing(server.port, { password: options.password, timeoutMs: 1000 });
        if (reply === '+PONG') return;
        lastProblem = `PING answered ${JSON.stringify(reply)}`;
      } catch (error) {
        lastProblem = (error as Error).message;
      }
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${server.describe()} did not answer PING with PONG within ${timeoutMs} ms (last: ${lastProblem})\n` +
          `command: ${options.command} ${options.args(server.port, server.dir).join(' ')}\n` +
          `--- stderr ---\n${server.stderr}\n--- stdout ---\n${server.stdout}`,
      );
    }
    await sleep(50);
  }
}

/**
 * Spawns a server on a free port with a fresh temp dir and resolves once it answers PING with
 * PONG. On failure the process is killed, its temp dir removed, and the error carries its output.
 */
export async function startServer(options: StartOptions): Promise<ServerProcess> {
  const attempts = options.attempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), `${options.name.replace(/[^a-z0-9]+/gi, '-')}-`));
    const child = spawn(options.command, options.args(port, dir), {
      cwd: dir,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new ServerProcess(options.name, port, dir, child);
    try {
      await waitUntilReady(server, options);
    } catch (error) {
      await server.stop(1000);
      throw error;
    }
    if (server.exitStatus === null) return server;
    const output = server.stderr + server.stdout;
    await server.stop();
    if (attempt < attempts && isPortTaken(output)) continue;
    throw new Error(
      `${server.describe()} ${exitText(server.exitStatus)} before answering PING\n` +
        `command: ${options.command} ${options.args(port, dir).join(' ')}\n` +
        `--- stderr ---\n${server.stderr}\n--- stdout ---\n${server.stdout}`,
    );
  }
}

export interface RaftlockOptions {
  password?: string;
  /** --log-level; at warn and above the server does not log that it is ready, so only PING tells. */
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
  /** The server entry point to run (default: RAFTLOCK_MAIN, this checkout's build). */
  main?: string;
}

/** Starts the built raftlock server (dist/src/server/main.js) with its data dir in a temp dir. */
export function startRaftlock(options: RaftlockOptions = {}): Promise<ServerProcess> {
  const main = options.main ?? RAFTLOCK_MAIN;
  if (!existsSync(main)) {
    return Promise.reject(new Error(`${main} does not exist: run npm run build first`));
  }
  const passwordArgs = options.password === undefined ? [] : ['--requirepass', options.password];
  return startServer({
    name: 'raftlock',
    command: process.execPath,
    args: (port, dir) => [
      ...SERVER_NODE_FLAGS, main, '--port', String(port), '--http-port', '0', '--bind', HOST, '--data-dir', join(dir, 'data'),
      ...passwordArgs, ...(options.logLevel === undefined ? [] : ['--log-level', options.logLevel]),
      ...(options.extraArgs ?? []),
    ],
    env: options.env,
    readyLog: options.logLevel === undefined || options.logLevel === 'info' || options.logLevel === 'debug' ? /ready to accept connections/ : undefined,
    password: options.password,
    readyTimeoutMs: options.readyTimeoutMs,
  });
}

/** Starts Debian's redis-server without persistence, its working dir a temp dir. */
export function startRedisServer(options: { extraArgs?: string[]; readyTimeoutMs?: number } = {}): Promise<ServerProcess> {
  return startServer({
    name: 'redis-server',
    command: 'redis-server',
    args: (port, dir) => [
      '--port', String(port), '--bind', HOST, '--dir', dir, '--save', '', '--appendonly', 'no',
      ...(options.extraArgs ?? []),
    ],
    readyLog: /Ready to accept connections/,
    readyTimeoutMs: options.readyTimeoutMs,
  });
}
