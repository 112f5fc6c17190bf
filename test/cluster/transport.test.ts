import t, { type Test } from 'tap';
import net from 'node:net';
import type { Message, NodeId } from '../../raft/types.js';
import { PeerTransport, type PeerAddress, type PeerTransportOptions } from '../../src/cluster/transport.js';
import { FrameDecoder, NONCE_BYTES, encodeFrame, type Frame, type GroupMessage } from '../../src/cluster/wire.js';
import type { Logger } from '../../src/server/log.js';
import { freePort } from '../../bench/lib/proc.js';
import { mulberry32 } from '../helpers/random.js';

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

t.test('a peer that starts later is reached, whichever side dials', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const dialer = await startNode(t, 'n1', peers);
  dialer.transport.send('n2', 0, heartbeat('n1', 'n2', 1));
  await sleep(150);
  t.notOk(dialer.transport.connected('n2'));
  t.ok(dialer.transport.queueBytes('n2') > 0, 'the message waits in the queue');
  const acceptor = await startNode(t, 'n2', peers);
  await waitFor(() => messages(acceptor).length === 1, 'delivery to the late acceptor');

  const later = await cluster(['m1', 'm2']);
  const lateAcceptor = await startNode(t, 'm2', later);
  lateAcceptor.transport.send('m1', 2, heartbeat('m2', 'm1', 9));
  await sleep(100);
  const lateDialer = await startNode(t, 'm1', later);
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
  n1.transport.send('n2', 0, heartbeat('n1', 'n2', 2));
  n3.transport.send('n2', 1, heartbeat('n3', 'n2', 3));
  n2.transport.send('n1', 0, heartbeat('n2', 'n1', 4));
  n2.transport.send('n3', 1, heartbeat('n2', 'n3', 5));
  await waitFor(() => messages(n2).length === 2 && messages(n1).length === 1 && messages(n3).length === 1, 'delivery after restart');
  t.equal(n1.transport.stats().connects, 3, 'n1 (the dialer of n2 and n3) reconnected to n2');
  t.equal(n3.transport.stats().connects, 3, 'n3 accepted the restarted n2 (and n1 once)');
  t.match(n1.logs.join('\n'), /peer disconnected/);
});

t.test('while a peer is down the queue stays within its bound and the excess is dropped', async (t) => {
  const peers = await cluster(['n1', 'n2']);
  const queueBytesMax = 4096;
  const a = await startNode(t, 'n1', peers, { queueBytesMax });
  let b = await startNode(t, 'n2', peers);
  await waitFor(() => a.transport.connected('n2'), 'connection');
  await b.transport.close();
  await waitFor(() => !a.transport.connected('n2'), 'disconnect');
  let accepted = 0;
  for (let i = 0; i < 1000; i++) {
    if (a.transport.send('n2', i % 8, app('n1', 'n2', i, 100))) accepted++;
    if (a.transport.queueBytes('n2') > queueBytesMax) return t.fail(`queue at ${a.transport.queueBytes('n2')} bytes`);
  }
  const stats = a.transport.stats();
  t.ok(accepted > 0 && accepted < 100, `${accepted} queued`);
  t.equal(stats.dropped, 1000 - accepted, 'every other message counted as dropped');
  t.ok(a.transport.queueBytes('n2') <= queueBytesMax);
  b = await startNode(t, 'n2', peers);
  await waitFor(() => messages(b).length === accepted, 'queued messages delivered after the restart');
  t.equal(a.transport.queueBytes('n2'), 0);
  t.same(messages(b).map((m) => m.message.type === 'MsgApp' && m.message.index), Array.from({ length: accepted }, (_, i) => i));
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
  const hellos: [Frame, RegExp][] = [
    [{ kind: 'hello', nodeId: 'intruder', to: 'n2', auth: false, nonce }, /unknown node id "intruder"/],
    [{ kind: 'hello', nodeId: 'n1', to: 'n7', auth: false, nonce }, /this is node n2, not n7/],
    [{ kind: 'hello', nodeId: 'n3', to: 'n2', auth: false, nonce }, /node n2 dials n3, not the other way round/],
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
        if (frame.kind === 'hello') socket.write(encodeFrame({ kind: 'challenge', nodeId: 'n2', auth: false, nonce: new Uint8Array(NONCE_BYTES), proof: new Uint8Array(0) }));
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
