import t, { type Test } from 'tap';
import net from 'node:net';
import type { Message, NodeId } from '../../raft/types.js';
import {
  PeerTransport, PeerUnavailableError, REPLY_TOO_LARGE, type Incarnations, type PeerAddress, type PeerTransportOptions,
} from '../../src/cluster/transport.js';
import { FrameDecoder, NONCE_BYTES, encodeFrame, type Frame, type GroupMessage } from '../../src/cluster/wire.js';
import type { Logger } from '../../src/server/log.js';
import { freePort } from '../../bench/lib/proc.js';
import { mulberry32 } from '../helpers/random.js';
import { FaultProxy } from './harness/proxy.js';

const HOST = '127.0.0.1';

interface Node {
  id: NodeId;
  transport: PeerTransport;
  received: { from: NodeId; batch: GroupMessage[] }[];
  logs: string[];
}

/** Addresses on free ports for the given node ids. */
async function cluster(ids: NodeId[]): Promise<Map<NodeId, PeerAddress>> {
  const peers = new Map<NodeId, PeerAddress>();
  for (const id of ids) peers.set(id, { host: HOST, port: await freePort() });
  return peers;
}

function recordingLogger(logs: string[]): Logger {
  const log = (level: string) => (msg: string, fields: Record<string, unknown> = {}) =>
    void logs.push([`${level} ${msg}`, ...Object.entries(fields).map(([k, v]) => `${k}=${String(v)}`)].join(' '));
  return { debug: () => undefined, info: log('info'), warn: log('warn'), error: log('error') };
}

/** Starts a transport for `id`; the test closes it on teardown, pass or fail. */
async function startNode(t: Test, id: NodeId, peers: Map<NodeId, PeerAddress>, options: Partial<PeerTransportOptions> = {}): Promise<Node> {
  const received: Node['received'] = [];
  const logs: string[] = [];
  const transport = new PeerTransport({
    nodeId: id, listen: peers.get(id)!, peers, backoffMsMin: 20, backoffMsMax: 200, rng: mulberry32(id.length),
    logger: recordingLogger(logs), onMessages: (from, batch) => received.push({ from, batch }), ...options,
  });
  t.teardown(() => transport.close());
  await transport.start();
  return { id, transport, received, logs };
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function heartbeat(from: NodeId, to: NodeId, round: number): Message {
  return { type: 'MsgHeartbeat', from, to, term: 1, commit: 0, round, tick: 0 };
}

function app(from: NodeId, to: NodeId, index: number, bytes: number): Message {
  return { type: 'MsgApp', from, to, term: 2, index, logTerm: 2, commit: index, entries: [{ term: 2, index: index + 1, type: 'normal', data: new Uint8Array(bytes).fill(index % 251) }] };
}

const messages = (node: Node): GroupMessage[] => node.received.flatMap((r) => r.batch);

t.test('two transports exchange batches both ways, several groups in one batch frame', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const [a, b] = [await startNode(t, 'n1', peers), await startNode(t, 'n2', peers)];
  await waitFor(() => a.transport.connected('n2') && b.transport.connected('n1'), 'connection');
  const sentToB: GroupMessage[] = [0, 3, 7].map((group) => ({ group, message: app('n1', 'n2', group, 10) }));
  for (const { group, message } of sentToB) t.ok(a.transport.send('n2', group, message));
  b.transport.send('n1', 5, heartbeat('n2', 'n1', 1));
  await waitFor(() => messages(b).length === 3 && messages(a).length === 1, 'delivery');
  t.equal(b.received.length, 1, 'the three messages sent in one turn arrive as one batch');
  t.same(b.received[0], { from: 'n1', batch: sentToB });
  t.same(a.received, [{ from: 'n2', batch: [{ group: 5, message: heartbeat('n2', 'n1', 1) }] }]);
  t.match(a.transport.stats(), { sent: 3, received: 1, dropped: 0, connects: 1, authFailures: 0 });
  t.match(b.transport.stats(), { sent: 1, received: 3, connects: 1 });
  t.equal(a.transport.queueBytes('n2'), 0);
});

t.test('three transports: every node reaches every other, order kept per link', async (t) => {
  const ids = ['n1', 'n2', 'n3'];
  const peers = await cluster(ids);
  const nodes = await Promise.all(ids.map((id) => startNode(t, id, peers, { secret: 's3cret' })));
  await waitFor(() => nodes.every((n) => ids.every((to) => to === n.id || n.transport.connected(to))), 'connections');
  for (const from of nodes) {
    for (const to of ids) if (to !== from.id) for (let i = 0; i < 50; i++) from.transport.send(to, i % 4, heartbeat(from.id, to, i));
  }
  await waitFor(() => nodes.every((n) => messages(n).length === 100), 'all messages');
  for (const node of nodes) {
    for (const from of ids.filter((id) => id !== node.id)) {
      const rounds = node.received.filter((r) => r.from === from).flatMap((r) => r.batch.map((m) => (m.message as { round: number }).round));
      t.same(rounds, Array.from({ length: 50 }, (_, i) => i), `${node.id} got ${from}'s messages in order`);
    }
    t.equal(node.transport.stats().connects, 2, `${node.id} has one connection per peer`);
  }
});

