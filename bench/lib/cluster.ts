// A cluster of real raftlock node processes on loopback, for the cluster tests, the chaos runner and
// the cluster benchmarks: free ports, one data dir per node, kill -9 / SIGTERM / SIGSTOP / SIGCONT and
// restarts, and a hook that routes each peer link through an address the caller picks (a fault proxy).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { RAFTLOCK_MAIN, respPing } from './proc.js';
import { SERVER_NODE_FLAGS } from '../../src/server/node-flags.js';

/** How many times start() tries, each on fresh ports, when a node finds its port taken. */
const START_ATTEMPTS = 3;

/** Node processes still running: killed if this process exits without closing its clusters. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface Address {
  host: string;
  port: number;
}

export interface ClusterOptions {
  nodes: number;
  partitions?: number;
  secret?: string;
  /** More flags for every node. */
  args?: string[];
  /** More flags for one node (its own --metrics-port, say). */
  nodeArgs?: (id: string) => string[];
  /** More environment for every node (OTEL_* for tracing, say), on top of this process's. */
  env?: NodeJS.ProcessEnv;
  /** The server entry point to run (default: this checkout's dist/src/server/main.js). */
  main?: string;
  /**
   * The address node `from` dials to reach node `to`, whose peer transport listens at `target`
   * (the node with the smaller id dials). Default: the target itself.
   */
  link?: (from: string, to: string, target: Address) => Promise<Address>;
  /** Where the data dirs go (default: a fresh temp dir, removed by close()). */
  dataRoot?: string;
  /** Keeps each node's log lines (the last ones are shown when a node fails to start). */
  logLines?: number;
}

export interface NodeProcess {
  readonly id: string;
  readonly port: number;
  readonly clusterPort: number;
  readonly dataDir: string;
  child: ChildProcess | null;
  /** Whether it is stopped with SIGSTOP. */
  paused: boolean;
  /** Its recent stderr lines. */
  log: string[];
}

/** A running cluster; close() stops every node (SIGKILL) and removes the temp data. */
export class ProcessCluster {
  readonly nodes: NodeProcess[];
  private readonly peersArg = new Map<string, string>();
  private readonly ownsDataRoot: boolean;

  private constructor(private readonly options: ClusterOptions, readonly dataRoot: string, nodes: NodeProcess[]) {
    this.nodes = nodes;
    this.ownsDataRoot = options.dataRoot === undefined;
  }

  /**
   * Starts the nodes and waits until each answers PING. The free ports are picked before the nodes
   * bind them, and another process can take one in between (an outgoing connection's ephemeral
   * port, say): a node that then cannot listen (EADDRINUSE) makes the whole cluster start again
   * on fresh ports, up to START_ATTEMPTS times.
   */
  static async start(options: ClusterOptions): Promise<ProcessCluster> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await ProcessCluster.startOnce(options);
      } catch (error) {
        if (attempt >= START_ATTEMPTS || !(error instanceof Error) || !error.message.includes('EADDRINUSE')) throw error;
      }
    }
  }

  private static async startOnce(options: ClusterOptions): Promise<ProcessCluster> {
    const dataRoot = options.dataRoot ?? mkdtempSync(join(tmpdir(), 'raftlock-cluster-'));
    const nodes: NodeProcess[] = [];
    const ports = await distinctFreePorts(2 * options.nodes);
    for (let i = 0; i < options.nodes; i++) {
      const id = `n${i + 1}`;
      nodes.push({ id, port: ports[2 * i]!, clusterPort: ports[2 * i + 1]!, dataDir: join(dataRoot, id), child: null, paused: false, log: [] });
    }
    const cluster = new ProcessCluster(options, dataRoot, nodes);
    try {
      for (const node of nodes) {
        const entries: string[] = [];
        for (const other of nodes) {
          const target = { host: '127.0.0.1', port: other.clusterPort };
          const at = other === node || options.link === undefined ? target : await options.link(node.id, other.id, target);
          entries.push(`${other.id}=${at.host}:${at.port}`);
        }
        cluster.peersArg.set(node.id, entries.join(','));
      }
      await Promise.all(nodes.map((n) => cluster.startNode(n.id)));
    } catch (error) {
      await cluster.close();
      // A caller's data root is kept: only what these nodes wrote in it goes.
      if (!cluster.ownsDataRoot) for (const node of nodes) rmSync(node.dataDir, { recursive: true, force: true });
      throw error;
    }
    return cluster;
  }

  node(id: string): NodeProcess {
    const node = this.nodes.find((n) => n.id === id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Starts (or restarts) a node and waits until it answers PING. */
  async startNode(id: string, extraArgs: string[] = []): Promise<void> {
    const node = this.node(id);
    if (node.child !== null) throw new Error(`${id} is running`);
    const args = [
      ...SERVER_NODE_FLAGS, this.options.main ?? RAFTLOCK_MAIN, '--node-id', id, '--port', String(node.port), '--http-port', '0', '--cluster-port', String(node.clusterPort),
      '--peers', this.peersArg.get(id)!, '--data-dir', node.dataDir, '--partitions', String(this.options.partitions ?? 3),
      ...(this.options.secret === undefined ? [] : ['--cluster-secret', this.options.secret]),
      ...(this.options.args ?? []), ...(this.options.nodeArgs?.(id) ?? []), ...extraArgs,
    ];
    const env = this.options.env === undefined ? process.env : { ...process.env, ...this.options.env };
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    node.child = child;
    live.add(child);
    node.paused = false;
    node.log = [];
    const keep = this.options.logLines ?? 200;
    let partial = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      node.log.push(...lines);
      if (node.log.length > keep) node.log.splice(0, node.log.length - keep);
    });
    child.once('exit', () => {
      live.delete(child);
      if (node.child === child) node.child = null;
    });
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (node.child !== child) throw new Error(`${id} exited while starting:\n${node.log.slice(-20).join('\n')}`);
      try {
        if ((await respPing(node.port, { timeoutMs: 500 })) === '+PONG') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`${id} did not answer PING within 20 s:\n${node.log.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** kill -9; resolves once the process is gone. */
  async kill(id: string): Promise<void> {
    await this.signalAndWait(id, 'SIGKILL');
  }

  /** SIGTERM (clean shutdown: leadership is handed off first); resolves once it exited. */
  async stop(id: string): Promise<void> {
    await this.signalAndWait(id, 'SIGTERM');
  }

  pause(id: string): void {
    const node = this.node(id);
    if (node.child === null || node.paused) return;
    node.child.kill('SIGSTOP');
    node.paused = true;
  }

  resume(id: string): void {
    const node = this.node(id);
    if (node.child === null || !node.paused) return;
    node.child.kill('SIGCONT');
    node.paused = false;
  }

  /** Ids of the nodes running now. */
  running(): string[] {
    return this.nodes.filter((n) => n.child !== null).map((n) => n.id);
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => {
      if (n.child === null) return;
      if (n.paused) n.child.kill('SIGCONT');
      await this.signalAndWait(n.id, 'SIGKILL');
    }));
    if (this.ownsDataRoot) rmSync(this.dataRoot, { recursive: true, force: true });
  }

  private async signalAndWait(id: string, signal: NodeJS.Signals): Promise<void> {
    const node = this.node(id);
    const child = node.child;
    if (child === null) return;
    const exited = new Promise((r) => child.once('exit', r));
    if (node.paused && signal !== 'SIGKILL') child.kill('SIGCONT');
    child.kill(signal);
    await exited;
    node.paused = false;
  }
}

/** count different free ports: all are held open at once, then released together. */
async function distinctFreePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  })));
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((r) => server.close(r))));
  return ports;
}
