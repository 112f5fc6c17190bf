// Restart and memory benchmark of the single-node server: fills it with N PERSISTENT locks, records
// RSS per lock, kill -9s it, and times the restart (snapshot load + WAL replay) until it serves again.
// Reproduce: npm run build && node dist/bench/restart.js [--locks N]   (writes bench/RESULTS-restart.md)
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, RAFTLOCK_MAIN, REPO_ROOT, SERVER_COMMAND } from './lib/proc.js';
import { SERVER_NODE_FLAGS } from '../src/server/node-flags.js';

interface Started {
  child: ChildProcess;
  readyMs: number;
}

async function start(port: number, dataDir: string): Promise<Started> {
  const began = performance.now();
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, RAFTLOCK_MAIN, '--port', String(port), '--http-port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  while (!stderr.includes('ready to accept connections')) {
    if (child.exitCode !== null) throw new Error(`server exited: ${stderr}`);
    if (performance.now() - began > 600_000) throw new Error('server not ready after 10 minutes');
    await new Promise((r) => setTimeout(r, 5));
  }
  return { child, readyMs: performance.now() - began };
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** Sends `count` commands made by `command(i)` pipelined in windows; each must have a one-line reply. */
function pipeline(port: number, count: number, command: (i: number) => string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const replies: string[] = [];
    let sent = 0;
    let buffer = '';
    const window = 4000;
    const send = (): void => {
      let out = '';
      while (sent < count && sent - replies.length < window) {
        const args = command(sent++);
        out += `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
      }
      if (out.length > 0) socket.write(out);
    };
    socket.on('connect', send);
    socket.on('error', reject);
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      let at: number;
      while ((at = buffer.indexOf('\r\n')) >= 0) {
        replies.push(buffer.slice(0, at));
        buffer = buffer.slice(at + 2);
      }
      if (replies.length >= count) {
        socket.end();
        resolve(replies);
      } else {
        send();
      }
    });
  });
}

/** Partition 0's Raft indexes from INFO raft (the benchmark runs one partition). */
function raftInfo(port: number): Record<string, string> {
  const text = execFileSync('redis-cli', ['-p', String(port), 'INFO', 'raft'], { encoding: 'utf8' });
  const line = /partition0:(\S+)/.exec(text)?.[1] ?? '';
  const fields = Object.fromEntries(line.split(',').map((kv) => kv.split('=') as [string, string]));
  return { raft_last_index: fields['last_index'] ?? 'NaN', raft_snapshot_index: fields['snapshot_index'] ?? 'NaN' };
}

/**
 * RSS once the process has been idle for a while: V8's memory reducer runs a
 * full GC some seconds after allocation stops and hands freed pages back.
 * Sampled each second for 45 s; the last sample is returned.
 */
async function settledRss(pid: number): Promise<number> {
  let last = rssBytes(pid);
  for (let i = 0; i < 45; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    last = rssBytes(pid);
  }
  return last;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const flag = process.argv.indexOf('--locks');
  const locks = flag > 0 ? Number(process.argv[flag + 1]) : 1_000_000;
  const dir = mkdtempSync(join(tmpdir(), 'raftlock-restart-'));
  const port = await freePort();
  try {
    const first = await start(port, dir);
    await new Promise((r) => setTimeout(r, 500));
    const rssBefore = rssBytes(first.child.pid!);
    const fillStart = performance.now();
    const replies = await pipeline(port, locks, (i) => ['KLOCK', `lock:${i}`, 'owner', '3600000', 'PERSISTENT']);
    const fillMs = performance.now() - fillStart;
    if (replies.some((r) => r !== ':0')) throw new Error(`unexpected reply while filling: ${replies.find((r) => r !== ':0')}`);
    const rssPeak = rssBytes(first.child.pid!);
    const rssAfter = await settledRss(first.child.pid!);
    const raft = raftInfo(port);
    const logEntries = Number(raft['raft_last_index']) - Number(raft['raft_snapshot_index']);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const restarts: number[] = [];
    let held = 0;
    let rssRestarted = 0;
    let restoredFrom = '';
    for (let round = 0; round < 3; round++) {
      const again = await start(port, dir);
      restarts.push(again.readyMs);
      if (round === 0) {
        const check = await pipeline(port, 1000, (i) => ['EXISTS', `lock:${Math.floor((i * locks) / 1000)}`]);
        held = check.filter((line) => line === ':1').length;
        const info = raftInfo(port);
        restoredFrom = `snapshot at index ${Number(info['raft_snapshot_index']).toLocaleString('en-US')} + ${(Number(info['raft_last_index']) - Number(info['raft_snapshot_index'])).toLocaleString('en-US')} log entries`;
        rssRestarted = await settledRss(again.child.pid!);
      }
      again.child.kill('SIGKILL');
      await new Promise((r) => again.child.once('exit', r));
    }
    const perLock = (bytes: number): string => `${Math.round((bytes - rssBefore) / locks)} bytes`;
    const lines = [
      '# raftlock restart and memory benchmark',
      '',
      `Produced by \`node dist/bench/restart.js --locks ${locks}\` on ${new Date().toISOString()} (Node ${process.version}, ${readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.+)/)?.[1] ?? 'unknown CPU'}).`,
      '',
      `One server (\`${SERVER_COMMAND}\`, default options) is filled with PERSISTENT locks by one`,
      'client pipelining a window of 4000 `KLOCK lock:<i> owner 3600000 PERSISTENT`. RSS is read from',
      '/proc; "settled" is RSS 45 s after the fill, the server idle (V8 runs a full GC and hands freed pages',
      'back some seconds after allocation stops; until then RSS includes the garbage of the fill). Then the server is killed with SIGKILL and restarted three times; restart time is from',
      'spawn until it logs "ready to accept connections" (WAL opened, snapshot loaded, log replayed).',
      '',
      '| measurement | value |',
      '|---|---:|',
      `| PERSISTENT locks written | ${locks.toLocaleString('en-US')} in ${(fillMs / 1000).toFixed(1)} s (${Math.round(locks / (fillMs / 1000)).toLocaleString('en-US')}/s) |`,
      `| RSS before the fill / right after / settled | ${mib(rssBefore)} / ${mib(rssPeak)} / ${mib(rssAfter)} |`,
      `| **RSS growth per held lock, settled** (target ≤ 250 bytes) | **${perLock(rssAfter)}** |`,
      `| RSS growth per held lock right after the fill | ${perLock(rssPeak)} |`,
      `| Raft log held in memory after the fill | ${logEntries.toLocaleString('en-US')} entries after the snapshot at ${Number(raft['raft_snapshot_index']).toLocaleString('en-US')} |`,
      `| restart after kill -9 until ready (median of 3) | ${(median(restarts) / 1000).toFixed(2)} s (runs: ${restarts.map((ms) => (ms / 1000).toFixed(2)).join(', ')}) |`,
      `| restored from | ${restoredFrom} |`,
      `| RSS growth per held lock after the restart, settled | ${perLock(rssRestarted)} |`,
      `| sampled locks still held after restart | ${held} / 1000 |`,
      '',
    ];
    console.log(lines.join('\n'));
    writeFileSync(join(REPO_ROOT, 'bench', 'RESULTS-restart.md'), lines.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

main().catch((error: unknown) => {
  console.error(`restart bench failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exitCode = 1;
});
