// Command tracing through real servers and real clients: the spans a sampled command produces, their
// nesting and timing, the trace crossing the forwarding hop to the partition leader, sampling, and
// keys hashed or left out. Spans go to an in-memory exporter through the SDK's own span processor.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { tracing } from '@opentelemetry/sdk-node';
import { SpanKind, type HrTime } from '@opentelemetry/api';
import { RaftlockServer } from '../../src/server/server.js';
import { DEFAULT_CONFIG, type ServerConfig } from '../../src/server/config.js';
import { keyHash, parseTraceParent, traceIds, traceNow, Tracing } from '../../src/trace/trace.js';

const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = tracing;
type BasicTracerProvider = tracing.BasicTracerProvider;
type InMemorySpanExporter = tracing.InMemorySpanExporter;
type ReadableSpan = tracing.ReadableSpan;
import { samplingRatio } from '../../src/trace/sdk.js';
import { freePort } from '../../bench/lib/proc.js';
import { sleep } from '../helpers/locks.js';

const STAGES = ['raft.commit', 'wal.fsync', 'apply', 'reply.write'];

function exporterAndTracer(): { exporter: InMemorySpanExporter; provider: BasicTracerProvider } {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ idGenerator: traceIds, spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { exporter, provider };
}

/** The servers create the spans of their finished traces now (they would within 200 ms). */
function flush(...servers: RaftlockServer[]): void {
  for (const server of servers) server.tracing!.flush();
}

/** A server tracing into provider; listening unless listen is false (cluster members listen together). */
async function tracedServer(t: Test, provider: BasicTracerProvider, overrides: Partial<ServerConfig> = {}, listen = true): Promise<RaftlockServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'raftlock-trace-'));
  const server = new RaftlockServer({ ...DEFAULT_CONFIG, port: 0, httpPort: 0, dataDir, logLevel: 'silent', traceSampleRatio: 1, ...overrides });
  await server.startTracing(provider.getTracer(`test-${overrides.nodeId ?? 'n1'}`));
  t.teardown(async () => {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  if (listen) await server.listen();
  return server;
}

function ms(time: HrTime): number {
  return time[0] * 1e3 + time[1] / 1e6;
}

function childrenOf(spans: readonly ReadableSpan[], parent: ReadableSpan): ReadableSpan[] {
  return spans.filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);
}

/** Every child lies within its parent (a microsecond of rounding allowed) and shares its trace. */
function checkNesting(t: Test, parent: ReadableSpan, children: readonly ReadableSpan[]): void {
  for (const child of children) {
    t.equal(child.spanContext().traceId, parent.spanContext().traceId, `${child.name} is in ${parent.name}'s trace`);
    t.ok(ms(child.startTime) >= ms(parent.startTime) - 0.001, `${child.name} starts within ${parent.name}`);
    t.ok(ms(child.endTime) <= ms(parent.endTime) + 0.001, `${child.name} ends within ${parent.name}`);
    t.ok(ms(child.endTime) >= ms(child.startTime), `${child.name} does not end before it starts`);
  }
}

