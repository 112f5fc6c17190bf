/**
 * Peer transport: carries the Raft messages of every partition between cluster nodes, one TCP
 * connection per pair of nodes, all groups multiplexed on it (frames: wire.ts).
 *
 * Who dials: a node dials every peer whose id sorts after its own (JavaScript string order) and
 * accepts connections from peers whose ids sort before it. So there is never a pair of competing
 * connections to settle; a fresh connection from the same peer (it restarted, or the old one is
 * half-open) replaces the old one. The dialer reconnects with jittered exponential backoff while
 * the peer is down; the acceptor waits for it.
 *
 * Handshake (the frame header's version byte is the protocol version; a mismatch is refused):
 *   dialer   → hello     {nodeId, to, auth, nonceD}
 *   acceptor → challenge {nodeId, auth, nonceA, proofA}   proofA = HMAC(secret, "acceptor", ids, nonces)
 *   dialer   → auth      {proofD}                          proofD = HMAC(secret, "dialer", ids, nonces)
 *   acceptor → ready
 * Both sides prove they hold the secret over both fresh nonces (the secret never crosses the wire);
 * the role label stops a proof from being reflected back. Without a secret the proofs are empty; a
 * secret on one side only, an unknown node id, a wrong destination or a failed proof is refused,
 * logged and the connection closed.
 *
 * Sending: send() encodes the message at once (later mutation of the message cannot change what is
 * sent) and queues it; every queue with work is flushed as batch frames once per event-loop turn.
 * A peer's queue is bounded in bytes: beyond queueBytesMax, messages are dropped and counted — Raft
 * retransmits what matters. Queued messages survive a reconnect; those already written to a socket
 * that breaks are lost.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { Message, NodeId } from '../../raft/types.js';
import type { Logger } from '../server/log.js';
import {
  BATCH_OVERHEAD_BYTES_MAX, FRAME_BYTES_MAX_DEFAULT, FrameDecoder, NONCE_BYTES, batchFrame, encodeFrame, encodeItem,
  type Frame, type GroupMessage,
} from './wire.js';

export interface PeerAddress {
  host: string;
  port: number;
}

export interface PeerTransportOptions {
  nodeId: NodeId;
  listen: PeerAddress;
  /** Every other node of the cluster (an entry for nodeId itself is ignored). */
  peers: Map<NodeId, PeerAddress>;
  /** Shared cluster secret: peers prove they hold it (HMAC-SHA256 challenge–response). */
  secret?: string;
  /** Bound on the bytes queued for one peer (encoded messages); default 64 MiB. */
  queueBytesMax?: number;
  /** Bound on one frame, in both directions; default FRAME_BYTES_MAX_DEFAULT. */
  frameBytesMax?: number;
  /** Reconnect backoff: first delay, doubling to the cap, each scaled by a random factor in [0.5, 1). */
  backoffMsMin?: number;
  backoffMsMax?: number;
  /** A connection that has not completed its handshake by then is closed. */
  handshakeTimeoutMs?: number;
  /** Unauthenticated inbound connections held at once; more are closed on arrival. */
  pendingConnectionsMax?: number;
  logger?: Logger;
  /** Randomness for backoff jitter (default Math.random). */
  rng?: () => number;
  /** A batch of messages from an authenticated peer, in the order sent. */
  onMessages: (from: NodeId, batch: GroupMessage[]) => void;
}

export interface TransportStats {
  /** Messages written to a peer's socket. */
  sent: number;
  /** Messages received and delivered to onMessages. */
  received: number;
  /** Messages dropped: queue full, too large for a frame, unknown destination, or not addressed to this link. */
  dropped: number;
  /** Handshakes completed. */
  connects: number;
  /** Handshakes that failed authentication (wrong secret, or a secret on one side only). */
  authFailures: number;
  /** Connections closed because their bytes were not valid frames. */
  malformed: number;
}

const DEFAULTS = {
  queueBytesMax: 64 * 1024 * 1024,
  backoffMsMin: 50,
  backoffMsMax: 2000,
  handshakeTimeoutMs: 5000,
  pendingConnectionsMax: 64,
};

const SILENT_LOGGER: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