t.test('a peer that starts later is reached, whichever side dials; nothing sent before waits for it', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const dialer = await startNode(t, 'n1', peers);
  t.notOk(dialer.transport.send('n2', 0, heartbeat('n1', 'n2', 1)), 'without a link a message is dropped (Raft resends)');
  await sleep(150);
  t.notOk(dialer.transport.connected('n2'));
  t.equal(dialer.transport.queueBytes('n2'), 0, 'nothing queued for a later link');
  const acceptor = await startNode(t, 'n2', peers);
  await waitFor(() => dialer.transport.connected('n2'), 'connection to the late acceptor');
  t.ok(dialer.transport.send('n2', 0, heartbeat('n1', 'n2', 2)));
  await waitFor(() => messages(acceptor).length === 1, 'delivery to the late acceptor');
  t.same(messages(acceptor), [{ group: 0, message: heartbeat('n1', 'n2', 2) }], 'only what was sent over the link');

  const later = await cluster(['m1', 'm2']);
  const lateAcceptor = await startNode(t, 'm2', later);
  const lateDialer = await startNode(t, 'm1', later);
  await waitFor(() => lateAcceptor.transport.connected('m1'), 'connection to the late dialer');
  lateAcceptor.transport.send('m1', 2, heartbeat('m2', 'm1', 9));
  await waitFor(() => messages(lateDialer).length === 1, 'delivery to the late dialer');
  t.same(messages(lateDialer), [{ group: 2, message: heartbeat('m2', 'm1', 9) }]);
});

t.test('a peer restarted mid-stream is reconnected, in both roles', async (t) => {
  const peers = await cluster(['n1', 'n2', 'n3']);
  const n1 = await startNode(t, 'n1', peers);
  let n2 = await startNode(t, 'n2', peers);
  const n3 = await startNode(t, 'n3', peers);
  await waitFor(() => n2.transport.connected('n1') && n2.transport.connected('n3'), 'connections');
  n1.transport.send('n2', 0, heartbeat('n1', 'n2', 1));
  await waitFor(() => messages(n2).length === 1, 'first message');
  await n2.transport.close();
  await waitFor(() => !n1.transport.connected('n2') && !n3.transport.connected('n2'), 'disconnect noticed');
  n2 = await startNode(t, 'n2', peers);
  await waitFor(() => n2.transport.connected('n1') && n2.transport.connected('n3') && n1.transport.connected('n2') && n3.transport.connected('n2'), 'reconnection');
  n1.transport.send('n2', 0, heartbeat('n1', 'n2', 2));
  n3.transport.send('n2', 1, heartbeat('n3', 'n2', 3));
  n2.transport.send('n1', 0, heartbeat('n2', 'n1', 4));
  n2.transport.send('n3', 1, heartbeat('n2', 'n3', 5));
  await waitFor(() => messages(n2).length === 2 && messages(n1).length === 1 && messages(n3).length === 1, 'delivery after restart');
  t.equal(n1.transport.stats().connects, 3, 'n1 (the dialer of n2 and n3) reconnected to n2');
  t.equal(n3.transport.stats().connects, 3, 'n3 accepted the restarted n2 (and n1 once)');
  t.match(n1.logs.join('\n'), /peer disconnected/);
});

/** Incarnations kept in memory: `peers` is what the node has remembered. */
function memoryIncarnations(own: string): Incarnations & { peers: Map<NodeId, string> } {
  const peers = new Map<NodeId, string>();
  return { own, peers, known: (peer) => peers.get(peer), remember: (peer, incarnation) => void peers.set(peer, incarnation) };
}

t.test('a peer back on another data directory is refused in both roles until forgotten; nobody adopts a refused one', async (t) => {
  const peers = await cluster(['n1', 'n2', 'n3']);
  const [dir1, dir2, dir3] = [memoryIncarnations('dir-1'), memoryIncarnations('dir-2'), memoryIncarnations('dir-3')];
  const n1 = await startNode(t, 'n1', peers, { incarnations: dir1 });
  const n3 = await startNode(t, 'n3', peers, { incarnations: dir3 });
  let n2 = await startNode(t, 'n2', peers, { incarnations: dir2 });
  await waitFor(() => n2.transport.connected('n1') && n2.transport.connected('n3'), 'connections');
  t.equal(dir1.known('n2'), 'dir-2', 'the dialer remembers the peer it linked with');
  t.equal(dir3.known('n2'), 'dir-2', 'and so does the acceptor');
  t.same([...dir2.peers].sort(), [['n1', 'dir-1'], ['n3', 'dir-3']]);

  // n2 comes back on an empty data directory: n1 dials it (n1 < n2), n3 accepts it.
  await n2.transport.close();
  await waitFor(() => !n1.transport.connected('n2') && !n3.transport.connected('n2'), 'disconnect noticed');
  const dir2b = memoryIncarnations('dir-2b');
  n2 = await startNode(t, 'n2', peers, { incarnations: dir2b });
  const refusal = (by: NodeId): RegExp => new RegExp(`node n2 runs on data directory dir-2b, but node ${by} knows n2 by data directory dir-2: ` +
    'n2 lost or replaced its data, or belongs to another cluster\\. A node that lost its data rejoins after CLUSTER FORGET n2');
  await waitFor(() => refusal('n1').test(n1.logs.join('\n')) && refusal('n3').test(n3.logs.join('\n')), 'both refusals logged');
  await waitFor(() => refusal('n1').test(n2.logs.join('\n')) && refusal('n3').test(n2.logs.join('\n')), 'n2 told why, by both');
  t.equal(n1.transport.send('n2', 0, heartbeat('n1', 'n2', 1)), false, 'a message for the refused peer is not taken');
  await sleep(500);
  t.notOk(n1.transport.connected('n2') || n2.transport.connected('n1') || n3.transport.connected('n2') || n2.transport.connected('n3'), 'no link either way');
  t.equal(messages(n2).length, 0, 'nothing reaches the replacement');
  t.equal(dir2b.peers.size, 0, 'the fresh node remembers none of the peers that refused it');
  t.equal(n1.logs.filter((l) => refusal('n1').test(l)).length, 1, 'n1 logs the refusal once, not per reconnect attempt');

  // The cluster forgets n2: its new directory is accepted, and remembered from then on.
  dir1.peers.delete('n2');
  dir3.peers.delete('n2');
  // Each side records the other when its own end of the link opens: wait for both ends.
  await waitFor(() => n1.transport.connected('n2') && n3.transport.connected('n2') && n2.transport.connected('n1') && n2.transport.connected('n3'), 'the forgotten peer links again');
  t.equal(dir1.known('n2'), 'dir-2b');
  t.equal(dir3.known('n2'), 'dir-2b');
  t.same([...dir2b.peers].sort(), [['n1', 'dir-1'], ['n3', 'dir-3']]);
});

