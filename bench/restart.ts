// Restart and memory benchmark of the single-node server: fills it with N PERSISTENT locks, records
// RSS per lock, kill -9s it, and times the restart (WAL replay) until it serves again.
// Reproduce: npm run build && node dist/bench/restart.js [--locks N]   (writes bench/RESULTS-restart.md)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, RAFTLOCK_MAIN, REPO_ROOT } from './lib/proc.js';

interface Started {
  child: ChildProcess;
  readyMs: number;
}

async function start(port: number, dataDir: string): Promise<Started> {
  const began = performance.now();
  const child = spawn(process.execPath, [RAFTLOCK_MAIN, '--port', String(port), '--data-dir', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
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
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((r) => setTimeout(r, 2000));
    const rssAfter = rssBytes(first.child.pid!);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const second = await start(port, dir);
    const check = await pipeline(port, 1000, (i) => ['EXISTS', `lock:${Math.floor((i * locks) / 1000)}`]);
    const held = check.filter((line) => line === ':1').length;
    second.child.kill('SIGKILL');
    const lines = [
      '# raftlock restart and memory benchmark',
      '',
      `Produced by \`node dist/bench/restart.js --locks ${locks}\` on ${new Date().toISOString()} (Node ${process.version}, ${readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.+)/)?.[1] ?? 'unknown CPU'}).`,
      '',
      '| measurement | value |',
      '|---|---:|',
      `| PERSISTENT locks written (one client, pipelined window of 4000) | ${locks.toLocaleString('en-US')} in ${(fillMs / 1000).toFixed(1)} s (${Math.round(locks / (fillMs / 1000)).toLocaleString('en-US')}/s) |`,
      `| RSS before / after | ${(rssBefore / 2 ** 20).toFixed(0)} MiB / ${(rssAfter / 2 ** 20).toFixed(0)} MiB |`,
      `| RSS growth per held lock (lock table + the uncompacted in-memory Raft log) | ${Math.round((rssAfter - rssBefore) / locks)} bytes |`,
      `| restart after kill -9 until ready (WAL replay of ${locks.toLocaleString('en-US')} entries) | ${(second.readyMs / 1000).toFixed(2)} s |`,
      `| sampled locks still held after restart | ${held} / 1000 |`,
      '',
      'The Raft log is not compacted yet: every write stays in the in-memory log and the WAL, so memory',
      'per lock includes its log entry and restart replays every write ever made. Snapshots of the lock',
      'table with log compaction are the next step (the issue on Raft and storage sets ≤ 250 bytes/lock).',
      '',
    ];
    console.log(lines.join('\n'));
    writeFileSync(join(REPO_ROOT, 'bench', 'RESULTS-restart.md'), lines.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(`restart bench failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exitCode = 1;
});
