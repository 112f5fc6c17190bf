/**
 * Peer transport: carries the Raft messages of every partition between cluster nodes, and client
 * commands that a node forwards to the leader of their partition, one TCP connection per pair of
 * nodes, everything multiplexed on it (frames: wire.ts).
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
 * Hello and challenge also carry the incarnation of the sender's data directory (a random id made
 * with the directory). Each side remembers the incarnation of every peer it has linked with
 * (Incarnations, kept in the data directory) and refuses a peer that presents another one: that
 * process has lost its data, or belongs to another cluster that reuses the node ids and addresses.
 * Either way it must not take part in Raft — it would have forgotten its votes and log, or bring
 * another cluster's. A node that lost its data rejoins once the cluster has forgotten it (CLUSTER
 * FORGET, which clears the remembered incarnation; then CLUSTER ADDNODE). A peer is remembered only
 * once both sides have accepted the handshake, so a fresh node does not adopt a stranger's
 * incarnation when the stranger refuses it.
 *
 * Logs: a link coming up and going down (with the reason) at info. A failed or refused connection
 * is logged once per peer (or remote host) and reason (a peer that is down at info, a refusal at
 * warn), then at debug until the peer connects: a peer that is down, or misconfigured, does not
 * log every reconnect attempt.
 *
 * Once open, each side announces its client (RESP) endpoint in a meta frame; peerMeta() returns the
 * last one a peer announced, kept across reconnects.
 *
 * Sending: send() encodes the message at once (later mutation of the message cannot change what is
 * sent) and queues it; every queue with work is flushed once per event-loop turn in one socket
 * write: Raft messages as batch frames, forwarded requests, responses and cancels as frames of their
 * own, in the order queued. While that write is still in the socket, the next flush waits for it.
 * A peer's queue is bounded in bytes: beyond queueBytesMax, messages are dropped and counted — Raft
 * retransmits what matters. Queued messages survive a reconnect; those already written to a socket
 * that breaks are lost.
 *
 * Forwarding: request() sends a client's argv to a peer, whose onRequest runs it and responds with
 * the RESP reply bytes, which come back unchanged. Requests, responses and cancels belong to the link
 * they were sent on (ids count per link and direction; replies come in any order). When the link
 * closes, every outstanding request fails with PeerUnavailableError — sent: false if it never left
 * the queue, true if it may have run — and the serving side calls the cancel hook of every request
 * it has not answered. A reply larger than a frame is replaced by REPLY_TOO_LARGE. A response or a
 * cancel is never dropped silently: if the queue has no room for it, the link is reset instead, so
 * both sides learn of the loss as above.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { Message, NodeId } from '../../raft/types.js';
import type { Logger } from '../server/log.js';
import type { TraceParent } from '../trace/trace.js';
import {
  BATCH_OVERHEAD_BYTES_MAX, FRAME_BYTES_MAX_DEFAULT, FrameDecoder, NONCE_BYTES, encodeFrame, encodeItem, frameQueue,
  lazyFrameSize, outgoingBytes, type Frame, type GroupMessage, type LazyFrame, type Outgoing,
} from './wire.js';

export interface PeerAddress {
  host: string;
  port: number;
}

/** Where clients reach a node over RESP. */
export interface RespEndpoint {
  respHost: string;
  respPort: number;
}

/** A client command forwarded by a peer: its arguments (latin1) and the RESP protocol of its client. */
export interface ForwardedCommand {
  proto: 2 | 3;
  argv: string[];
  /** The sender's span, when the command is traced. */
  trace?: TraceParent;
}

/**
 * A command sent to a peer. `reply` resolves with the peer's RESP reply (latin1), or rejects with
 * PeerUnavailableError; a rejection nobody awaits is not reported as unhandled. After cancel() it
 * never settles: callers stop waiting for it.
 */
export interface ForwardedRequest {
  readonly reply: Promise<string>;
  /** The requester's client went away: tells the peer (if the request left) and forgets the reply. */
  cancel(): void;
}

/** Hears how a forwarded request (PeerTransport.forward) ends: one call, unless it is cancelled first. */
export interface ReplySink {
  /** The peer's RESP reply. */
  reply(reply: string): void;
  /** The request could not leave, or its link closed before the reply came. */
  fail(error: PeerUnavailableError): void;
}