t.test('messages for a peer that is down are dropped, and never reach its next incarnation', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const a = await startNode(t, 'n1', peers);
  let b = await startNode(t, 'n2', peers);
  await waitFor(() => a.transport.connected('n2'), 'connection');
  await b.transport.close();
  await waitFor(() => !a.transport.connected('n2'), 'disconnect');
  let accepted = 0;
  for (let i = 0; i < 1000; i++) if (a.transport.send('n2', i % 8, app('n1', 'n2', i, 100))) accepted++;
  t.equal(accepted, 0, 'nothing accepted without a link');
  t.equal(a.transport.stats().dropped, 1000, 'every message counted as dropped');
  t.equal(a.transport.queueBytes('n2'), 0);
  // A restarted peer (perhaps on an empty disk) must not hear about its predecessor's log.
  b = await startNode(t, 'n2', peers);
  await waitFor(() => a.transport.connected('n2'), 'reconnection');
  a.transport.send('n2', 0, heartbeat('n1', 'n2', 7));
  await waitFor(() => messages(b).length === 1, 'a message sent over the new link');
  t.same(messages(b), [{ group: 0, message: heartbeat('n1', 'n2', 7) }], 'only it arrives');
});

t.test('large batches are split into frames within frameBytesMax', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const frameBytesMax = 8 * 1024;
  const a = await startNode(t, 'n1', peers, { frameBytesMax });
  const b = await startNode(t, 'n2', peers, { frameBytesMax });
  await waitFor(() => a.transport.connected('n2'), 'connection');
  for (let i = 0; i < 100; i++) a.transport.send('n2', 0, app('n1', 'n2', i, 1000));
  t.notOk(a.transport.send('n2', 0, app('n1', 'n2', 100, 9000)), 'a message larger than a frame is dropped');
  await waitFor(() => messages(b).length === 100, 'delivery');
  t.ok(b.received.length >= 13, `${b.received.length} frames`);
  t.equal(a.transport.stats().dropped, 1);
});

t.test('authentication: wrong secret, secret on one side only', async (t) => {
  const cases: [string, string | undefined, string | undefined, RegExp][] = [
    ['wrong secret', 'alpha', 'beta', /authentication failed/],
    ['acceptor has no secret', 'alpha', undefined, /this node has no cluster secret/],
    ['dialer has no secret', undefined, 'alpha', /a cluster secret is required/],
  ];
  for (const [what, dialerSecret, acceptorSecret, reason] of cases) {
    const peers = await cluster(['n1', 'n2']);
    const a = await startNode(t, 'n1', peers, dialerSecret === undefined ? {} : { secret: dialerSecret });
    const b = await startNode(t, 'n2', peers, acceptorSecret === undefined ? {} : { secret: acceptorSecret });
    a.transport.send('n2', 0, heartbeat('n1', 'n2', 1));
    b.transport.send('n1', 0, heartbeat('n2', 'n1', 1));
    await waitFor(() => a.transport.stats().authFailures + b.transport.stats().authFailures >= 2, `${what}: repeated failures`);
    t.notOk(a.transport.connected('n2') || b.transport.connected('n1'), `${what}: never connected`);
    t.equal(messages(a).length + messages(b).length, 0, `${what}: nothing delivered`);
    t.match([...a.logs, ...b.logs].join('\n'), reason, `${what}: logged`);
    t.notMatch([...a.logs, ...b.logs].join('\n'), /alpha|beta/, `${what}: the secret is never logged`);
    await Promise.all([a.transport.close(), b.transport.close()]);
  }
});

/** A raw client socket to a transport's port that collects the frames it receives. */
async function rawSocket(t: Test, port: number) {
  const socket = net.connect({ host: HOST, port });
  t.teardown(() => void socket.destroy());
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  let closed = false;
  socket.on('data', (chunk) => frames.push(...decoder.push(chunk)));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  return { socket, frames, isClosed: () => closed };
}

