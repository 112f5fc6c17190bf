// The benchmarks' OTLP receiver against the real OpenTelemetry SDK exporter (the one raftlock uses,
// configured by the same standard env), and its stage breakdown and trace-structure helpers.
import t from 'tap';
import { gzipSync } from 'node:zlib';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { context, SpanKind, trace } from '@opentelemetry/api';
import {
  ENTRY_STAGE, LEADER_STAGE, OtlpReceiver, parseOtlpJson, stageBreakdown, traceStructure, tracesOf, type ReceivedSpan,
} from '../../bench/lib/otlp-receiver.js';

/** A span as the receiver keeps it, for the analysis tests. */
function span(fields: Partial<ReceivedSpan> & { name: string; spanId: string; durationMs: number }): ReceivedSpan {
  const { durationMs, ...rest } = fields;
  return {
    kind: 1, traceId: 't1', parentSpanId: '', startNs: 1_000_000n, endNs: 1_000_000n + BigInt(Math.round(durationMs * 1e6)),
    attributes: {}, node: 'n1', service: 'raftlock', ...rest,
  };
}

t.test('spans exported by the OpenTelemetry Node SDK over OTLP/HTTP JSON arrive with ids, kinds, times, attributes and the node', async (t) => {
  const receiver = await OtlpReceiver.start();
  t.teardown(() => receiver.close());
  const saved = { ...process.env };
  Object.assign(process.env, receiver.env({ scheduleDelayMs: 50 }), { OTEL_RESOURCE_ATTRIBUTES: 'service.instance.id=n7', OTEL_TRACES_SAMPLER: 'always_on' });
  const sdk = new NodeSDK();
  sdk.start();
  try {
    const tracer = trace.getTracer('otlp-receiver-test');
    const root = tracer.startSpan('KLOCK', { kind: SpanKind.SERVER, attributes: { 'db.system': 'redis', 'raftlock.partition': 3, 'raftlock.forwarded': true } });
    const inRoot = trace.setSpan(context.active(), root);
    tracer.startSpan('raft.commit', { attributes: { 'raftlock.raft.batch_entries': 12 } }, inRoot).end();
    tracer.startSpan('reply.write', {}, inRoot).end();
    root.end();
  } finally {
    await sdk.shutdown();
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
  await receiver.waitFor((spans) => spans.length >= 3, 10_000, () => `${receiver.spans.length} spans`);
  receiver.assertJson();
  t.equal(receiver.protobufPosts, 0);
  const byName = new Map(receiver.spans.map((s) => [s.name, s]));
  const root = byName.get('KLOCK')!;
  t.match(root, { kind: 2, parentSpanId: '', node: 'n7', service: 'raftlock', attributes: { 'db.system': 'redis', 'raftlock.partition': 3, 'raftlock.forwarded': true } });
  t.match(root.traceId, /^[0-9a-f]{32}$/);
  t.match(root.spanId, /^[0-9a-f]{16}$/);
  t.ok(root.endNs >= root.startNs && root.startNs > 1_600_000_000_000_000_000n, 'Unix nanoseconds');
  const commit = byName.get('raft.commit')!;
  t.equal(commit.parentSpanId, root.spanId);
  t.equal(commit.traceId, root.traceId);
  t.equal(commit.attributes['raftlock.raft.batch_entries'], 12);
  t.same(traceStructure(receiver.spans, ['raft.commit', 'reply.write']), {
    commands: 1, withStage: { forward: 0, 'raft.commit': 1, 'wal.fsync': 0, apply: 0, 'reply.write': 1 }, complete: 1, crossNode: 0, forwarded: 0, orphans: 0,
  });
});

t.test('protobuf, gzip, oversized and misdirected posts', async (t) => {
  const receiver = await OtlpReceiver.start({ bodyBytesMax: 10_000 });
  t.teardown(() => receiver.close());
  const post = (path: string, body: Buffer | string, headers: Record<string, string>): Promise<Response> =>
    fetch(`${receiver.endpoint}${path}`, { method: 'POST', body, headers });
  const json = JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: 'service.instance.id', value: { stringValue: 'n2' } }] }, scopeSpans: [{ spans: [
    { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), name: 'GET', kind: 2, startTimeUnixNano: '1000', endTimeUnixNano: 3001000, attributes: [{ key: 'n', value: { intValue: '7' } }] },
  ] }] }] });
  const gz = await post('/v1/traces', gzipSync(json), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
  t.equal(gz.status, 200);
  t.same(await gz.json(), {});
  t.match(receiver.spans, [{ name: 'GET', node: 'n2', startNs: 1000n, endNs: 3_001_000n, attributes: { n: 7 } }]);
  t.equal((await post('/v1/metrics', '{}', { 'content-type': 'application/json' })).status, 200);
  t.equal(receiver.otherPosts, 1);
  receiver.assertJson();
  t.equal((await post('/v1/traces', Buffer.from([0x0a, 0x00]), { 'content-type': 'application/x-protobuf' })).status, 200, 'protobuf is answered');
  t.throws(() => receiver.assertJson(), /1 protobuf trace post.*OTEL_EXPORTER_OTLP_PROTOCOL=http\/json/);
  receiver.clear();
  t.equal((await post('/v1/traces', 'x'.repeat(20_000), { 'content-type': 'application/json' })).status, 413);
  t.equal((await post('/v1/spans', '{}', { 'content-type': 'application/json' })).status, 404);
  t.equal((await fetch(`${receiver.endpoint}/v1/traces`)).status, 405);
  t.equal((await post('/v1/traces', '{not json', { 'content-type': 'application/json' })).status, 400);
  t.equal(receiver.rejected, 4);
  t.throws(() => receiver.assertJson(), /refused 4 request\(s\), the last: undecodable/);
});

