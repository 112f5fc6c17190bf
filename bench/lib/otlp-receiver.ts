// An OTLP/HTTP receiver for the tracing benchmarks and tests: the servers export their spans to it
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL=http/json) and it keeps them, so that a
// run can be broken down by stage (span name) and its trace structure checked. It answers 200 `{}`
// as a collector does. Protobuf posts are counted, not decoded: they mean the protocol env was not
// honoured, which assertJson() reports.
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { quantile } from './stats.js';

/** OTLP's span kinds (the API's SpanKind + 1; 0 is unspecified). */
export const SPAN_KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 } as const;

export type AttributeValue = string | number | boolean | null;

export interface ReceivedSpan {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  /** '' for a root span. */
  parentSpanId: string;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttributeValue>;
  /** The resource's service.instance.id (the raftlock node id), '' if it has none. */
  node: string;
  /** The resource's service.name. */
  service: string;
}

export interface ReceiverOptions {
  /** Keep and decode the spans (default); false only counts posts, bytes and spans, for overhead runs. */
  keepSpans?: boolean;
  /** Spans kept at most; later ones are counted in `dropped`, never buffered. */
  spansMax?: number;
  /** The largest request body accepted (413 beyond it). */
  bodyBytesMax?: number;
}

const SPANS_MAX_DEFAULT = 500_000;
const BODY_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
const HOST = '127.0.0.1';

interface OtlpAnyValue {
  stringValue?: string;
  intValue?: number | string;
  doubleValue?: number;
  boolValue?: boolean;
}

interface OtlpKeyValue {
  key: string;
  value?: OtlpAnyValue;
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: OtlpKeyValue[];
}

interface OtlpTraceRequest {
  resourceSpans?: { resource?: { attributes?: OtlpKeyValue[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

function attributeValue(value: OtlpAnyValue | undefined): AttributeValue {
  if (value === undefined) return null;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.boolValue !== undefined) return value.boolValue;
  return null;
}

function attributes(list: OtlpKeyValue[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of list ?? []) out[kv.key] = attributeValue(kv.value);
  return out;
}

/** The spans of one OTLP JSON ExportTraceServiceRequest. */
export function parseOtlpJson(body: string): ReceivedSpan[] {
  const request = JSON.parse(body) as OtlpTraceRequest;
  const spans: ReceivedSpan[] = [];
  for (const rs of request.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    const node = typeof resource['service.instance.id'] === 'string' ? resource['service.instance.id'] : '';
    const service = typeof resource['service.name'] === 'string' ? resource['service.name'] : '';
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        spans.push({
          name: s.name, kind: s.kind ?? 0, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '',
          startNs: BigInt(s.startTimeUnixNano), endNs: BigInt(s.endTimeUnixNano), attributes: attributes(s.attributes), node, service,
        });
      }
    }
  }
  return spans;
}

/** Occurrences of `"spanId"` in a JSON body: its span count, without decoding it. */
function countSpanIds(body: Buffer): number {
  const needle = Buffer.from('"spanId"');
  let n = 0;
  for (let at = body.indexOf(needle); at >= 0; at = body.indexOf(needle, at + needle.length)) n += 1;
  return n;
}

/** A running receiver; close() stops it. Spans accumulate until clear(). */
export class OtlpReceiver {
  spans: ReceivedSpan[] = [];
  /** Trace posts answered, by body encoding. */
  jsonPosts = 0;
  protobufPosts = 0;
  /** Posts to /v1/metrics or /v1/logs (answered, not read). */
  otherPosts = 0;
  /** Requests refused: bad path or method, too large, undecodable. The last reason is kept. */
  rejected = 0;
  lastRejection = '';
  /** Span count of the JSON posts (kept or not), and the bytes received. */
  spansReceived = 0;
  bytesReceived = 0;
  /** Spans not kept because spansMax was reached. */
  dropped = 0;
  /** performance.now() of the last trace post, to tell when the exporters have gone quiet. */
  lastPostAt = 0;

  private constructor(private readonly server: http.Server, readonly port: number, private readonly options: Required<ReceiverOptions>) {}