t.test('a sampled KLOCK on a single node: a server span with raft.commit, wal.fsync, apply and reply.write', async (t) => {
  const { exporter, provider } = exporterAndTracer();
  const server = await tracedServer(t, provider);
  const client = new Redis({ port: server.port, lazyConnect: true });
  t.teardown(() => client.disconnect());
  await client.connect();
  t.equal(await client.call('KLOCK', 'orders/42', 'alice', '10000'), 0);
  t.equal(await client.get('plain'), null);
  await sleep(20);
  flush(server);

  const spans = exporter.getFinishedSpans();
  const klock = spans.filter((s) => s.name === 'KLOCK');
  t.equal(klock.length, 1, 'one KLOCK server span');
  const root = klock[0]!;
  t.equal(root.kind, SpanKind.SERVER);
  t.equal(root.parentSpanContext, undefined, 'a root span: the client sent no trace context');
  t.match(root.attributes, { 'db.system': 'redis', 'db.operation.name': 'KLOCK', 'raftlock.partition': 0, 'raftlock.key.hash': keyHash('orders/42') });
  t.notOk(JSON.stringify(root.attributes).includes('orders/42'), 'the key itself is not recorded');
  const children = childrenOf(spans, root);
  t.same(children.map((s) => s.name).sort(), [...STAGES].sort(), 'each stage once');
  checkNesting(t, root, children);
  const commit = children.find((s) => s.name === 'raft.commit')!;
  const fsync = children.find((s) => s.name === 'wal.fsync')!;
  const apply = children.find((s) => s.name === 'apply')!;
  t.equal(commit.attributes['raftlock.raft.batch_entries'], 1, 'the only entry of its log write');
  t.ok(ms(fsync.startTime) >= ms(commit.startTime) && ms(fsync.endTime) <= ms(commit.endTime), 'a single node commits after its own fsync');
  t.ok(ms(apply.startTime) >= ms(commit.endTime) - 0.001, 'applied once committed');

  const get = spans.filter((s) => s.name === 'GET');
  t.equal(get.length, 1, 'the read is traced too');
  // A read runs at the log time of the last applied write; when that lags the log clock by more
  // than a few ms (an idle partition), a tick is committed first, and traced as the read's own.
  const stages = childrenOf(spans, get[0]!).map((s) => s.name).sort();
  t.ok(stages.length === 1 ? stages[0] === 'reply.write' : t.same(stages, [...STAGES].sort()), `a read: its reply write, after a tick's round if any (${stages.join(', ')})`);
});

t.test('pipelined writes share one log write: batch size, and one trace per command', async (t) => {
  const { exporter, provider } = exporterAndTracer();
  const server = await tracedServer(t, provider);
  const client = new Redis({ port: server.port });
  t.teardown(() => client.disconnect());
  const pipeline = client.pipeline();
  for (let i = 0; i < 20; i++) pipeline.call('KLOCK', `batch-${i}`, 'o', '10000');
  const results = await pipeline.exec();
  t.same(results!.map(([error, value]) => [error, value]), Array.from({ length: 20 }, () => [null, 0]));
  await sleep(20);
  flush(server);
  const spans = exporter.getFinishedSpans();
  const roots = spans.filter((s) => s.name === 'KLOCK');
  t.equal(roots.length, 20);
  t.equal(new Set(roots.map((s) => s.spanContext().traceId)).size, 20, 'a trace each');
  const batches = spans.filter((s) => s.name === 'raft.commit').map((s) => s.attributes['raftlock.raft.batch_entries'] as number);
  t.equal(batches.length, 20);
  t.ok(Math.max(...batches) > 1, `some entries were written together (batch sizes ${[...new Set(batches)].join(', ')})`);
  for (const root of roots) t.equal(childrenOf(spans, root).length, STAGES.length, 'every command has every stage');
});

t.test('sampling: ratio 0 traces nothing; --trace-keys omit records no key', async (t) => {
  const none = exporterAndTracer();
  const off = await tracedServer(t, none.provider, { traceSampleRatio: 0 });
  const client = new Redis({ port: off.port });
  t.teardown(() => client.disconnect());
  for (let i = 0; i < 50; i++) await client.call('KLOCK', `k${i}`, 'o', '1000');
  flush(off);
  t.equal(none.exporter.getFinishedSpans().length, 0, 'no spans at ratio 0');

  const omit = exporterAndTracer();
  const keyless = await tracedServer(t, omit.provider, { traceKeys: 'omit' });
  const c2 = new Redis({ port: keyless.port });
  t.teardown(() => c2.disconnect());
  await c2.call('KLOCK', 'secret-key', 'o', '1000');
  await sleep(20);
  flush(keyless);
  const root = omit.exporter.getFinishedSpans().find((s) => s.name === 'KLOCK')!;
  t.equal(root.attributes['raftlock.key.hash'], undefined, 'no key hash');
});