t.test('a receiver that only counts keeps no spans', async (t) => {
  const receiver = await OtlpReceiver.start({ keepSpans: false });
  t.teardown(() => receiver.close());
  const body = JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [1, 2, 3].map((i) => ({ traceId: 't', spanId: `s${i}`, parentSpanId: 'p', name: 'x', startTimeUnixNano: '0', endTimeUnixNano: '1' })) }] }] });
  await fetch(`${receiver.endpoint}/v1/traces`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  t.equal(receiver.spansReceived, 3);
  t.equal(receiver.spans.length, 0);
  t.equal(parseOtlpJson(body).length, 3);
});

t.test('stage breakdown splits server spans into entry node and forwarded-to leader; structure finds the peer hop', async (t) => {
  const spans = [
    // A command forwarded from n1 to its leader n2.
    span({ name: 'KLOCK', kind: 2, spanId: 'r1', durationMs: 4 }),
    span({ name: 'forward', spanId: 'f1', parentSpanId: 'r1', durationMs: 3 }),
    span({ name: 'KLOCK', kind: 2, spanId: 'l1', parentSpanId: 'f1', node: 'n2', attributes: { 'raftlock.forwarded': true }, durationMs: 2 }),
    span({ name: 'raft.commit', spanId: 'c1', parentSpanId: 'l1', node: 'n2', durationMs: 1.5 }),
    span({ name: 'wal.fsync', spanId: 'w1', parentSpanId: 'c1', node: 'n2', durationMs: 1 }),
    span({ name: 'apply', spanId: 'a1', parentSpanId: 'l1', node: 'n2', durationMs: 0.1 }),
    span({ name: 'reply.write', spanId: 'y1', parentSpanId: 'r1', durationMs: 0.05 }),
    // A local command on n1 without wal.fsync, and a GET, and an orphan.
    span({ name: 'KLOCK', kind: 2, traceId: 't2', spanId: 'r2', durationMs: 2 }),
    span({ name: 'raft.commit', traceId: 't2', spanId: 'c2', parentSpanId: 'r2', durationMs: 1 }),
    span({ name: 'apply', traceId: 't2', spanId: 'a2', parentSpanId: 'r2', durationMs: 0.1 }),
    span({ name: 'reply.write', traceId: 't2', spanId: 'y2', parentSpanId: 'r2', durationMs: 0.05 }),
    span({ name: 'GET', kind: 2, traceId: 't3', spanId: 'r3', durationMs: 0.2 }),
    span({ name: 'apply', traceId: 't4', spanId: 'o4', parentSpanId: 'gone', durationMs: 0.1 }),
  ];
  const klock = tracesOf(spans, 'KLOCK');
  t.equal(klock.length, 11);
  const stages = stageBreakdown(klock);
  t.same(stages.map((s) => [s.stage, s.count]), [[ENTRY_STAGE, 2], [LEADER_STAGE, 1], ['forward', 1], ['raft.commit', 2], ['wal.fsync', 1], ['apply', 2], ['reply.write', 2]]);
  t.match(stages[0], { p50Ms: 2, p99Ms: 4 });
  t.same(traceStructure(spans), {
    commands: 3, withStage: { forward: 1, 'raft.commit': 2, 'wal.fsync': 1, apply: 2, 'reply.write': 2 }, complete: 1, crossNode: 1, forwarded: 1, orphans: 1,
  });
});
