/**
 * A controllable TCP proxy for fault injection between real processes: every
 * link between two nodes runs through one, so a test can cut it (both ways
 * or one way), black-hole it, slow it down, or reset its connections.
 *
 * Modes:
 *   'pass'       bytes flow both ways (after `delayMs`, order kept).
 *   'reset'      existing connections are destroyed and new ones refused at once.
 *   'blackhole'  connections stay open but every byte is swallowed (a partition
 *                that TCP cannot notice: only timeouts reveal it).
 * One-way cuts swallow bytes in one direction only ('forward' is from the
 * client that connected to the proxy towards the target).
 */
import net from 'node:net';
import { ProcessCluster, type ClusterOptions } from '../../../bench/lib/cluster.js';

export type ProxyMode = 'pass' | 'reset' | 'blackhole';
export type Direction = 'forward' | 'backward';

interface Link {
  client: net.Socket;
  upstream: net.Socket;
}

export class FaultProxy {
  private mode: ProxyMode = 'pass';
  private readonly cut = new Set<Direction>();
  private delayMs = 0;
  private readonly links = new Set<Link>();
  /** Bytes swallowed by cuts and black holes, per direction. */
  readonly swallowed = { forward: 0, backward: 0 };

  private constructor(private readonly server: net.Server, private readonly target: { host: string; port: number }) {
    server.on('connection', (client) => this.accept(client));
  }

  /** Listens on `port` (0: any free port) and forwards to target. */
  static async start(target: { host: string; port: number }, port = 0): Promise<FaultProxy> {
    const server = net.createServer();
    const proxy = new FaultProxy(server, target);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get connections(): number {
    return this.links.size;
  }

  setMode(mode: ProxyMode): void {
    this.mode = mode;
    if (mode === 'reset') for (const link of [...this.links]) this.drop(link);
  }

  /** Cuts (or restores) one direction; the connection itself stays up. */
  setCut(direction: Direction, cut: boolean): void {
    if (cut) this.cut.add(direction);
    else this.cut.delete(direction);
  }

  /** Delays every chunk by ms in both directions, keeping order (a slow link). */
  setDelay(ms: number): void {
    this.delayMs = ms;
  }

  /** Back to a clean link: pass, no cuts, no delay. */
  heal(): void {
    this.mode = 'pass';
    this.cut.clear();
    this.delayMs = 0;
  }

  async close(): Promise<void> {
    for (const link of [...this.links]) this.drop(link);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(this.target.port, this.target.host);
    const link: Link = { client, upstream };
    this.links.add(link);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.pipe(link, client, upstream, 'forward');
    this.pipe(link, upstream, client, 'backward');
    const end = (): void => this.drop(link);
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
  }

  private pipe(link: Link, from: net.Socket, to: net.Socket, direction: Direction): void {
    // Delayed chunks wait in arrival order; one timer releases the head when it is due.
    const queue: { due: number; chunk: Buffer }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const release = (): void => {
      timer = undefined;
      while (queue.length > 0 && queue[0]!.due <= performance.now()) {
        const { chunk } = queue.shift()!;
        if (this.links.has(link) && !to.destroyed) to.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(release, Math.max(1, queue[0]!.due - performance.now()));
    };
    from.on('data', (chunk: Buffer) => {
      if (this.mode === 'blackhole' || this.cut.has(direction)) {
        this.swallowed[direction] += chunk.length;
        return;
      }
      if (this.delayMs <= 0 && queue.length === 0) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      queue.push({ due: performance.now() + this.delayMs, chunk });
      timer ??= setTimeout(release, Math.max(1, this.delayMs));
    });
    from.on('close', () => {
      if (timer !== undefined) clearTimeout(timer);
    });
  }

  private drop(link: Link): void {
    if (!this.links.delete(link)) return;
    link.client.destroy();
    link.upstream.destroy();
  }
}

/**
 * A cluster of real node processes whose every peer link runs through a
 * FaultProxy, keyed `from|to` (the dialing node first: the smaller id).
 */
export async function proxiedCluster(options: Omit<ClusterOptions, 'link'>): Promise<{ cluster: ProcessCluster; proxies: Map<string, FaultProxy> }> {
  const proxies = new Map<string, FaultProxy>();
  const cluster = await ProcessCluster.start({
    ...options,
    link: async (from, to, target) => {
      if (!(from < to)) return target;
      const proxy = await FaultProxy.start(target);
      proxies.set(`${from}|${to}`, proxy);
      return { host: '127.0.0.1', port: proxy.port };
    },
  });
  return { cluster, proxies };
}
