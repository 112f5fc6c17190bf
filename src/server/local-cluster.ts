#!/usr/bin/env node
/**
 * `npm run cluster`: a local cluster of raftlock nodes on 127.0.0.1 — RESP on
 * 7001, 7002, ..., peer transport on 17001, 17002, ..., the REST API on 8083,
 * 8084, ..., data in ./data/cluster/n1, n2, ... Each node's log lines are
 * prefixed with its id.
 * Ctrl-C (or SIGTERM) stops every node cleanly.
 *
 * Options: --nodes N (default 3), --partitions P (default 8), --base-port
 * (default 7001), --data-dir (default ./data/cluster); anything after `--`
 * goes to every node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { SERVER_NODE_FLAGS } from './node-flags.js';

const program = new Command('raftlock-cluster')
  .description('Starts a local raftlock cluster (one process per node); Ctrl-C stops it.')
  .option('--nodes <n>', 'nodes', (v) => Number(v), 3)
  .option('--partitions <n>', 'partitions (Raft groups)', (v) => Number(v), 8)
  .option('--base-port <port>', 'RESP port of n1 (peer transport: + 10000)', (v) => Number(v), 7001)
  .option('--data-dir <dir>', 'data directories go under here, one per node', './data/cluster')
  .allowExcessArguments(true)
  .parse(process.argv);
const options = program.opts<{ nodes: number; partitions: number; basePort: number; dataDir: string }>();
const extra = program.args;

const server = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
/** Node i's REST API port: the default port, then the next ones. */
const HTTP_BASE_PORT = 8083;
const ids = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
const peers = ids.map((id, i) => `${id}=127.0.0.1:${options.basePort + 10_000 + i}`).join(',');
const children = new Map<string, ChildProcess>();

for (const [i, id] of ids.entries()) {
  const child = spawn(process.execPath, [
    ...SERVER_NODE_FLAGS, server, '--node-id', id, '--port', String(options.basePort + i), '--http-port', String(HTTP_BASE_PORT + i), '--peers', peers,
    '--partitions', String(options.partitions), '--data-dir', join(options.dataDir, id), ...extra,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.set(id, child);
  const prefix = (stream: NodeJS.ReadableStream, out: NodeJS.WritableStream): void => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) out.write(`${id} | ${line}\n`);
    });
  };
  prefix(child.stdout!, process.stdout);
  prefix(child.stderr!, process.stderr);
  child.on('exit', (code, signal) => {
    children.delete(id);
    // The others keep running (a node killed on purpose shows failover); Ctrl-C stops them all.
    process.stdout.write(`${id} exited (${signal ?? `code ${code}`})${stopping ? '' : `; ${children.size} node(s) still running`}\n`);
    if (children.size === 0) process.exit(stopping ? 0 : 1);
  });
}
process.stdout.write(`cluster of ${ids.length}: RESP ${ids.map((_, i) => options.basePort + i).join(', ')}; try redis-cli -c -p ${options.basePort} KLOCK r1 me 10000\n`);

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  for (const child of children.values()) child.kill('SIGTERM');
  setTimeout(() => {
    for (const child of children.values()) child.kill('SIGKILL');
  }, 10_000).unref();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