type ConnState = 'hello' | 'challenge' | 'auth' | 'ready' | 'open' | 'closing';

interface Conn {
  socket: net.Socket;
  decoder: FrameDecoder;
  /** True for connections this node dialed. */
  outbound: boolean;
  /** Known from the start when dialing, after a valid hello when accepting. */
  peer: Peer | null;
  /** The frame this connection expects next. */
  state: ConnState;
  nonce: Buffer;
  peerNonce: Uint8Array | null;
  timer: NodeJS.Timeout | null;
  remote: string;
}

interface Peer {
  id: NodeId;
  address: PeerAddress;
  /** This node dials the peer (its id sorts after ours). */
  dials: boolean;
  link: Conn | null;
  dialing: Conn | null;
  queue: Uint8Array[];
  queueBytes: number;
  attempts: number;
  retry: NodeJS.Timeout | null;
  awaitingDrain: boolean;
}

export class PeerTransport {
  private readonly opts: Required<Omit<PeerTransportOptions, 'secret'>> & { secret: string | undefined };
  private readonly peers = new Map<NodeId, Peer>();
  private readonly conns = new Set<Conn>();
  private readonly dirty = new Set<Peer>();
  private readonly server: net.Server;
  private readonly counters: TransportStats = { sent: 0, received: 0, dropped: 0, connects: 0, authFailures: 0, malformed: 0 };
  private flushImmediate: NodeJS.Immediate | null = null;
  private started = false;
  private closed = false;