t.test('an unknown node id, a wrong destination and a wrong dial direction are refused and logged', async (t) => {
  const peers = await cluster(['n1', 'n2', 'n3']);
  const n2 = await startNode(t, 'n2', peers);
  const nonce = new Uint8Array(NONCE_BYTES);
  const incarnation = '';
  const hellos: [Frame, RegExp][] = [
    [{ kind: 'hello', nodeId: 'intruder', to: 'n2', auth: false, nonce, incarnation }, /unknown node id "intruder"/],
    [{ kind: 'hello', nodeId: 'n1', to: 'n7', auth: false, nonce, incarnation }, /this is node n2, not n7/],
    [{ kind: 'hello', nodeId: 'n3', to: 'n2', auth: false, nonce, incarnation }, /node n2 dials n3, not the other way round/],
  ];
  for (const [hello, reason] of hellos) {
    const raw = await rawSocket(t, peers.get('n2')!.port);
    raw.socket.write(encodeFrame(hello));
    await waitFor(raw.isClosed, 'the refused socket to close');
    t.equal(raw.frames.length, 1);
    t.match(raw.frames[0], { kind: 'refuse', reason }, 'the refusal says why');
    t.match(n2.logs.join('\n'), reason, 'and the refusal is logged');
  }
  t.equal(n2.transport.stats().connects, 0);
});

t.test('malformed bytes close that connection only', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const a = await startNode(t, 'n1', peers);
  const b = await startNode(t, 'n2', peers);
  await waitFor(() => a.transport.connected('n2'), 'connection');
  for (const garbage of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xff, 1]), Buffer.from([0, 0, 0, 3, 1, 6, 0xff])]) {
    const raw = await rawSocket(t, peers.get('n2')!.port);
    raw.socket.write(garbage);
    await waitFor(raw.isClosed, 'the garbage socket to close');
  }
  t.equal(b.transport.stats().malformed, 3);
  t.match(b.logs.join('\n'), /malformed peer frame/);
  t.ok(a.transport.connected('n2') && b.transport.connected('n1'), 'the peer link is untouched');
  a.transport.send('n2', 1, heartbeat('n1', 'n2', 1));
  await waitFor(() => messages(b).length === 1, 'delivery on the surviving link');
  t.equal(a.transport.stats().connects, 1, 'no reconnect was needed');
});

t.test('a batch before the handshake and a silent socket are closed', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const b = await startNode(t, 'n2', peers, { handshakeTimeoutMs: 200 });
  const early = await rawSocket(t, peers.get('n2')!.port);
  early.socket.write(encodeFrame({ kind: 'batch', batch: [{ group: 0, message: heartbeat('n1', 'n2', 1) }] }));
  await waitFor(early.isClosed, 'the early batch socket to close');
  t.match(b.logs.join('\n'), /unexpected peer frame/);
  const silent = await rawSocket(t, peers.get('n2')!.port);
  await waitFor(silent.isClosed, 'the silent socket to time out');
  t.match(b.logs.join('\n'), /peer handshake timed out/);
  t.equal(messages(b).length, 0);
});

t.test('close() cancels reconnect timers and closes every socket', async (t) => {
  const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r.startsWith('TCP')).length;
  const peers = await cluster(['n1', 'n2', 'n3']);
  const n1 = await startNode(t, 'n1', peers);
  const n2 = await startNode(t, 'n2', peers);
  await waitFor(() => n1.transport.connected('n2'), 'connection');
  await sleep(100); // n1 and n2 keep retrying n3, which never starts
  n1.transport.send('n3', 0, heartbeat('n1', 'n3', 1));
  await Promise.all([n1.transport.close(), n2.transport.close()]);
  await sleep(20);
  const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r.startsWith('TCP')).length;
  t.ok(after <= before, `active timers and sockets: ${before} before, ${after} after`);
  t.notOk(n1.transport.send('n2', 0, heartbeat('n1', 'n2', 2)), 'send after close drops');
});

t.test('a peer that stops reading: the socket backlog and the queue stay bounded, the excess is dropped', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const queueBytesMax = 64 * 1024;
  // n2 is a raw acceptor that completes the handshake (no secret) and then never reads again.
  const server = net.createServer((socket) => {
    const decoder = new FrameDecoder();
    socket.on('data', (chunk) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.kind === 'hello') socket.write(encodeFrame({ kind: 'challenge', nodeId: 'n2', auth: false, nonce: new Uint8Array(NONCE_BYTES), proof: new Uint8Array(0), incarnation: '' }));
        if (frame.kind === 'auth') {
          socket.write(encodeFrame({ kind: 'ready' }));
          socket.pause();
        }
      }
    });
  });
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => sockets.add(s));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  await new Promise<void>((resolve) => server.listen(peers.get('n2')!.port, HOST, resolve));
  const a = await startNode(t, 'n1', peers, { queueBytesMax });
  await waitFor(() => a.transport.connected('n2'), 'connection');
  const total = 20_000;
  let accepted = 0;
  let queueBytesPeak = 0;
  for (let turn = 0; turn < 100; turn++) {
    for (let i = 0; i < total / 100; i++) if (a.transport.send('n2', 0, app('n1', 'n2', i, 1000))) accepted++;
    queueBytesPeak = Math.max(queueBytesPeak, a.transport.queueBytes('n2'));
    await new Promise((r) => setImmediate(r));
  }
  t.ok(queueBytesPeak <= queueBytesMax, `queue peaked at ${queueBytesPeak} bytes`);
  const stats = a.transport.stats();
  t.equal(stats.dropped, total - accepted, 'every refused message is counted');
  t.ok(stats.dropped > total / 2, `${stats.dropped} of ${total} dropped`);
  t.ok(stats.sent * 1020 < 16 * 1024 * 1024, `${stats.sent} written: the kernel buffers plus one bound, not all ${total}`);
});