/** A forwarded request in flight; PeerTransport.cancel takes it back. */
export interface RequestHandle {
  readonly id: number;
}

/**
 * A forwarded request could not be answered: no open link to the peer, its queue is full, the
 * request is larger than a frame, or the link closed before the reply came. `sent` says whether the
 * request may have reached the peer — if so, the command may have run there.
 */
export class PeerUnavailableError extends Error {
  readonly code = 'RAFTLOCK_ERR_PEER_UNAVAILABLE';
  readonly peer: NodeId;
  readonly sent: boolean;

  constructor(peer: NodeId, sent: boolean, reason: string) {
    super(`peer ${peer} unavailable (${sent ? 'the command may have run' : 'not sent'}): ${reason}`);
    this.name = 'PeerUnavailableError';
    this.peer = peer;
    this.sent = sent;
  }
}

/** The reply forwarded instead of one that does not fit in a frame. */
export const REPLY_TOO_LARGE = '-ERR reply too large to forward\r\n';
const NOT_SERVED = '-ERR this node does not serve forwarded commands\r\n';

/**
 * The incarnation of this node's data directory and what it has learnt of its peers'. remember()
 * must be durable when it returns: a restart must still refuse a replaced peer.
 */
export interface Incarnations {
  /** This node's data directory incarnation. */
  readonly own: string;
  known(peer: NodeId): string | undefined;
  remember(peer: NodeId, incarnation: string): void;
}

export interface PeerTransportOptions {
  nodeId: NodeId;
  listen: PeerAddress;
  /** Every other node of the cluster (an entry for nodeId itself is ignored). */
  peers: Map<NodeId, PeerAddress>;
  /** Shared cluster secret: peers prove they hold it (HMAC-SHA256 challenge–response). */
  secret?: string;
  /** Data directory incarnations (see the handshake above); without them none are sent or checked. */
  incarnations?: Incarnations;
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
  /** This node's client endpoint, announced to peers. */
  meta?: RespEndpoint;
  /**
   * A forwarded command from an authenticated peer. Call respond exactly once with the RESP reply
   * (latin1 string); later calls, and calls after the link closed, are ignored. Return a cancel hook:
   * it is called if the requester cancels or the link closes before respond. Without onRequest,
   * forwarded commands are answered with an error.
   */
  onRequest?: (from: NodeId, request: ForwardedCommand, respond: (reply: string) => void) => (() => void) | void;
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
  /** Forwarded requests written to a peer's socket. */
  requestsSent: number;
  /** Forwarded requests received from peers and handed to onRequest. */
  requestsReceived: number;
}

const DEFAULTS = {
  queueBytesMax: 64 * 1024 * 1024,
  backoffMsMin: 50,
  backoffMsMax: 2000,
  handshakeTimeoutMs: 5000,
  pendingConnectionsMax: 64,
};

const SILENT_LOGGER: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** Peers and remote hosts whose last connection failure is remembered (so not logged again); beyond this, forgotten. */
const TROUBLES_MAX = 1024;

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
  /** The data directory incarnation the peer presented in its hello or challenge. */
  peerIncarnation: string;
  timer: NodeJS.Timeout | null;
  remote: string;
  /** Requests this node sent on the link, by id, until their response, cancel or the link's end. */
  requests: Map<number, PendingRequest>;
  nextRequestId: number;
  /** Requests the peer sent on the link that this node is serving, by id. */
  serving: Map<number, Served>;
  /** Why it closed (the first reason known), for the log. */
  reason: string | null;
}

/** An entry of a peer's send queue; entries that are not batch items belong to the current link. */
interface Queued extends Outgoing {
  request?: PendingRequest;
}

/** A forwarded request, which is also its own request frame and send-queue entry (two objects less per request). */
class PendingRequest implements RequestHandle, Queued {
  readonly kind = 'request';
  readonly bytes = EMPTY;
  readonly item = false;
  readonly request: PendingRequest = this;
  readonly frame: LazyFrame = this;
  /** Its encoded size (lazyFrameSize), once known. */
  size = 0;
  /** Its queue entry (itself) until flushed; then the request may have reached the peer. */
  queued: Queued | null = this;

  constructor(
    readonly id: number,
    readonly conn: Conn,
    readonly sink: ReplySink,
    readonly proto: 2 | 3,
    readonly argv: string[],
    readonly trace: TraceParent | undefined,
  ) {}
}

