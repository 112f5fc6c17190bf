/**
 * Command tracing. Off (no Tracing object) a command pays one null check. On, a command is sampled
 * before anything else is done for it; only a sampled command gets a CommandTrace, into which the
 * stages it passes through record plain timestamps. Once its reply has been handed to the socket,
 * its spans are created after the fact, with those timestamps, in a batch with other finished
 * traces (the id of the forward span, which the leader's span names as its parent, is chosen
 * when the command is forwarded):
 *
 *   KLOCK (server)          decode → reply written
 *     forward (client)      waiting for the partition leader (another node); the leader's
 *                           server span for the command is the child of this span
 *     raft.commit           propose → the entry known committed (raftlock.raft.batch_entries)
 *     wal.fsync             the Ready's log write and fdatasync that hold the entry
 *     apply                 the lock state machine applying the entry
 *     reply.write           reply ready → handed to the socket
 *
 * The stages below the connection (replica, forwarding) find the command's trace in `activeTrace`,
 * set while the command is dispatched: they only look at it when it is set.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  ROOT_CONTEXT, trace, SpanKind, SpanStatusCode, TraceFlags,
  type Attributes, type Context, type HrTime, type SpanContext, type Tracer,
} from '@opentelemetry/api';

/** W3C trace context as it crosses the peer hop (and as a client may send it). */
export interface TraceParent {
  /** 32 lower-case hex digits. */
  readonly traceId: string;
  /** 16 lower-case hex digits: the span the receiver's server span is the child of. */
  readonly spanId: string;
  /** W3C trace flags; bit 0: sampled. */
  readonly flags: number;
}

/** How the key of a traced command is recorded: a short hash of it, or not at all. */
export type TraceKeys = 'hash' | 'omit';

export interface TracingOptions {
  /** Fraction of commands traced, 0..1. */
  readonly ratio: number;
  readonly keys: TraceKeys;
  readonly tracer: Tracer;
  /** Where the command came from, for attributes: this node's id. */
  readonly nodeId: string;
  /** A number in [0, 1) (Math.random in production). */
  readonly random?: () => number;
}

/** The command being dispatched right now, if it is traced (see the module comment). */
export const activeTrace: { current: CommandTrace | null } = { current: null };

/** Milliseconds on the clock every stage timestamp uses (performance.now()). */
export function traceNow(): number {
  return performance.now();
}

const TIME_ORIGIN_MS = performance.timeOrigin;

/**
 * A traceNow() timestamp as wall-clock HrTime. Spans get HrTime, never a number: the SDK maps a
 * number through a per-span offset between Date.now() (whole milliseconds) and the performance
 * clock, which would shift sibling spans against each other by up to a millisecond.
 */
function hrTime(ms: number): HrTime {
  const wallMs = TIME_ORIGIN_MS + ms;
  const seconds = Math.floor(wallMs / 1000);
  return [seconds, Math.round((wallMs - seconds * 1000) * 1e6)];
}

/** Not yet reached. */
const NOT_YET = -1;

/**
 * Trace and span ids. A command's spans are created in batches after the fact (see Tracing), but
 * the forward span's id must be known when the command leaves for its leader: Tracing picks it
 * then and has the SDK take it when the span is created, by presetting it here. The SDK must be
 * given this generator (startTracing does; a test's own provider must be too).
 */
export class TraceIds {
  private pool = Buffer.allocUnsafe(4096);
  private at = this.pool.length;
  private traceId: string | null = null;
  private spanId: string | null = null;

  /** A random id of `bytes` bytes as lower-case hex, never all zeros (an invalid id). */
  random(bytes: number): string {
    for (;;) {
      if (this.at + bytes > this.pool.length) {
        randomFillSync(this.pool);
        this.at = 0;
      }
      const from = this.at;
      this.at += bytes;
      for (let i = from; i < this.at; i++) if (this.pool[i] !== 0) return this.pool.toString('hex', from, this.at);
    }
  }

  /** The next generateTraceId() / generateSpanId() returns id. */
  preset(kind: 'trace' | 'span', id: string): void {
    if (kind === 'trace') this.traceId = id;
    else this.spanId = id;
  }

  /** Whether a preset id was not taken (the SDK was not given this generator). */
  unused(): boolean {
    const unused = this.traceId !== null || this.spanId !== null;
    this.traceId = this.spanId = null;
    return unused;
  }