// ---- forwarded commands ----------------------------------------------------------------------------

/** A forwarded command as the serving node saw it; respond by hand, cancelled once its hook ran. */
interface Served {
  from: NodeId;
  proto: 2 | 3;
  argv: string[];
  respond: (reply: string) => void;
  cancelled: boolean;
}

/** onRequest that records each command and answers none of them. */
function holding(served: Served[]): PeerTransportOptions['onRequest'] {
  return (from, { proto, argv }, respond) => {
    const entry: Served = { from, proto, argv, respond, cancelled: false };
    served.push(entry);
    return () => void (entry.cancelled = true);
  };
}

/** The RESP reply an echoing node gives: the protocol, then the arguments as bulk strings. */
function echoReply(proto: 2 | 3, argv: string[]): string {
  return `:${proto}\r\n*${argv.length}\r\n${argv.map((a) => `$${a.length}\r\n${a}\r\n`).join('')}`;
}

const echo: PeerTransportOptions['onRequest'] = (_from, { proto, argv }, respond) => respond(echoReply(proto, argv));

/** Every byte value, as a latin1 ("binary") string. */
const ALL_BYTES = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));

/** 'pending', or how the promise settled, after the event loop has had a few turns. */
async function outcome<T>(promise: Promise<T>, waitMs = 50): Promise<{ value: T } | { error: unknown } | 'pending'> {
  let result: { value: T } | { error: unknown } | 'pending' = 'pending';
  promise.then((value) => (result = { value }), (error: unknown) => (result = { error }));
  await sleep(waitMs);
  return result;
}

t.test('a forwarded command round-trips with binary arguments and its protocol, both ways', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const a = await startNode(t, 'n1', peers, { onRequest: echo });
  const b = await startNode(t, 'n2', peers, { onRequest: echo });
  await waitFor(() => a.transport.connected('n2') && b.transport.connected('n1'), 'connection');
  const argv = ['LOCK.ACQUIRE', ALL_BYTES, '', '\r\n$3\r\n', 'é'];
  t.equal(await a.transport.request('n2', argv, 3).reply, echoReply(3, argv), 'n1 → n2, RESP3');
  t.equal(await b.transport.request('n1', argv, 2).reply, echoReply(2, argv), 'n2 → n1, RESP2');
  const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => a.transport.request('n2', ['PING', String(i)], 2).reply));
  t.same(replies, Array.from({ length: 20 }, (_, i) => echoReply(2, ['PING', String(i)])), 'many in one turn');
  t.match(a.transport.stats(), { requestsSent: 21, requestsReceived: 1 });
  t.match(b.transport.stats(), { requestsSent: 1, requestsReceived: 21 });
  t.equal(a.transport.queueBytes('n2'), 0);
  t.throws(() => a.transport.request('n2', ['SET', 'k', '\u0100'], 2), { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' }, 'an argument beyond latin1 is a caller bug');
});

t.test('replies come back in any order, each to its own request', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const served: Served[] = [];
  const a = await startNode(t, 'n1', peers);
  await startNode(t, 'n2', peers, { onRequest: holding(served) });
  await waitFor(() => a.transport.connected('n2'), 'connection');
  const requests = ['first', 'second', 'third'].map((name) => a.transport.request('n2', ['BLOCKING', name], 2));
  await waitFor(() => served.length === 3, 'the three requests to arrive');
  t.same(served.map((s) => s.argv[1]), ['first', 'second', 'third']);
  served[2]!.respond('+third\r\n');
  t.equal(await requests[2]!.reply, '+third\r\n', 'the last request is answered first');
  t.equal(await outcome(requests[0]!.reply), 'pending', 'the others still wait');
  served[0]!.respond('+first\r\n');
  served[0]!.respond('+again\r\n'); // a second respond is ignored
  served[1]!.respond('+second\r\n');
  t.same(await Promise.all(requests.map((r) => r.reply)), ['+first\r\n', '+second\r\n', '+third\r\n']);
});

t.test('raft messages and forwarded commands of one turn arrive in the order queued', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const events: string[] = [];
  const a = await startNode(t, 'n1', peers);
  await startNode(t, 'n2', peers, {
    onMessages: (_from, batch) => events.push(`raft ${batch.map((m) => (m.message as { round: number }).round).join(',')}`),
    onRequest: (_from, { argv }, respond) => {
      events.push(`request ${argv[0]}`);
      respond('+OK\r\n');
    },
  });
  await waitFor(() => a.transport.connected('n2'), 'connection');
  a.transport.send('n2', 0, heartbeat('n1', 'n2', 1));
  a.transport.send('n2', 1, heartbeat('n1', 'n2', 2));
  const first = a.transport.request('n2', ['A'], 2);
  a.transport.send('n2', 0, heartbeat('n1', 'n2', 3));
  const second = a.transport.request('n2', ['B'], 2);
  await Promise.all([first.reply, second.reply]);
  t.same(events, ['raft 1,2', 'request A', 'raft 3', 'request B']);
});