/**
 * A forwarded command this node serves; once answered, also its response frame and the send-queue
 * entry that carries it (one object where there were three).
 */
class Served implements Queued {
  readonly kind = 'response';
  readonly bytes = EMPTY;
  readonly item = false;
  readonly frame: LazyFrame = this;
  /** The reply, once answered; its encoded size. */
  reply = '';
  size = 0;
  state: 'running' | 'responded' | 'cancelled' = 'running';
  cancel: (() => void) | null = null;

  constructor(readonly id: number, readonly conn: Conn) {}
}

interface Peer {
  id: NodeId;
  address: PeerAddress;
  /** This node dials the peer (its id sorts after ours). */
  dials: boolean;
  link: Conn | null;
  dialing: Conn | null;
  queue: Queued[];
  queueBytes: number;
  attempts: number;
  retry: NodeJS.Timeout | null;
  /** A flush's write is still in the link's socket; the next flush waits for it. */
  writing: boolean;
  meta: RespEndpoint | null;
}

export class PeerTransport {
  private readonly opts: Required<Omit<PeerTransportOptions, 'secret' | 'meta' | 'onRequest' | 'incarnations'>> &
    Pick<PeerTransportOptions, 'secret' | 'meta' | 'onRequest' | 'incarnations'>;
  private readonly peers = new Map<NodeId, Peer>();
  private readonly conns = new Set<Conn>();
  private readonly dirty = new Set<Peer>();
  private readonly server: net.Server;
  private readonly counters: TransportStats = {
    sent: 0, received: 0, dropped: 0, connects: 0, authFailures: 0, malformed: 0, requestsSent: 0, requestsReceived: 0,
  };
  /** The connection failure last logged at warn, by peer id (or remote host before a peer is known); see trouble(). */
  private readonly troubles = new Map<string, string>();
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
    };
    if (this.opts.secret === '') throw new Error('peer transport secret must not be empty');
    // Checked here rather than on the first link: a bad endpoint is a configuration error.
    if (this.opts.meta !== undefined) encodeFrame({ kind: 'meta', ...this.opts.meta });
    for (const [id, address] of options.peers) {
      if (id === options.nodeId) continue;
      this.peers.set(id, {
        id, address, dials: options.nodeId < id, link: null, dialing: null, queue: [], queueBytes: 0, attempts: 0,
        retry: null, writing: false, meta: null,
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
    // Without a link the message is dropped, not kept for a later one (see release()).
    if (peer.link === null) return this.drop('no link', to);
    if (peer.queueBytes + item.length > this.opts.queueBytesMax) return this.drop('queue full', to);
    this.enqueue(peer, { bytes: item, item: true });
    return true;
  }

  /**
   * Sends a client's command to peer `to` for execution there; it leaves in this event-loop turn's
   * flush. Fails at once (sent: false) without an open link, when the peer's queue is full or when
   * the request is larger than a frame. Throws a WireError for an argument that is not latin1.
   */
  request(to: NodeId, argv: string[], proto: 2 | 3): ForwardedRequest {
    let sink!: ReplySink;
    const reply = new Promise<string>((resolve, reject) => (sink = { reply: resolve, fail: reject }));
    reply.catch(() => undefined);
    const handle = this.forward(to, argv, proto, sink);
    return { reply, cancel: () => (handle === null ? undefined : this.cancel(handle)) };
  }

  /**
   * request() without a promise: `sink` hears the reply or the failure. A request that cannot leave
   * fails at once (sent: false), and null is returned. Throws a WireError for an argument that is
   * not latin1. trace: the sender's span, when the command is traced.
   */
  forward(to: NodeId, argv: string[], proto: 2 | 3, sink: ReplySink, trace?: TraceParent): RequestHandle | null {
    const peer = this.peers.get(to);
    const link = peer?.link ?? null;
    if (peer === undefined || this.closed || link === null) {
      sink.fail(new PeerUnavailableError(to, false, peer === undefined ? 'unknown peer' : this.closed ? 'transport closed' : 'not connected'));
      return null;
    }
    const pending = new PendingRequest(link.nextRequestId, link, sink, proto, argv, trace);
    const size = lazyFrameSize(pending);
    let refused: string | null = null;
    if (size - 4 > this.opts.frameBytesMax) refused = `request of ${size} bytes exceeds a frame`;
    else if (peer.queueBytes + size > this.opts.queueBytesMax) refused = 'queue full';
    if (refused !== null) {
      sink.fail(new PeerUnavailableError(to, false, refused));
      return null;
    }
    link.nextRequestId++;
    pending.size = size;
    link.requests.set(pending.id, pending);
    this.enqueue(peer, pending);
    return pending;
  }

  /**
   * Calls fn with the sink of every forwarded request still waiting for its reply. fn may cancel
   * the request it is given.
   */
  forEachRequest(fn: (sink: ReplySink) => void): void {
    for (const peer of this.peers.values()) {
      const link = peer.link;
      if (link === null) continue;
      for (const pending of link.requests.values()) fn(pending.sink);
    }
  }

  /** The requester no longer wants the reply: tells the peer if the request left, else takes it back. */
  cancel(handle: RequestHandle): void {
    this.cancelRequest(handle as PendingRequest);
  }

  /** The client endpoint `to` last announced, if it has. */
  peerMeta(to: NodeId): RespEndpoint | undefined {
    const meta = this.peers.get(to)?.meta;
    return meta == null ? undefined : { ...meta };
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

  /**
   * Closes the listener and every connection and cancels every timer. Queued messages are discarded;
   * outstanding requests fail with PeerUnavailableError and the commands served for peers are cancelled.
   */
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
    for (const conn of this.conns) this.destroy(conn, 'transport closed');
    if (this.started) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- connections -------------------------------------------------------------------------------

  private dial(peer: Peer): void {
    const socket = net.connect({ host: peer.address.host, port: peer.address.port });
    const conn = this.track(socket, true, peer, `${peer.address.host}:${peer.address.port}`);
    peer.dialing = conn;
    conn.state = 'challenge';
    socket.write(encodeFrame({
      kind: 'hello', nodeId: this.opts.nodeId, to: peer.id, auth: this.opts.secret !== undefined, nonce: conn.nonce, incarnation: this.ownIncarnation(),
    }));
  }

  private accept(socket: net.Socket): void {
    if (this.closed) return void socket.destroy();
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    let pending = 0;
    for (const c of this.conns) if (!c.outbound && c.state !== 'open') pending++;
    if (pending >= this.opts.pendingConnectionsMax) {
      this.trouble({ peer: null, remote }, 'peer connection refused', `more than ${this.opts.pendingConnectionsMax} unauthenticated peer connections`);
      return void socket.destroy();
    }
    this.track(socket, false, null, remote).state = 'hello';
  }

  private track(socket: net.Socket, outbound: boolean, peer: Peer | null, remote: string): Conn {
    const conn: Conn = {
      socket, decoder: new FrameDecoder(this.opts.frameBytesMax), outbound, peer, state: 'hello', nonce: randomBytes(NONCE_BYTES),
      peerNonce: null, peerIncarnation: '', timer: null, remote, requests: new Map(), nextRequestId: 0, serving: new Map(), reason: null,
    };
    this.conns.add(conn);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    conn.timer = setTimeout(() => {
      conn.timer = null;
      this.fail(conn, 'peer handshake timed out', `no handshake within ${this.opts.handshakeTimeoutMs} ms`);
    }, this.opts.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', (err) => {
      conn.reason ??= err.message;
      if (conn.state === 'open' || conn.state === 'closing') this.opts.logger.debug('peer connection error', { peer: conn.peer?.id, remote, error: err.message });
      // A peer that is down: expected while it restarts, so info, not warn.
      else this.trouble(conn, conn.outbound ? 'cannot connect to peer' : 'peer connection failed', err.message, 'info');
    });
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
      this.fail(conn, 'malformed peer frame', (err as Error).message);
      return;
    }
    for (const frame of frames) {
      // A frame may close the connection (a refusal, a failed proof): ignore whatever followed it.
      if ((conn.state as ConnState) === 'closing') return;
      this.onFrame(conn, frame);
    }
  }

  private onFrame(conn: Conn, frame: Frame): void {
    if (frame.kind === 'refuse') return this.fail(conn, 'peer refused the connection', frame.reason);
    if (conn.state === 'open') {
      switch (frame.kind) {
        case 'batch': return this.deliver(conn, frame.batch);
        case 'request': return this.serve(conn, frame);
        case 'response': return this.onResponse(conn, frame);
        case 'cancel': return this.onCancel(conn, frame);
        case 'meta': return this.onMeta(conn, frame);
      }
    }
    if (frame.kind === 'hello' && conn.state === 'hello') return this.onHello(conn, frame);
    if (frame.kind === 'challenge' && conn.state === 'challenge') return this.onChallenge(conn, frame);
    if (frame.kind === 'auth' && conn.state === 'auth') return this.onAuth(conn, frame);
    if (frame.kind === 'ready' && conn.state === 'ready') return this.establish(conn);
    this.counters.malformed++;
    this.fail(conn, 'unexpected peer frame', `${frame.kind} frame while in state ${conn.state}`);
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
    const replaced = this.replaced(peer.id, hello.incarnation);
    if (replaced !== null) return this.refuse(conn, replaced, false);
    conn.peerIncarnation = hello.incarnation;
    conn.peerNonce = hello.nonce;
    const proof = this.proof('acceptor', peer.id, this.opts.nodeId, hello.nonce, conn.nonce);
    conn.state = 'auth';
    conn.socket.write(encodeFrame({ kind: 'challenge', nodeId: this.opts.nodeId, auth: secret !== undefined, nonce: conn.nonce, proof, incarnation: this.ownIncarnation() }));
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
    const replaced = this.replaced(peer.id, challenge.incarnation);
    if (replaced !== null) return this.refuse(conn, replaced, false);
    conn.peerIncarnation = challenge.incarnation;
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

  private ownIncarnation(): string {
    return this.opts.incarnations?.own ?? '';
  }

  /** Why `peer`, presenting `incarnation`, is not the process this node linked with before; null if it may be. */
  private replaced(peer: NodeId, incarnation: string): string | null {
    const known = this.opts.incarnations?.known(peer);
    if (known === undefined || incarnation === '' || known === incarnation) return null;
    return `node ${peer} runs on data directory ${incarnation}, but node ${this.opts.nodeId} knows ${peer} by data directory ${known}: ` +
      `${peer} lost or replaced its data, or belongs to another cluster. A node that lost its data rejoins after ` +
      `CLUSTER FORGET ${peer} (on a node of the cluster), then CLUSTER ADDNODE ${peer}`;
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
    this.trouble(conn, 'peer connection refused', reason);
    conn.state = 'closing';
    // The handshake timer stays armed: it destroys the socket if the other side never closes.
    conn.socket.end(encodeFrame({ kind: 'refuse', reason }));
  }

  private establish(conn: Conn): void {
    const peer = conn.peer!;
    const incarnations = this.opts.incarnations;
    if (incarnations !== undefined && conn.peerIncarnation !== '' && incarnations.known(peer.id) !== conn.peerIncarnation) {
      try {
        incarnations.remember(peer.id, conn.peerIncarnation);
      } catch (err) {
        // Unrecorded, a replaced peer could not be told apart after a restart: no link without it.
        return this.fail(conn, 'cannot record the peer\'s data directory incarnation', (err as Error).message);
      }
    }
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    conn.state = 'open';
    if (peer.dialing === conn) peer.dialing = null;
    if (peer.link !== null) this.destroy(peer.link, 'replaced by a new connection');
    peer.link = conn;
    peer.attempts = 0;
    peer.writing = false;
    this.counters.connects++;
    this.troubles.delete(peer.id);
    this.opts.logger.info('peer connected', { peer: peer.id, remote: conn.remote, outbound: conn.outbound });
    if (this.opts.meta !== undefined) conn.socket.write(encodeFrame({ kind: 'meta', ...this.opts.meta }));
    this.scheduleFlush(peer);
  }

  /**
   * The link `conn` is gone (closed by either side, or replaced): what was sent on it can no longer
   * be answered. Idempotent; called on destroy and on the socket's close.
   */
  private release(conn: Conn): void {
    const peer = conn.peer;
    if (peer === null || peer.link !== conn) return;
    peer.link = null;
    peer.writing = false;
    if (!this.closed) this.opts.logger.info('peer disconnected', { peer: peer.id, remote: conn.remote, reason: conn.reason ?? 'closed by the peer' });
    // Everything queued was meant for the process at the other end of this
    // link, Raft messages included: a restarted peer (perhaps with an empty
    // disk, rejoining) must not get heartbeats that speak of the log its
    // predecessor had. Raft resends what matters.
    this.counters.dropped += peer.queue.filter((q) => q.item).length;
    peer.queue = [];
    peer.queueBytes = 0;
    const requests = [...conn.requests.values()];
    conn.requests.clear();
    for (const p of requests) p.sink.fail(new PeerUnavailableError(peer.id, p.queued === null, 'the link closed'));
    const serving = [...conn.serving.values()];
    conn.serving.clear();
    for (const s of serving) this.cancelServing(peer, s);
  }

  // ---- forwarded commands ------------------------------------------------------------------------

  /** Serving side: run the peer's command through onRequest. */
  private serve(conn: Conn, frame: Extract<Frame, { kind: 'request' }>): void {
    const peer = conn.peer!;
    const { id } = frame;
    if (conn.serving.has(id)) return this.opts.logger.debug('duplicate forwarded request id ignored', { peer: peer.id, id });
    this.counters.requestsReceived++;
    const serving = new Served(id, conn);
    const respond = (reply: string): void => this.respond(serving, reply);
    if (this.opts.onRequest === undefined) return respond(NOT_SERVED);
    const cancel = this.opts.onRequest(peer.id, frame, respond);
    // Answered at once, as most commands are: it never needs to be found again.
    if (serving.state !== 'running') return;
    serving.cancel = typeof cancel === 'function' ? cancel : null;
    if (peer.link === conn) {
      conn.serving.set(id, serving);
      return;
    }
    // The link closed while onRequest ran: the hook is due at once.
    this.cancelServing(peer, serving);
  }

  private respond(serving: Served, reply: string): void {
    if (serving.state !== 'running') return;
    const conn = serving.conn;
    serving.reply = reply;
    let size = reply.length > this.opts.frameBytesMax ? Infinity : lazyFrameSize(serving);
    if (size - 4 > this.opts.frameBytesMax) {
      this.opts.logger.warn('forwarded reply larger than a frame; answered with an error', { peer: conn.peer!.id, bytes: reply.length });
      serving.reply = REPLY_TOO_LARGE;
      size = lazyFrameSize(serving);
    }
    serving.size = size;
    serving.state = 'responded';
    conn.serving.delete(serving.id);
    this.enqueueOnLink(conn, serving, 'response');
  }

  private cancelServing(peer: Peer, serving: Served): void {
    if (serving.state !== 'running') return;
    serving.state = 'cancelled';
    const cancel = serving.cancel;
    serving.cancel = null;
    if (cancel === null) return;
    try {
      cancel();
    } catch (err) {
      this.opts.logger.error('cancel hook of a forwarded command failed', { peer: peer.id, error: (err as Error).message });
    }
  }

  /** Serving side: the requester no longer wants the reply. */
  private onCancel(conn: Conn, frame: Extract<Frame, { kind: 'cancel' }>): void {
    const serving = conn.serving.get(frame.id);
    if (serving === undefined) return this.opts.logger.debug('cancel of an unknown forwarded request ignored', { peer: conn.peer!.id, id: frame.id });
    conn.serving.delete(frame.id);
    this.cancelServing(conn.peer!, serving);
  }

  /** Requesting side: the reply to one of this link's requests. */
  private onResponse(conn: Conn, frame: Extract<Frame, { kind: 'response' }>): void {
    const pending = conn.requests.get(frame.id);
    // A request still queued has not reached the peer: a reply to it is not one.
    if (pending === undefined || pending.queued !== null) {
      return this.opts.logger.debug('response to an unknown forwarded request ignored', { peer: conn.peer!.id, id: frame.id });
    }
    conn.requests.delete(frame.id);
    pending.sink.reply(frame.reply);
  }

  private cancelRequest(pending: PendingRequest): void {
    const conn = pending.conn;
    if (conn.requests.get(pending.id) !== pending) return; // answered, cancelled, or the link closed
    conn.requests.delete(pending.id);
    const peer = conn.peer!;
    if (pending.queued !== null) {
      const at = peer.queue.indexOf(pending.queued);
      if (at !== -1) {
        peer.queue.splice(at, 1);
        peer.queueBytes -= outgoingBytes(pending.queued);
      }
      pending.queued = null;
      return;
    }
    const bytes = encodeFrame({ kind: 'cancel', id: pending.id });
    this.enqueueOnLink(conn, { bytes, item: false }, 'cancel');
  }

  private onMeta(conn: Conn, frame: Extract<Frame, { kind: 'meta' }>): void {
    const peer = conn.peer!;
    peer.meta = { respHost: frame.respHost, respPort: frame.respPort };
    this.opts.logger.debug('peer announced its client endpoint', { peer: peer.id, host: frame.respHost, port: frame.respPort });
  }

  /**
   * Queues a response or cancel for the link `conn`, if it is still the peer's link. Without room in
   * the queue the link is reset rather than the frame dropped: the requester then fails the request
   * and the server cancels what it runs, where a lost frame would leave either waiting forever.
   */
  private enqueueOnLink(conn: Conn, entry: Queued, what: 'response' | 'cancel'): void {
    const peer = conn.peer!;
    if (peer.link !== conn) return;
    if (peer.queueBytes + outgoingBytes(entry) > this.opts.queueBytesMax) {
      this.opts.logger.warn(`peer queue full for a forwarded ${what}; resetting the link`, { peer: peer.id, queueBytes: peer.queueBytes });
      return this.destroy(conn, `send queue full for a forwarded ${what}`);
    }
    this.enqueue(peer, entry);
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

  /** A connection failed: logged (see trouble; an open link logs its disconnection instead) and closed. */
  private fail(conn: Conn, msg: string, reason: string): void {
    if (conn.state !== 'open') this.trouble(conn, msg, reason);
    this.destroy(conn, `${msg}: ${reason}`);
  }

  /**
   * Logs a connection failure (at warn, or the level given) the first time for its peer (or remote
   * host) and reason, then at debug until that peer connects: a peer that is down, or refuses us,
   * retries every backoff without a line each time.
   */
  private trouble(conn: Pick<Conn, 'peer' | 'remote'>, msg: string, reason: string, level: 'info' | 'warn' = 'warn'): void {
    const key = conn.peer?.id ?? conn.remote.slice(0, conn.remote.lastIndexOf(':'));
    const fields = { peer: conn.peer?.id, remote: conn.remote, reason };
    if (this.troubles.get(key) === reason) return this.opts.logger.debug(msg, fields);
    if (this.troubles.size >= TROUBLES_MAX) this.troubles.clear();
    this.troubles.set(key, reason);
    this.opts.logger[level](msg, fields);
  }

  private destroy(conn: Conn, reason: string): void {
    conn.reason ??= reason;
    conn.state = 'closing';
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    conn.socket.destroy();
    this.release(conn);
  }

  private onClose(conn: Conn): void {
    if (conn.timer !== null) clearTimeout(conn.timer);
    conn.timer = null;
    conn.state = 'closing';
    this.conns.delete(conn);
    const peer = conn.peer;
    if (peer === null) return;
    if (peer.dialing === conn) peer.dialing = null;
    this.release(conn);
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

  private enqueue(peer: Peer, entry: Queued): void {
    peer.queue.push(entry);
    peer.queueBytes += outgoingBytes(entry);
    this.scheduleFlush(peer);
  }

  private scheduleFlush(peer: Peer): void {
    if (peer.link === null || peer.writing || peer.queue.length === 0) return;
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
   * Writes the whole queue in one socket write, then waits until the socket has taken it before the
   * next flush: so a peer holds at most queueBytesMax queued plus one write's worth in its socket,
   * even when it reads slowly.
   */
  private flush(peer: Peer): void {
    const link = peer.link;
    if (link === null || peer.writing || peer.queue.length === 0) return;
    const queue = peer.queue;
    peer.queue = [];
    peer.queueBytes = 0;
    for (const entry of queue) {
      if (entry.item) this.counters.sent++;
      if (entry.request !== undefined) {
        entry.request.queued = null;
        this.counters.requestsSent++;
      }
    }
    peer.writing = true;
    link.socket.write(frameQueue(queue, this.opts.frameBytesMax), (err) => {
      // A failed write means the socket is closing: its 'close' releases the link.
      if (err != null || peer.link !== link) return;
      peer.writing = false;
      this.scheduleFlush(peer);
    });
  }

  private drop(why: string, to: NodeId): false {
    this.counters.dropped++;
    this.opts.logger.debug('peer message dropped', { peer: to, why });
    return false;
  }
}

const EMPTY = new Uint8Array(0);

function equalProof(expected: Buffer, got: Uint8Array): boolean {
  return expected.length === got.length && timingSafeEqual(expected, got);
}