t.test('a REST call with a W3C traceparent header: traced as the header says, under the caller\'s span', async (t) => {
  const { exporter, provider } = exporterAndTracer();
  const server = await tracedServer(t, provider, { traceSampleRatio: 0, httpPort: await freePort() });
  const post = (traceparent: string, resource: string): Promise<Response> => fetch(`http://127.0.0.1:${server.httpPort}/v1/locks/try-lock`, {
    method: 'POST', headers: { 'content-type': 'application/json', traceparent },
    body: JSON.stringify({ resource, owner: 'o', expiresMs: 10_000, durability: 1 }),
  });
  t.equal((await post('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 'rest-a')).status, 200);
  t.equal((await post('00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00', 'rest-b')).status, 200);
  await sleep(20);
  flush(server);
  const spans = exporter.getFinishedSpans();
  const roots = spans.filter((s) => s.name === 'KLOCK');
  t.equal(roots.length, 1, 'the sampled call only (this node samples nothing itself)');
  t.equal(roots[0]!.spanContext().traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'the caller\'s trace');
  t.equal(roots[0]!.parentSpanContext?.spanId, '00f067aa0ba902b7', 'under the caller\'s span');
  t.same(childrenOf(spans, roots[0]!).map((s) => s.name).sort(), ['apply', 'raft.commit', 'wal.fsync']);
});

t.test('sampling decisions and ratios', async (t) => {
  const { provider } = exporterAndTracer();
  let next = 0;
  const draws = [0.05, 0.5, 0.09, 0.99];
  const tracing = new Tracing({ ratio: 0.1, keys: 'hash', nodeId: 'n1', tracer: provider.getTracer('x'), random: () => draws[next++]! });
  t.same([tracing.sample(), tracing.sample(), tracing.sample(), tracing.sample()], [true, false, true, false], 'draws below the ratio are sampled');
  t.equal(samplingRatio(0.25, { OTEL_TRACES_SAMPLER: 'always_off' }), 0.25, 'the flag wins');
  t.equal(samplingRatio(undefined, {}), 1, 'default: every command');
  t.equal(samplingRatio(undefined, { OTEL_TRACES_SAMPLER: 'always_off' }), 0);
  t.equal(samplingRatio(undefined, { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' }), 0.01);
  t.equal(samplingRatio(undefined, { OTEL_TRACES_SAMPLER: 'traceidratio' }), 1);
  t.throws(() => samplingRatio(undefined, { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' }), /from 0 to 1/);
  t.throws(() => samplingRatio(undefined, { OTEL_TRACES_SAMPLER: 'jaeger_remote' }), /not supported/);
  t.same(parseTraceParent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', flags: 1 });
  t.equal(parseTraceParent('00-00000000000000000000000000000000-00f067aa0ba902b7-01'), null, 'an all-zero trace id is invalid');
  t.equal(parseTraceParent('garbage'), null);
});

t.test('a command sent to a follower: the trace crosses the forwarding hop to the leader', async (t) => {
  const ids = ['n1', 'n2', 'n3'];
  const ports = await Promise.all(ids.map(() => freePort()));
  const peers = new Map(ids.map((id, i) => [id, { host: '127.0.0.1', port: ports[i]! }]));
  const { exporter, provider } = exporterAndTracer();
  const servers: RaftlockServer[] = [];
  for (const nodeId of ids) servers.push(await tracedServer(t, provider, { nodeId, peers, partitions: 1, electionTimeoutMs: 300 }, false));
  await Promise.all(servers.map((s) => s.listen()));
  let leader: string | null = null;
  for (let i = 0; i < 200 && leader === null; i++) {
    const seen = servers.map((s) => s.info.raft!()[0]!.leader);
    if (seen.every((l) => l !== null && l === seen[0])) leader = seen[0]!;
    else await sleep(25);
  }
  t.ok(leader !== null, `a leader (${leader})`);
  const follower = servers.find((s) => s.config.nodeId !== leader)!;
  const client = new Redis({ port: follower.port });
  t.teardown(() => client.disconnect());
  t.equal(await client.call('KLOCK', 'hop', 'alice', '10000'), 0);
  await sleep(50);
  flush(...servers);

  const spans = exporter.getFinishedSpans().filter((s) => s.name === 'KLOCK' || s.parentSpanContext !== undefined);
  const entry = spans.find((s) => s.name === 'KLOCK' && s.attributes['raftlock.forwarded'] === undefined);
  t.ok(entry, 'the follower\'s server span');
  if (entry === undefined) return;
  t.equal(entry.attributes['raftlock.node'], follower.config.nodeId);
  const entryChildren = childrenOf(spans, entry);
  t.same(entryChildren.map((s) => s.name).sort(), ['forward', 'reply.write'], 'the follower forwards and writes the reply');
  checkNesting(t, entry, entryChildren);
  const forward = entryChildren.find((s) => s.name === 'forward')!;
  t.equal(forward.kind, SpanKind.CLIENT);
  t.equal(forward.attributes['raftlock.leader'], leader);
  const remote = childrenOf(spans, forward);
  t.equal(remote.length, 1, 'the leader\'s span is the forward span\'s child');
  const led = remote[0]!;
  t.match(led, { name: 'KLOCK', kind: SpanKind.SERVER });
  t.match(led.attributes, { 'raftlock.forwarded': true, 'raftlock.node': leader });
  t.ok(led.parentSpanContext?.isRemote, 'its parent came over the wire');
  const ledChildren = childrenOf(spans, led);
  t.same(ledChildren.map((s) => s.name).sort(), [...STAGES].sort(), 'the leader\'s Raft round, fsync, apply and answer');
  checkNesting(t, led, ledChildren.filter((s) => s.name !== 'reply.write'));
  const commit = ledChildren.find((s) => s.name === 'raft.commit')!;
  t.ok(ms(commit.endTime) - ms(commit.startTime) >= 0, 'the commit waited for a follower');
});

t.test('spans are created in batches: after 200 ms, or at once when 128 traces wait', async (t) => {
  const { exporter, provider } = exporterAndTracer();
  const tracing = new Tracing({ ratio: 1, keys: 'hash', nodeId: 'n1', tracer: provider.getTracer('batch') });
  t.teardown(() => tracing.flush());
  const finishOne = (i: number): void => {
    const trace = tracing.begin(['KLOCK', `k${i}`, 'o', '1000'], traceNow(), {});
    trace.replyReadyMs = traceNow();
    tracing.finish(trace, traceNow());
  };
  finishOne(0);
  t.equal(exporter.getFinishedSpans().length, 0, 'a finished trace waits');
  await sleep(400);
  t.same(exporter.getFinishedSpans().map((s) => s.name).sort(), ['KLOCK', 'reply.write'], 'its spans exist after the delay, with no flush');
  exporter.reset();
  for (let i = 1; i < 128; i++) finishOne(i);
  t.equal(exporter.getFinishedSpans().length, 0, '127 wait');
  finishOne(128);
  t.equal(exporter.getFinishedSpans().filter((s) => s.name === 'KLOCK').length, 128, 'the 128th makes them all spans');
});

t.test('a forwarded trace keeps the span id it sent: the tracer must take raftlock\'s ids', async (t) => {
  const { exporter, provider } = exporterAndTracer();
  const tracing = new Tracing({ ratio: 1, keys: 'omit', nodeId: 'n1', tracer: provider.getTracer('ids') });
  const trace = tracing.begin(['KLOCK', 'k', 'o', '1000'], traceNow(), {});
  const sent = trace.startForward('n2');
  t.match(sent, { traceId: /^[0-9a-f]{32}$/, spanId: /^[0-9a-f]{16}$/, flags: 1 });
  trace.endForward();
  tracing.finish(trace, traceNow());
  tracing.flush();
  const forward = exporter.getFinishedSpans().find((s) => s.name === 'forward')!;
  t.same({ traceId: forward.spanContext().traceId, spanId: forward.spanContext().spanId }, { traceId: sent.traceId, spanId: sent.spanId }, 'the span is the one the leader was told about');

  const foreign = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())] });
  const wrong = new Tracing({ ratio: 1, keys: 'omit', nodeId: 'n1', tracer: foreign.getTracer('other ids') });
  const lost = wrong.begin(['KLOCK', 'k', 'o', '1000'], traceNow(), {});
  lost.startForward('n2');
  wrong.finish(lost, traceNow());
  t.throws(() => wrong.flush(), /idGenerator/, 'a tracer with other ids is refused loudly');
});