t.test('a request that cannot leave fails at once with sent: false', async (t) => {
  const peers = await cluster(['n1', 'n2', 'n3']);
  const frameBytesMax = 4096;
  const a = await startNode(t, 'n1', peers, { frameBytesMax, queueBytesMax: 8192 });
  await startNode(t, 'n2', peers, { frameBytesMax, onRequest: holding([]) });
  await waitFor(() => a.transport.connected('n2'), 'connection');
  const cases: [string, () => ReturnType<PeerTransport['request']>, RegExp][] = [
    ['unknown peer', () => a.transport.request('n9', ['GET', 'k'], 2), /peer n9 unavailable \(not sent\): unknown peer/],
    ['peer down', () => a.transport.request('n3', ['GET', 'k'], 2), /not connected/],
    ['larger than a frame', () => a.transport.request('n2', ['SET', 'k', 'v'.repeat(frameBytesMax)], 2), /exceeds a frame/],
  ];
  for (const [what, request, message] of cases) {
    const error = await request().reply.then(() => null, (e: unknown) => e);
    t.ok(error instanceof PeerUnavailableError, what);
    t.match(error, { code: 'RAFTLOCK_ERR_PEER_UNAVAILABLE', sent: false, message }, what);
  }
  // Fill n1's queue to n2 within one turn: requests beyond queueBytesMax are refused.
  const requests = Array.from({ length: 10 }, () => a.transport.request('n2', ['SET', 'k', 'v'.repeat(1000)], 2));
  const outcomes = await Promise.all(requests.map((r) => outcome(r.reply, 0)));
  t.ok(outcomes.slice(0, 7).every((o) => o === 'pending'), 'those that fit are sent');
  t.match(outcomes.slice(-2), [{ error: { sent: false, message: /queue full/ } }, { error: { sent: false } }]);
  t.ok(a.transport.queueBytes('n2') <= 8192);
  await a.transport.close();
  const closed = await outcome(a.transport.request('n2', ['GET', 'k'], 2).reply, 0);
  t.match(closed, { error: { sent: false, message: /transport closed/ } });
});

/**
 * n1 and n2, n1 (the dialer) reaching n2 through a fault proxy, both serving with `holding`.
 * The proxy can reset the link without either transport closing.
 */
async function proxiedPair(t: Test, options: Partial<PeerTransportOptions> = {}) {
  const peers = await cluster(['n1', 'n2']);
  const proxy = await FaultProxy.start(peers.get('n2')!);
  t.teardown(() => proxy.close());
  const viaProxy = new Map(peers).set('n2', { host: HOST, port: proxy.port });
  const served = { n1: [] as Served[], n2: [] as Served[] };
  const a = await startNode(t, 'n1', viaProxy, { onRequest: holding(served.n1), ...options });
  const b = await startNode(t, 'n2', peers, { onRequest: holding(served.n2), ...options });
  await waitFor(() => a.transport.connected('n2') && b.transport.connected('n1'), 'connection');
  return { a, b, proxy, served };
}

t.test('a link lost mid-request: the requester learns "maybe", the server cancels, late replies are dropped', async (t) => {
  const { a, b, proxy, served } = await proxiedPair(t);
  const fromA = a.transport.request('n2', ['LOCK.WAIT', 'k'], 2);
  const fromB = b.transport.request('n1', ['LOCK.WAIT', 'j'], 3);
  await waitFor(() => served.n1.length === 1 && served.n2.length === 1, 'both requests to arrive');
  proxy.setMode('reset');
  for (const [what, request] of [['n1', fromA], ['n2', fromB]] as const) {
    const error = await request.reply.then(() => null, (e: unknown) => e);
    t.ok(error instanceof PeerUnavailableError, `${what}'s request fails`);
    t.match(error, { sent: true, message: /may have run/ }, `${what} is told the command may have run`);
  }
  await waitFor(() => served.n1[0]!.cancelled && served.n2[0]!.cancelled, 'both servers to cancel');
  proxy.heal();
  await waitFor(() => a.transport.connected('n2') && b.transport.connected('n1'), 'reconnection');
  // Ids start again on the new link: the stale reply to the old link's id 0 must not answer the new id 0.
  const fresh = a.transport.request('n2', ['GET', 'k'], 2);
  await waitFor(() => served.n2.length === 2, 'the new request');
  served.n2[0]!.respond('+stale\r\n');
  t.equal(await outcome(fresh.reply), 'pending', 'the stale reply went nowhere');
  served.n2[1]!.respond('+fresh\r\n');
  t.equal(await fresh.reply, '+fresh\r\n');
  t.notOk(served.n2[1]!.cancelled, 'an answered request is never cancelled');
});

t.test('closing a transport fails its outstanding requests and cancels what it serves', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const served: Served[] = [];
  const a = await startNode(t, 'n1', peers, { onRequest: holding(served) });
  const b = await startNode(t, 'n2', peers, { onRequest: holding([]) });
  await waitFor(() => a.transport.connected('n2'), 'connection');
  const outstanding = a.transport.request('n2', ['LOCK.WAIT', 'k'], 2);
  const incoming = b.transport.request('n1', ['LOCK.WAIT', 'k'], 2);
  await waitFor(() => served.length === 1 && b.transport.stats().requestsReceived === 1, 'delivery both ways');
  const unsent = a.transport.request('n2', ['GET', 'k'], 2);
  await a.transport.close();
  t.match(await outcome(outstanding.reply, 0), { error: { sent: true } }, 'the sent request may have run');
  t.match(await outcome(unsent.reply, 0), { error: { sent: false } }, 'the queued one never left');
  t.ok(served[0]!.cancelled, 'the served command is cancelled');
  t.match(await outcome(incoming.reply), { error: { sent: true } }, 'the peer learns "maybe" for its request');
});