  generateTraceId(): string {
    const id = this.traceId ?? this.random(16);
    this.traceId = null;
    return id;
  }

  generateSpanId(): string {
    const id = this.spanId ?? this.random(8);
    this.spanId = null;
    return id;
  }
}

/** The id generator of every tracer raftlock creates spans with. */
export const traceIds = new TraceIds();

/**
 * One sampled command: what it is, and the traceNow() timestamps of the stages it went through.
 * Plain fields only: its spans are created later, in a batch (Tracing.flush).
 */
export class CommandTrace {
  /** The partition whose log the command went through; -1 if none. */
  partition = -1;
  proposedMs = NOT_YET;
  persistStartMs = NOT_YET;
  persistEndMs = NOT_YET;
  /** Entries in the Ready whose log write held this command's entry. */
  batchEntries = 0;
  committedMs = NOT_YET;
  applyStartMs = NOT_YET;
  applyEndMs = NOT_YET;
  replyReadyMs = NOT_YET;
  /** The reply handed to the socket (or to the peer that forwarded the command). */
  endMs = NOT_YET;
  errorReply: string | undefined = undefined;
  /** The trace's id once the command was forwarded (it had to be chosen then); null before. */
  traceId: string | null = null;
  forwardSpanId: string | null = null;
  forwardLeader = '';
  forwardStartMs = NOT_YET;
  forwardEndMs = NOT_YET;
  forwardError: string | undefined = undefined;

  constructor(
    readonly argv: readonly string[],
    readonly startMs: number,
    readonly addr: string | undefined,
    /** A remote parent: the entry node's forward span, or a client's traceparent. */
    readonly parent: TraceParent | undefined,
    /** Run for another node. */
    readonly forwarded: boolean,
  ) {}

  /** The forward span starts: returns the context the leader's span is to be the child of. */
  startForward(leader: string): TraceParent {
    this.forwardLeader = leader;
    this.forwardStartMs = traceNow();
    this.forwardEndMs = NOT_YET;
    this.forwardSpanId = traceIds.random(8);
    const traceId = this.parent?.traceId ?? (this.traceId ??= traceIds.random(16));
    return { traceId, spanId: this.forwardSpanId, flags: TraceFlags.SAMPLED };
  }

  endForward(error?: string): void {
    if (this.forwardSpanId === null || this.forwardEndMs !== NOT_YET) return;
    this.forwardEndMs = traceNow();
    this.forwardError = error;
  }
}

/** Finished traces wait at most this long before their spans are created... */
const EMIT_DELAY_MS = 200;
/** ...or until this many are waiting. */
const EMIT_BATCH = 128;

/**
 * Samples commands and turns their traces into spans. A finished trace waits (up to EMIT_DELAY_MS,
 * or until EMIT_BATCH are waiting) and then all waiting traces become spans in one go: at 1%
 * sampling the span code would otherwise run a few times per event-loop turn, cold, at several
 * times the cost it has when it runs in a burst.
 */
export class Tracing {
  readonly tracer: Tracer;
  readonly ratio: number;
  private readonly random: () => number;
  private waiting: CommandTrace[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly options: TracingOptions) {
    this.tracer = options.tracer;
    this.ratio = Math.min(1, Math.max(0, options.ratio));
    this.random = options.random ?? Math.random;
  }

  /** Whether to trace the next command: the one decision an unsampled command pays for. */
  sample(): boolean {
    return this.ratio >= 1 || (this.ratio > 0 && this.random() < this.ratio);
  }

  /**
   * Starts tracing a command read from a client at startMs. parent: a remote span (the entry
   * node's forward span, or a client's traceparent); forwarded: run for another node.
   */
  begin(argv: readonly string[], startMs: number, client: { addr?: string }, parent?: TraceParent, forwarded = false): CommandTrace {
    return new CommandTrace(argv, startMs, client.addr, parent, forwarded);
  }

  /** Ends the traces of commands whose replies were handed to the socket together at endMs. */
  finishAll(traces: readonly CommandTrace[], endMs: number): void {
    for (const t of traces) this.finish(t, endMs);
  }