  static async start(options: ReceiverOptions = {}): Promise<OtlpReceiver> {
    const settings = { keepSpans: options.keepSpans ?? true, spansMax: options.spansMax ?? SPANS_MAX_DEFAULT, bodyBytesMax: options.bodyBytesMax ?? BODY_BYTES_MAX_DEFAULT };
    const server = http.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, HOST, resolve);
    });
    const receiver = new OtlpReceiver(server, (server.address() as { port: number }).port, settings);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => receiver.handle(req, res));
    return receiver;
  }

  /** The base URL for OTEL_EXPORTER_OTLP_ENDPOINT. */
  get endpoint(): string {
    return `http://${HOST}:${this.port}`;
  }

  /**
   * The environment that points a traced raftlock node here: OTLP/HTTP JSON, no metrics or logs
   * exporters, and a short batch delay so spans arrive soon after the load stops (scheduleDelayMs;
   * undefined keeps the SDK's defaults, as a user who only sets the endpoint gets).
   */
  env(options: { serviceName?: string; scheduleDelayMs?: number; queueSizeMax?: number; exportBatchSizeMax?: number } = {}): Record<string, string> {
    const env: Record<string, string> = {
      OTEL_EXPORTER_OTLP_ENDPOINT: this.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: options.serviceName ?? 'raftlock',
      OTEL_METRICS_EXPORTER: 'none',
      OTEL_LOGS_EXPORTER: 'none',
    };
    if (options.scheduleDelayMs !== undefined) env['OTEL_BSP_SCHEDULE_DELAY'] = String(options.scheduleDelayMs);
    if (options.queueSizeMax !== undefined) env['OTEL_BSP_MAX_QUEUE_SIZE'] = String(options.queueSizeMax);
    if (options.exportBatchSizeMax !== undefined) env['OTEL_BSP_MAX_EXPORT_BATCH_SIZE'] = String(options.exportBatchSizeMax);
    return env;
  }

  /** Forgets the spans and counters received so far. */
  clear(): void {
    this.spans = [];
    this.jsonPosts = this.protobufPosts = this.otherPosts = this.rejected = 0;
    this.spansReceived = this.bytesReceived = this.dropped = 0;
    this.lastRejection = '';
  }

  /** Throws if anything arrived that was not OTLP JSON traces: the servers ignored OTEL_EXPORTER_OTLP_PROTOCOL, or sent garbage. */
  assertJson(): void {
    if (this.protobufPosts > 0) {
      throw new Error(`the OTLP receiver got ${this.protobufPosts} protobuf trace post(s) (and ${this.jsonPosts} JSON): the server did not honour ` +
        'OTEL_EXPORTER_OTLP_PROTOCOL=http/json, and this receiver reads OTLP JSON only');
    }
    if (this.rejected > 0) throw new Error(`the OTLP receiver refused ${this.rejected} request(s), the last: ${this.lastRejection}`);
  }

  /** Resolves once no trace post has arrived for quietMs (the exporters have flushed), or after timeoutMs. */
  async waitQuiet(quietMs: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const startedAt = performance.now();
    while (performance.now() < deadline) {
      const last = Math.max(this.lastPostAt, startedAt);
      if (performance.now() - last >= quietMs) return;
      await new Promise((r) => setTimeout(r, Math.min(100, quietMs)));
    }
  }

  /** Resolves once `ready(spans)` holds, polling; rejects after timeoutMs saying what `describe` says. */
  async waitFor(ready: (spans: ReceivedSpan[]) => boolean, timeoutMs: number, describe: () => string): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!ready(this.spans)) {
      this.assertJson();
      if (performance.now() > deadline) throw new Error(`spans not received within ${timeoutMs} ms: ${describe()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private reject(res: http.ServerResponse, status: number, reason: string): void {
    this.rejected += 1;
    this.lastRejection = reason;
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: reason }));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '').split('?', 1)[0];
    if (req.method !== 'POST') return this.reject(res, 405, `${req.method} ${path}`);
    if (path === '/v1/metrics' || path === '/v1/logs') {
      this.otherPosts += 1;
      req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
      return;
    }
    if (path !== '/v1/traces') return this.reject(res, 404, `POST ${path}`);
    const chunks: Buffer[] = [];
    let bytes = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > this.options.bodyBytesMax) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) return this.reject(res, 413, `a trace post of more than ${this.options.bodyBytesMax} bytes`);
      this.bytesReceived += bytes;
      this.lastPostAt = performance.now();
      try {
        this.accept(req.headers, Buffer.concat(chunks));
      } catch (error) {
        return this.reject(res, 400, `undecodable trace post: ${(error as Error).message}`);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  }

  private accept(headers: http.IncomingHttpHeaders, raw: Buffer): void {
    const body = /gzip/i.test(headers['content-encoding'] ?? '') ? gunzipSync(raw) : raw;
    if (/protobuf/i.test(headers['content-type'] ?? '')) {
      this.protobufPosts += 1;
      return;
    }
    if (!this.options.keepSpans) {
      this.jsonPosts += 1;
      this.spansReceived += countSpanIds(body);
      return;
    }
    const spans = parseOtlpJson(body.toString('utf8'));
    this.jsonPosts += 1;
    this.spansReceived += spans.length;
    const room = Math.max(0, this.options.spansMax - this.spans.length);
    for (let i = 0; i < Math.min(room, spans.length); i++) this.spans.push(spans[i]!);
    this.dropped += Math.max(0, spans.length - room);
  }
}

// ---- Analysis --------------------------------------------------------------------------------

/** The child span kinds of a command, as the tracing contract names them. */
export const STAGES = ['forward', 'raft.commit', 'wal.fsync', 'apply', 'reply.write'] as const;
export const ENTRY_STAGE = 'server (entry node)';
export const LEADER_STAGE = 'server (leader, forwarded)';

export const isServer = (s: ReceivedSpan): boolean => s.kind === SPAN_KIND.SERVER;
export const isForwardedServer = (s: ReceivedSpan): boolean => isServer(s) && s.attributes['raftlock.forwarded'] === true;
export const durationMs = (s: ReceivedSpan): number => Number(s.endNs - s.startNs) / 1e6;

/** The spans of the traces whose root (the entry node's server span) is named `command`, e.g. `KLOCK`. */
export function tracesOf(spans: ReceivedSpan[], command: string): ReceivedSpan[] {
  const traces = new Set<string>();
  for (const s of spans) if (isServer(s) && s.parentSpanId === '' && s.name === command) traces.add(s.traceId);
  return spans.filter((s) => traces.has(s.traceId));
}

export interface StageStats {
  stage: string;
  count: number;
  p50Ms: number;
  p99Ms: number;
}

/** The stage a span stands for: server spans split into entry node and forwarded-to leader, others by name. */
export function stageOf(s: ReceivedSpan): string {
  if (!isServer(s)) return s.name;
  return isForwardedServer(s) ? LEADER_STAGE : ENTRY_STAGE;
}

/** Count, p50 and p99 of the durations per stage: the server spans first, then the contract's stages, then any other span name. */
export function stageBreakdown(spans: ReceivedSpan[]): StageStats[] {
  const byStage = new Map<string, number[]>();
  for (const s of spans) {
    const stage = stageOf(s);
    let list = byStage.get(stage);
    if (list === undefined) byStage.set(stage, (list = []));
    list.push(durationMs(s));
  }
  const known: string[] = [ENTRY_STAGE, LEADER_STAGE, ...STAGES];
  const order = [...known.filter((n) => byStage.has(n)), ...[...byStage.keys()].filter((n) => !known.includes(n)).sort()];
  return order.map((stage) => {
    const sorted = Float64Array.from(byStage.get(stage)!).sort();
    return { stage, count: sorted.length, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99) };
  });
}

export interface TraceStructure {
  /** Root server spans: commands as the entry node saw them. */
  commands: number;
  /** Commands whose trace has at least one span of each stage (anywhere below the root). */
  withStage: Record<string, number>;
  /** Commands whose trace has every stage in `required`. */
  complete: number;
  /** Traces that cross the peer hop: a `forward` span whose child server span came from another node. */
  crossNode: number;
  /** Forwarded commands: root server spans with a `forward` child. */
  forwarded: number;
  /** Spans whose parent is not among the received spans (the parent was dropped, or sampled apart). */
  orphans: number;
}

/** How the traces hang together; `required` are the stages a complete command has (default all but forward). */
export function traceStructure(spans: ReceivedSpan[], required: readonly string[] = STAGES.filter((s) => s !== 'forward')): TraceStructure {
  const byId = new Map<string, ReceivedSpan>();
  for (const s of spans) byId.set(`${s.traceId}/${s.spanId}`, s);
  const stagesOfTrace = new Map<string, Set<string>>();
  let orphans = 0;
  let crossNode = 0;
  const forwardedRoots = new Set<string>();
  for (const s of spans) {
    let set = stagesOfTrace.get(s.traceId);
    if (set === undefined) stagesOfTrace.set(s.traceId, (set = new Set()));
    set.add(s.name);
    if (s.parentSpanId === '') continue;
    const parent = byId.get(`${s.traceId}/${s.parentSpanId}`);
    if (parent === undefined) {
      orphans += 1;
      continue;
    }
    if (s.name === 'forward' && isServer(parent) && parent.parentSpanId === '') forwardedRoots.add(`${parent.traceId}/${parent.spanId}`);
    if (isServer(s) && parent.name === 'forward' && s.node !== parent.node) crossNode += 1;
  }
  const roots = spans.filter((s) => isServer(s) && s.parentSpanId === '');
  const withStage: Record<string, number> = {};
  for (const stage of STAGES) withStage[stage] = roots.filter((r) => stagesOfTrace.get(r.traceId)!.has(stage)).length;
  const complete = roots.filter((r) => required.every((stage) => stagesOfTrace.get(r.traceId)!.has(stage))).length;
  return { commands: roots.length, withStage, complete, crossNode, forwarded: forwardedRoots.size, orphans };
}