t.test('cancel reaches the serving node; a cancelled reply never settles', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const served: Served[] = [];
  const a = await startNode(t, 'n1', peers);
  const b = await startNode(t, 'n2', peers, { onRequest: holding(served) });
  await waitFor(() => a.transport.connected('n2'), 'connection');
  const request = a.transport.request('n2', ['LOCK.WAIT', 'k'], 2);
  await waitFor(() => served.length === 1, 'the request to arrive');
  request.cancel();
  await waitFor(() => served[0]!.cancelled, 'the cancel hook');
  served[0]!.respond('+late\r\n'); // after a cancel: ignored
  request.cancel(); // twice: harmless
  t.equal(await outcome(request.reply), 'pending', 'the cancelled reply never settles');
  const neverSent = a.transport.request('n2', ['LOCK.WAIT', 'j'], 2);
  neverSent.cancel(); // in the same turn: the request never leaves
  const after = a.transport.request('n2', ['PING'], 2);
  await waitFor(() => served.length === 2, 'the next request');
  t.same(served.map((s) => s.argv), [['LOCK.WAIT', 'k'], ['PING']], 'the request cancelled before its flush never left');
  served[1]!.respond('+PONG\r\n');
  t.equal(await after.reply, '+PONG\r\n');
  t.equal(a.transport.stats().requestsSent, 2);
  t.equal(b.transport.stats().requestsReceived, 2);
  t.equal(await outcome(neverSent.reply, 0), 'pending');
});

t.test('replies too large for a frame, a responding hook, and a node that serves nothing', async (t) => {
  const peers = await cluster(['n1', 'n2', 'n3']);
  const frameBytesMax = 4096;
  let hooks = 0;
  const a = await startNode(t, 'n1', peers, { frameBytesMax });
  await startNode(t, 'n2', peers, {
    frameBytesMax,
    onRequest: (_from, { argv }, respond) => {
      respond(argv[0] === 'BIG' ? `$5000\r\n${'x'.repeat(5000)}\r\n` : '+OK\r\n');
      return () => void hooks++;
    },
  });
  const silent = await startNode(t, 'n3', peers, { frameBytesMax });
  await waitFor(() => a.transport.connected('n2') && a.transport.connected('n3'), 'connections');
  t.equal(await a.transport.request('n2', ['BIG'], 2).reply, REPLY_TOO_LARGE);
  t.equal(await a.transport.request('n2', ['SMALL'], 2).reply, '+OK\r\n');
  t.equal(await a.transport.request('n3', ['GET', 'k'], 2).reply, '-ERR this node does not serve forwarded commands\r\n');
  t.equal(hooks, 0, 'a hook returned after respond is never called');
  t.equal(silent.transport.stats().requestsReceived, 1);
});

t.test('a response that finds the queue full resets the link instead of vanishing', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const queueBytesMax = 4096;
  let held: ((reply: string) => void) | null = null;
  const a = await startNode(t, 'n1', peers);
  const b = await startNode(t, 'n2', peers, {
    queueBytesMax,
    onRequest: (_from, { argv }, respond) => {
      if (argv[0] === 'SMALL') return void (held = respond);
      held!('+OK\r\n'); // queued, and lost with the link below: its requester must hear of it
      while (b.transport.send('n1', 0, heartbeat('n2', 'n1', 1)));
      respond(`$1000\r\n${'r'.repeat(1000)}\r\n`);
    },
  });
  await waitFor(() => a.transport.connected('n2'), 'connection');
  const small = a.transport.request('n2', ['SMALL'], 2);
  await waitFor(() => held !== null, 'the first request');
  const big = a.transport.request('n2', ['BIG'], 2);
  for (const [what, request] of [['queued response', small], ['response without room', big]] as const) {
    t.match(await request.reply.then(() => null, (e: unknown) => e), { sent: true }, `${what}: the requester learns "maybe"`);
  }
  t.match(b.logs.join('\n'), /peer queue full for a forwarded response; resetting the link/);
  await waitFor(() => a.transport.connected('n2'), 'reconnection');
  t.equal(messages(a).length, 0, 'raft messages queued for the reset link were dropped with it');
  t.equal(b.transport.queueBytes('n1'), 0);
});

/** Completes the handshake as dialer `n1` (no secret) on a raw socket to `port`. */
async function rawDialer(t: Test, port: number) {
  const raw = await rawSocket(t, port);
  raw.socket.write(encodeFrame({ kind: 'hello', nodeId: 'n1', to: 'n2', auth: false, nonce: new Uint8Array(NONCE_BYTES), incarnation: '' }));
  await waitFor(() => raw.frames.some((f) => f.kind === 'challenge'), 'challenge');
  raw.socket.write(encodeFrame({ kind: 'auth', proof: new Uint8Array(0) }));
  await waitFor(() => raw.frames.some((f) => f.kind === 'ready'), 'ready');
  return raw;
}