  /** Ends a command's trace: its reply was handed over at endMs; errorReply if it answered an error. */
  finish(t: CommandTrace, endMs: number, errorReply?: string): void {
    t.endMs = endMs;
    t.errorReply = errorReply;
    this.waiting.push(t);
    if (this.waiting.length >= EMIT_BATCH) this.flush();
    else if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(), EMIT_DELAY_MS);
      this.timer.unref();
    }
  }

  /** Creates the spans of every finished trace now (before the SDK is shut down, and in tests). */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const traces = this.waiting;
    this.waiting = [];
    for (const t of traces) this.emit(t);
  }

  private emit(t: CommandTrace): void {
    const name = t.argv[0]!.toUpperCase();
    const attributes: Attributes = {
      'db.system': 'redis',
      'db.system.name': 'redis',
      'db.operation.name': name,
      'raftlock.node': this.options.nodeId,
    };
    if (t.addr !== undefined) attributes['network.peer.address'] = t.addr;
    if (t.forwarded) attributes['raftlock.forwarded'] = true;
    if (t.argv.length > 1 && this.options.keys === 'hash') attributes['raftlock.key.hash'] = keyHash(t.argv[1]!);
    if (t.partition >= 0) attributes['raftlock.partition'] = t.partition;
    let ctx = ROOT_CONTEXT;
    if (t.parent !== undefined) ctx = trace.setSpanContext(ROOT_CONTEXT, remoteContext(t.parent));
    else if (t.traceId !== null) traceIds.preset('trace', t.traceId);
    const span = this.tracer.startSpan(name, { kind: SpanKind.SERVER, startTime: hrTime(t.startMs), attributes }, ctx);
    const parent = trace.setSpan(ROOT_CONTEXT, span);
    if (t.forwardSpanId !== null) {
      traceIds.preset('span', t.forwardSpanId);
      const forward = this.tracer.startSpan('forward', {
        kind: SpanKind.CLIENT, startTime: hrTime(t.forwardStartMs), attributes: { 'raftlock.leader': t.forwardLeader },
      }, parent);
      const error = t.forwardEndMs === NOT_YET ? 'no reply from the leader' : t.forwardError;
      if (error !== undefined) forward.setStatus({ code: SpanStatusCode.ERROR, message: error });
      forward.end(hrTime(t.forwardEndMs === NOT_YET ? t.endMs : t.forwardEndMs));
    }
    if (traceIds.unused()) throw new Error('the tracer does not take raftlock\'s span ids: give its provider traceIds as idGenerator');
    if (t.proposedMs !== NOT_YET && t.committedMs !== NOT_YET) {
      this.child(parent, 'raft.commit', t.proposedMs, t.committedMs, { 'raftlock.partition': t.partition, 'raftlock.raft.batch_entries': t.batchEntries });
    }
    if (t.persistStartMs !== NOT_YET && t.persistEndMs !== NOT_YET) this.child(parent, 'wal.fsync', t.persistStartMs, t.persistEndMs);
    if (t.applyStartMs !== NOT_YET && t.applyEndMs !== NOT_YET) this.child(parent, 'apply', t.applyStartMs, t.applyEndMs);
    if (t.replyReadyMs !== NOT_YET) this.child(parent, 'reply.write', t.replyReadyMs, t.endMs);
    if (t.errorReply !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: t.errorReply });
    span.end(hrTime(t.endMs));
  }

  private child(parent: Context, name: string, startMs: number, endMs: number, attributes?: Attributes): void {
    this.tracer.startSpan(name, { kind: SpanKind.INTERNAL, startTime: hrTime(startMs), attributes }, parent).end(hrTime(Math.max(startMs, endMs)));
  }
}

function remoteContext(parent: TraceParent): SpanContext {
  return { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.flags & TraceFlags.SAMPLED, isRemote: true };
}

/** 16 hex digits of SHA-256: enough to tell keys apart in traces without recording them. */
export function keyHash(key: string): string {
  return createHash('sha256').update(key, 'latin1').digest('hex').slice(0, 16);
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Parses a W3C traceparent header value (version 00); null if it is not one or names no trace. */
export function parseTraceParent(text: string): TraceParent | null {
  const match = TRACEPARENT.exec(text);
  if (match === null || /^0+$/.test(match[1]!) || /^0+$/.test(match[2]!)) return null;
  return { traceId: match[1]!, spanId: match[2]!, flags: parseInt(match[3]!, 16) };
}
