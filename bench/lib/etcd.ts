// The etcd baseline of the cluster benchmark: a 3-member etcd cluster (Debian's etcd-server, one
// process per member on loopback, fresh temp data dirs) and a lock target that does what KLOCK does
// as one etcd transaction: If(createRevision(key) = 0) Then(put key owner with a lease) Else(get key).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { Etcd3, type Lease } from 'etcd3';
import { commandOutput } from './report.js';
import { which } from './proc.js';
import type { LockTarget } from './load.js';

const HOST = '127.0.0.1';
const LOG_LINES_MAX = 50;

/** Why the etcd baseline cannot run, or null. */
export function etcdProblem(): string | null {
  if (which('etcd') === null) {
    return 'etcd is not on PATH: the cluster benchmark compares raftlock with a 3-member etcd cluster and does not run without it; ' +
      'install it with `apt-get install -y etcd-server` (Debian\'s etcd 3.4)';
  }
  return null;
}

/** `etcd --version`'s first line, e.g. "etcd Version: 3.4.23". */
export function etcdVersion(): string {
  return commandOutput('etcd', ['--version']).split('\n')[0] ?? 'unknown';
}

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  child: ChildProcess;
  log: string[];
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

async function distinctFreePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<net.Server>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => resolve(server));
  })));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** etcd's flags for one member; everything else is etcd's default (heartbeat 100 ms, election 1000 ms). */
export function etcdArgs(m: { name: string; dataDir: string; clientPort: number; peerPort: number }, initialCluster: string, token: string): string[] {
  const client = `http://${HOST}:${m.clientPort}`;
  const peer = `http://${HOST}:${m.peerPort}`;
  return [
    '--name', m.name, '--data-dir', m.dataDir,
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', initialCluster, '--initial-cluster-token', token, '--initial-cluster-state', 'new',
    '--logger', 'zap', '--log-level', 'warn',
  ];
}

/** A running etcd cluster; close() kills every member and removes the data dirs. */
export class EtcdCluster {
  private constructor(readonly members: Member[], private readonly dataRoot: string) {}

  /** Client endpoints, e.g. http://127.0.0.1:2379. */
  get endpoints(): string[] {
    return this.members.map((m) => `http://${HOST}:${m.clientPort}`);
  }

  static async start(options: { members: number; readyTimeoutMs?: number }): Promise<EtcdCluster> {
    const problem = etcdProblem();
    if (problem !== null) throw new Error(problem);
    const dataRoot = mkdtempSync(join(tmpdir(), 'raftlock-bench-etcd-'));
    const ports = await distinctFreePorts(2 * options.members);
    const specs = Array.from({ length: options.members }, (_, i) => ({
      name: `e${i + 1}`, dataDir: join(dataRoot, `e${i + 1}`), clientPort: ports[2 * i]!, peerPort: ports[2 * i + 1]!,
    }));
    const initialCluster = specs.map((s) => `${s.name}=http://${HOST}:${s.peerPort}`).join(',');
    const token = `raftlock-bench-${process.pid}-${Date.now()}`;
    const members = specs.map((spec): Member => {
      const child = spawn('etcd', etcdArgs(spec, initialCluster, token), { stdio: ['ignore', 'ignore', 'pipe'] });
      live.add(child);
      child.once('exit', () => live.delete(child));
      const member: Member = { name: spec.name, clientPort: spec.clientPort, peerPort: spec.peerPort, child, log: [] };
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        member.log.push(...chunk.split('\n').filter((l) => l.length > 0));
        if (member.log.length > LOG_LINES_MAX) member.log.splice(0, member.log.length - LOG_LINES_MAX);
      });
      return member;
    });
    const cluster = new EtcdCluster(members, dataRoot);
    try {
      await cluster.waitHealthy(options.readyTimeoutMs ?? 30_000);
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  /** Polls every member's /health until all answer {"health":"true"} (a leader is elected). */
  private async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer yet';
    for (;;) {
      const dead = this.members.find((m) => m.child.exitCode !== null || m.child.signalCode !== null);
      if (dead !== undefined) throw new Error(`etcd member ${dead.name} exited while starting:\n${dead.log.join('\n')}`);
      const answers = await Promise.all(this.members.map(async (m) => {
        try {
          const response = await fetch(`http://${HOST}:${m.clientPort}/health`, { signal: AbortSignal.timeout(1000) });
          return ((await response.json()) as { health?: string }).health === 'true';
        } catch (error) {
          last = `${m.name}: ${(error as Error).message}`;
          return false;
        }
      }));
      if (answers.every((ok) => ok)) return;
      if (Date.now() > deadline) {
        throw new Error(`etcd cluster not healthy within ${timeoutMs} ms (last: ${last})\n` +
          this.members.map((m) => `--- ${m.name} ---\n${m.log.slice(-10).join('\n')}`).join('\n'));
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The members' process ids. */
  pids(): (number | undefined)[] {
    return this.members.map((m) => m.child.pid);
  }

  /** Throws with its log if a member has exited. */
  assertAlive(): void {
    for (const m of this.members) {
      if (m.child.exitCode !== null || m.child.signalCode !== null) {
        throw new Error(`etcd member ${m.name} exited (code ${m.child.exitCode}, signal ${m.child.signalCode}):\n${m.log.join('\n')}`);
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => {
      if (m.child.exitCode !== null || m.child.signalCode !== null) return Promise.resolve();
      const exited = new Promise((r) => m.child.once('exit', r));
      m.child.kill('SIGKILL');
      return exited;
    }));
    rmSync(this.dataRoot, { recursive: true, force: true });
  }
}

/**
 * `clients` etcd clients on one endpoint, each on its own gRPC connection with its own lease of
 * ttlSeconds (kept alive by the client, revoked by close(), which deletes the keys put with it).
 * issue() runs the put-if-absent transaction; requests are spread over the clients round-robin.
 */
export async function etcdLockTarget(options: { endpoint: string; clients: number; ttlSeconds: number; owner: string }): Promise<LockTarget> {
  const clients: Etcd3[] = [];
  const leases: Lease[] = [];
  const leaseIds: string[] = [];
  try {
    for (let i = 0; i < options.clients; i++) {
      // A private subchannel pool: otherwise grpc-js shares one connection among identical channels.
      const client = new Etcd3({ hosts: options.endpoint, grpcOptions: { 'grpc.use_local_subchannel_pool': 1 } });
      clients.push(client);
      const lease = client.lease(options.ttlSeconds);
      leases.push(lease);
      leaseIds.push(await lease.grant());
    }
  } catch (error) {
    for (const client of clients) client.close();
    throw error;
  }
  const owner = Buffer.from(options.owner);
  let next = 0;
  return {
    issue(key, done) {
      const i = next;
      next = (next + 1) % clients.length;
      const k = Buffer.from(key);
      clients[i]!.kv.txn({
        compare: [{ key: k, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key: k, value: owner, lease: leaseIds[i]! } }],
        failure: [{ request_range: { key: k } }],
      }).then(() => done(null), (error: Error) => done(error.message));
    },
    async close() {
      await Promise.all(leases.map((lease) => lease.revoke().catch(() => undefined)));
      for (const client of clients) client.close();
    },
  };
}