  constructor(options: PeerTransportOptions) {
    this.opts = {
      ...options,
      queueBytesMax: options.queueBytesMax ?? DEFAULTS.queueBytesMax,
      frameBytesMax: options.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT,
      backoffMsMin: options.backoffMsMin ?? DEFAULTS.backoffMsMin,
      backoffMsMax: options.backoffMsMax ?? DEFAULTS.backoffMsMax,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULTS.handshakeTimeoutMs,
      pendingConnectionsMax: options.pendingConnectionsMax ?? DEFAULTS.pendingConnectionsMax,
      logger: options.logger ?? SILENT_LOGGER,
      rng: options.rng ?? Math.random,
      secret: options.secret,
    };
    if (this.opts.secret === '') throw new Error('peer transport secret must not be empty');
    for (const [id, address] of options.peers) {
      if (id === options.nodeId) continue;
      this.peers.set(id, {
        id, address, dials: options.nodeId < id, link: null, dialing: null, queue: [], queueBytes: 0, attempts: 0,
        retry: null, awaitingDrain: false,
      });
    }
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Listens on the cluster port, then dials the peers this node is responsible for. */
  async start(): Promise<void> {
    if (this.started || this.closed) throw new Error('peer transport already started or closed');
    this.started = true;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.listen.port, this.opts.listen.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.server.on('error', (err) => this.opts.logger.error('peer transport listener failed', { error: err.message }));
    for (const peer of this.peers.values()) if (peer.dials) this.dial(peer);
  }

  /** The bound listen address (useful with port 0). */
  address(): PeerAddress {
    const a = this.server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  /**
   * Queues a message for `to`; it leaves in this event-loop turn's batch. Returns false when it was
   * dropped (queue full, unknown peer, too large for a frame, transport closed).
   */
  send(to: NodeId, group: number, message: Message): boolean {
    const peer = this.peers.get(to);
    if (peer === undefined || this.closed) return this.drop(`message for ${peer === undefined ? 'unknown peer' : 'closed transport'}`, to);
    const item = encodeItem(group, message);
    if (item.length + BATCH_OVERHEAD_BYTES_MAX > this.opts.frameBytesMax) {
      this.opts.logger.warn('peer message larger than a frame dropped', { peer: to, type: message.type, bytes: item.length });
      return this.drop('oversized', to);
    }
    if (peer.queueBytes + item.length > this.opts.queueBytesMax) return this.drop('queue full', to);
    peer.queue.push(item);
    peer.queueBytes += item.length;
    this.scheduleFlush(peer);
    return true;
  }

  /** Bytes queued for a peer and not yet written to its socket. */
  queueBytes(to: NodeId): number {
    return this.peers.get(to)?.queueBytes ?? 0;
  }

  /** True while an authenticated connection to the peer is open. */
  connected(to: NodeId): boolean {
    return this.peers.get(to)?.link != null;
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  /** Closes the listener and every connection and cancels every timer. Queued messages are discarded. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.flushImmediate !== null) clearImmediate(this.flushImmediate);
    this.flushImmediate = null;
    this.dirty.clear();
    for (const peer of this.peers.values()) {
      if (peer.retry !== null) clearTimeout(peer.retry);
      peer.retry = null;
      peer.queue = [];
      peer.queueBytes = 0;
    }
    for (const conn of this.conns) this.destroy(conn);
    if (this.started) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- connections -------------------------------------------------------------------------------

  private dial(peer: Peer): void {
    const socket = net.connect({ host: peer.address.host, port: peer.address.port });
    const conn = this.track(socket, true, peer, `${peer.address.host}:${peer.address.port}`);
    peer.dialing = conn;
    conn.state = 'challenge';
    socket.write(encodeFrame({ kind: 'hello', nodeId: this.opts.nodeId, to: peer.id, auth: this.opts.secret !== undefined, nonce: conn.nonce }));
  }

  private accept(socket: net.Socket): void {
    if (this.closed) return void socket.destroy();
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    let pending = 0;
    for (const c of this.conns) if (!c.outbound && c.state !== 'open') pending++;
    if (pending >= this.opts.pendingConnectionsMax) {
      this.opts.logger.warn('too many unauthenticated peer connections; closing a new one', { remote });
      return void socket.destroy();
    }
    this.track(socket, false, null, remote).state = 'hello';
  }

  private track(socket: net.Socket, outbound: boolean, peer: Peer | null, remote: string): Conn {
    const conn: Conn = {
      socket, decoder: new FrameDecoder(this.opts.frameBytesMax), outbound, peer, state: 'hello', nonce: randomBytes(NONCE_BYTES),
      peerNonce: null, timer: null, remote,
    };
    this.conns.add(conn);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    conn.timer = setTimeout(() => {
      conn.timer = null;
      this.opts.logger.warn('peer handshake timed out', { peer: conn.peer?.id, remote });
      this.destroy(conn);
    }, this.opts.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', (err) => this.opts.logger.debug('peer connection error', { peer: conn.peer?.id, remote, error: err.message }));
    socket.on('close', () => this.onClose(conn));
    return conn;
  }

  private onData(conn: Conn, chunk: Buffer): void {
    if (conn.state === 'closing') return;
    let frames: Frame[];
    try {
      frames = conn.decoder.push(chunk);
    } catch (err) {
      this.counters.malformed++;
      this.opts.logger.warn('malformed peer frame; closing the connection', { peer: conn.peer?.id, remote: conn.remote, error: (err as Error).message });
      this.destroy(conn);
      return;
    }
    for (const frame of frames) {
      // A frame may close the connection (a refusal, a failed proof): ignore whatever followed it.
      if ((conn.state as ConnState) === 'closing') return;
      this.onFrame(conn, frame);
    }
  }

  private onFrame(conn: Conn, frame: Frame): void {
    if (frame.kind === 'refuse') {
      this.opts.logger.warn('peer refused the connection', { peer: conn.peer?.id, remote: conn.remote, reason: frame.reason });
      return this.destroy(conn);
    }
    if (frame.kind === 'batch' && conn.state === 'open') return this.deliver(conn, frame.batch);
    if (frame.kind === 'hello' && conn.state === 'hello') return this.onHello(conn, frame);
    if (frame.kind === 'challenge' && conn.state === 'challenge') return this.onChallenge(conn, frame);
    if (frame.kind === 'auth' && conn.state === 'auth') return this.onAuth(conn, frame);
    if (frame.kind === 'ready' && conn.state === 'ready') return this.establish(conn);
    this.counters.malformed++;
    this.opts.logger.warn('unexpected peer frame; closing the connection', { peer: conn.peer?.id, remote: conn.remote, kind: frame.kind, state: conn.state });
    this.destroy(conn);
  }

  /** Acceptor: the dialer says who it is. */
  private onHello(conn: Conn, hello: Extract<Frame, { kind: 'hello' }>): void {
    const peer = this.peers.get(hello.nodeId);
    if (peer === undefined) return this.refuse(conn, `unknown node id ${JSON.stringify(hello.nodeId)}`, false);
    if (hello.to !== this.opts.nodeId) return this.refuse(conn, `this is node ${this.opts.nodeId}, not ${hello.to}`, false);
    if (peer.dials) return this.refuse(conn, `node ${this.opts.nodeId} dials ${peer.id}, not the other way round`, false);
    conn.peer = peer;
    const secret = this.opts.secret;
    if (hello.auth !== (secret !== undefined)) {
      return this.refuse(conn, secret === undefined ? 'this node has no cluster secret' : 'a cluster secret is required', true);
    }
    conn.peerNonce = hello.nonce;
    const proof = this.proof('acceptor', peer.id, this.opts.nodeId, hello.nonce, conn.nonce);
    conn.state = 'auth';
    conn.socket.write(encodeFrame({ kind: 'challenge', nodeId: this.opts.nodeId, auth: secret !== undefined, nonce: conn.nonce, proof }));
  }

  /** Dialer: the acceptor answers with its nonce and proves it holds the secret. */
  private onChallenge(conn: Conn, challenge: Extract<Frame, { kind: 'challenge' }>): void {
    const peer = conn.peer!;
    if (challenge.nodeId !== peer.id) return this.refuse(conn, `expected node ${peer.id} at ${conn.remote}, found ${challenge.nodeId}`, false);
    const secret = this.opts.secret;
    if (challenge.auth !== (secret !== undefined)) {
      return this.refuse(conn, secret === undefined ? 'this node has no cluster secret' : 'a cluster secret is required', true);
    }
    const expected = this.proof('acceptor', this.opts.nodeId, peer.id, conn.nonce, challenge.nonce);
    if (!equalProof(expected, challenge.proof)) return this.refuse(conn, 'authentication failed', true);
    conn.state = 'ready';
    conn.socket.write(encodeFrame({ kind: 'auth', proof: this.proof('dialer', this.opts.nodeId, peer.id, conn.nonce, challenge.nonce) }));
  }

  /** Acceptor: the dialer proves it holds the secret. */
  private onAuth(conn: Conn, auth: Extract<Frame, { kind: 'auth' }>): void {
    const peer = conn.peer!;
    const expected = this.proof('dialer', peer.id, this.opts.nodeId, conn.peerNonce!, conn.nonce);
    if (!equalProof(expected, auth.proof)) return this.refuse(conn, 'authentication failed', true);
    conn.socket.write(encodeFrame({ kind: 'ready' }));
    this.establish(conn);
  }

  /** HMAC over the role, both ids (dialer first) and both nonces (dialer's first); empty without a secret. */
  private proof(role: 'dialer' | 'acceptor', dialer: NodeId, acceptor: NodeId, dialerNonce: Uint8Array, acceptorNonce: Uint8Array): Buffer {
    const secret = this.opts.secret;
    if (secret === undefined) return Buffer.alloc(0);
    const mac = createHmac('sha256', secret);
    for (const part of [Buffer.from(`raftlock-peer/1 ${role}`), Buffer.from(dialer), Buffer.from(acceptor), dialerNonce, acceptorNonce]) {
      const length = Buffer.allocUnsafe(4);
      length.writeUInt32BE(part.length, 0);
      mac.update(length).update(part);
    }
    return mac.digest();
  }

  private refuse(conn: Conn, reason: string, authFailure: boolean): void {
    if (authFailure) this.counters.authFailures++;
    this.opts.logger.warn('peer connection refused', { peer: conn.peer?.id, remote: conn.remote, reason });
    conn.state = 'closing';
    // The handshake timer stays armed: it destroys the socket if the other side never closes.
    conn.socket.end(encodeFrame({ kind: 'refuse', reason }));
  }

  private establish(conn: Conn): void {
    const peer = conn.peer!;
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    conn.state = 'open';
    if (peer.dialing === conn) peer.dialing = null;
    const old = peer.link;
    peer.link = conn;
    if (old !== null) this.destroy(old);
    peer.attempts = 0;
    peer.awaitingDrain = false;
    this.counters.connects++;
    this.opts.logger.info('peer connected', { peer: peer.id, remote: conn.remote, outbound: conn.outbound });
    this.scheduleFlush(peer);
  }

  private deliver(conn: Conn, batch: GroupMessage[]): void {
    const peer = conn.peer!;
    const valid = batch.filter(({ message }) => message.from === peer.id && message.to === this.opts.nodeId);
    if (valid.length !== batch.length) {
      this.counters.dropped += batch.length - valid.length;
      this.opts.logger.warn('peer sent messages not addressed to this link; dropped', { peer: peer.id, count: batch.length - valid.length });
    }
    if (valid.length === 0) return;
    this.counters.received += valid.length;
    this.opts.onMessages(peer.id, valid);
  }

  private destroy(conn: Conn): void {
    conn.state = 'closing';
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    conn.socket.destroy();
  }

  private onClose(conn: Conn): void {
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    conn.state = 'closing';
    this.conns.delete(conn);
    const peer = conn.peer;
    if (peer === null) return;
    if (peer.dialing === conn) peer.dialing = null;
    if (peer.link === conn) {
      peer.link = null;
      peer.awaitingDrain = false;
      if (!this.closed) this.opts.logger.info('peer disconnected', { peer: peer.id, remote: conn.remote });
    }
    if (conn.outbound && !this.closed && peer.link === null && peer.dialing === null) this.scheduleRetry(peer);
  }

  private scheduleRetry(peer: Peer): void {
    if (peer.retry !== null) return;
    const ceiling = Math.min(this.opts.backoffMsMax, this.opts.backoffMsMin * 2 ** Math.min(peer.attempts, 30));
    const delayMs = Math.round(ceiling * (0.5 + this.opts.rng() / 2));
    peer.attempts++;
    peer.retry = setTimeout(() => {
      peer.retry = null;
      if (!this.closed && peer.link === null && peer.dialing === null) this.dial(peer);
    }, delayMs);
  }

  // ---- sending -----------------------------------------------------------------------------------

  private scheduleFlush(peer: Peer): void {
    if (peer.link === null || peer.awaitingDrain || peer.queue.length === 0) return;
    this.dirty.add(peer);
    if (this.flushImmediate !== null) return;
    this.flushImmediate = setImmediate(() => {
      this.flushImmediate = null;
      const peers = [...this.dirty];
      this.dirty.clear();
      for (const p of peers) this.flush(p);
    });
  }

  /**
   * Writes the queue as batch frames of at most frameBytesMax. Stops while the socket holds more
   * than queueBytesMax unsent, and resumes on 'drain', so memory per peer stays bounded even when
   * the peer reads slowly.
   */
  private flush(peer: Peer): void {
    const link = peer.link;
    if (link === null) return;
    const itemBytesMax = this.opts.frameBytesMax - BATCH_OVERHEAD_BYTES_MAX;
    let taken = 0;
    while (taken < peer.queue.length) {
      if (link.socket.writableLength > this.opts.queueBytesMax) {
        peer.awaitingDrain = true;
        link.socket.once('drain', () => {
          peer.awaitingDrain = false;
          this.scheduleFlush(peer);
        });
        break;
      }
      const start = taken;
      let bytes = 0;
      while (taken < peer.queue.length && bytes + peer.queue[taken]!.length <= itemBytesMax) bytes += peer.queue[taken++]!.length;
      if (taken === start) throw new Error(`queued item of ${peer.queue[start]!.length} bytes exceeds a frame`);
      link.socket.write(batchFrame(peer.queue.slice(start, taken), bytes));
      peer.queueBytes -= bytes;
      this.counters.sent += taken - start;
    }
    peer.queue = taken === peer.queue.length ? [] : peer.queue.slice(taken);
  }

  private drop(why: string, to: NodeId): false {
    this.counters.dropped++;
    this.opts.logger.debug('peer message dropped', { peer: to, why });
    return false;
  }
}

function equalProof(expected: Buffer, got: Uint8Array): boolean {
  return expected.length === got.length && timingSafeEqual(expected, got);
}