t.test('duplicate and unknown ids from a peer are ignored; a failing cancel hook is logged', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const served: Served[] = [];
  const debug: string[] = [];
  const logs: string[] = [];
  const b = await startNode(t, 'n2', peers, {
    meta: { respHost: HOST, respPort: 6379 },
    logger: { ...recordingLogger(logs), debug: (msg) => void debug.push(msg) },
    onRequest: (from, request, respond) => {
      const hook = holding(served)!(from, request, respond);
      return request.argv[0] === 'FAIL' ? () => { throw new Error('hook failed'); } : hook;
    },
  });
  const raw = await rawDialer(t, peers.get('n2')!.port);
  await waitFor(() => raw.frames.some((f) => f.kind === 'meta'), 'meta');
  t.match(raw.frames.find((f) => f.kind === 'meta'), { respHost: HOST, respPort: 6379 }, 'the acceptor announces itself');
  raw.socket.write(Buffer.concat([
    encodeFrame({ kind: 'request', id: 5, proto: 2, argv: ['FAIL'] }),
    encodeFrame({ kind: 'request', id: 5, proto: 3, argv: ['DUPLICATE'] }),
    encodeFrame({ kind: 'cancel', id: 99 }),
    encodeFrame({ kind: 'response', id: 0, reply: '+nobody asked\r\n' }),
    encodeFrame({ kind: 'request', id: 6, proto: 2, argv: ['GET', 'k'] }),
  ]));
  await waitFor(() => served.length === 2, 'two requests served');
  t.same(served.map((s) => s.argv[0]), ['FAIL', 'GET'], 'the duplicate id is not served again');
  t.same(debug.filter((m) => /ignored/.test(m)), [
    'duplicate forwarded request id ignored', 'cancel of an unknown forwarded request ignored', 'response to an unknown forwarded request ignored',
  ]);
  served[1]!.respond('$1\r\nv\r\n');
  await waitFor(() => raw.frames.some((f) => f.kind === 'response'), 'the response');
  t.match(raw.frames.filter((f) => f.kind === 'response'), [{ id: 6, reply: '$1\r\nv\r\n' }]);
  raw.socket.write(encodeFrame({ kind: 'cancel', id: 5 }));
  await waitFor(() => logs.some((l) => /cancel hook of a forwarded command failed/.test(l)), 'the hook failure to be logged');
  t.ok(b.transport.connected('n1'), 'a failing hook does not close the link');
});

t.test('each node announces its client endpoint to its peers', async (t) => {
  const peers = await cluster(['n1', 'n2', 'n3']);
  const a = await startNode(t, 'n1', peers, { meta: { respHost: 'n1.example', respPort: 7001 } });
  t.equal(a.transport.peerMeta('n2'), undefined, 'unknown before the link opens');
  const b = await startNode(t, 'n2', peers, { meta: { respHost: '127.0.0.1', respPort: 7002 } });
  const c = await startNode(t, 'n3', peers);
  await waitFor(() => a.transport.peerMeta('n2') !== undefined && b.transport.peerMeta('n1') !== undefined, 'meta both ways');
  t.same(a.transport.peerMeta('n2'), { respHost: '127.0.0.1', respPort: 7002 }, 'the acceptor announces to the dialer');
  t.same(b.transport.peerMeta('n1'), { respHost: 'n1.example', respPort: 7001 }, 'the dialer announces to the acceptor');
  await waitFor(() => c.transport.peerMeta('n1') !== undefined && c.transport.peerMeta('n2') !== undefined, 'meta at n3');
  await waitFor(() => a.transport.connected('n3'), 'n1–n3 link');
  t.equal(a.transport.peerMeta('n3'), undefined, 'a node without meta announces nothing');
  t.equal(a.transport.peerMeta('n9'), undefined);
  await b.transport.close();
  await waitFor(() => !a.transport.connected('n2'), 'disconnect');
  t.same(a.transport.peerMeta('n2'), { respHost: '127.0.0.1', respPort: 7002 }, 'kept across a disconnect');
  t.throws(() => new PeerTransport({ nodeId: 'x', listen: { host: HOST, port: 0 }, peers: new Map(), onMessages: () => undefined, meta: { respHost: 'h', respPort: 70000 } }),
    { code: 'RAFTLOCK_ERR_WIRE_UNENCODABLE' }, 'a bad endpoint is refused at construction');
});

t.test('with mismatched secrets no forwarded command flows', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const served: Served[] = [];
  const a = await startNode(t, 'n1', peers, { secret: 'alpha', onRequest: holding(served), meta: { respHost: HOST, respPort: 1 } });
  const b = await startNode(t, 'n2', peers, { secret: 'beta', onRequest: holding(served), meta: { respHost: HOST, respPort: 2 } });
  const failures: unknown[] = [];
  while (a.transport.stats().authFailures + b.transport.stats().authFailures < 4) {
    for (const [from, to] of [[a, 'n2'], [b, 'n1']] as const) await from.transport.request(to, ['GET', 'k'], 2).reply.catch((e: unknown) => failures.push(e));
    await sleep(20);
  }
  t.ok(failures.length >= 2 && failures.every((e) => e instanceof PeerUnavailableError && !e.sent), `${failures.length} refused, none sent`);
  t.equal(served.length, 0, 'nothing served');
  t.equal(a.transport.peerMeta('n2') ?? b.transport.peerMeta('n1'), undefined, 'no endpoint learned');
  t.match(a.transport.stats(), { requestsSent: 0, requestsReceived: 0 });
});
