/**
 * Command tracing. Off (no Tracing object) a command pays one null check. On, a command is sampled
 * before anything else is done for it; only a sampled command gets a CommandTrace: its server span
 * starts live (so that a forwarded hop can name it as parent), the stages it passes through record
 * plain timestamps into it, and when its reply has been handed to the socket the stage spans are
 * created after the fact, with those timestamps, as children of the server span:
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
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  context, trace, SpanKind, SpanStatusCode, TraceFlags,
  type Attributes, type HrTime, type Span, type SpanContext, type Tracer,
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

/** One sampled command's timestamps (traceNow() ms) and its live spans. */
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
  private forwardSpan: Span | null = null;

  constructor(
    private readonly tracing: Tracing,
    readonly span: Span,
  ) {}

  /** The forward span starts: returns the context the leader's span is to be the child of. */
  startForward(leader: string): TraceParent {
    const parent = trace.setSpan(context.active(), this.span);
    this.forwardSpan = this.tracing.tracer.startSpan('forward', {
      kind: SpanKind.CLIENT, startTime: hrTime(traceNow()), attributes: { 'raftlock.leader': leader },
    }, parent);
    const { traceId, spanId, traceFlags } = this.forwardSpan.spanContext();
    return { traceId, spanId, flags: traceFlags };
  }

  endForward(error?: string): void {
    if (this.forwardSpan === null) return;
    if (error !== undefined) this.forwardSpan.setStatus({ code: SpanStatusCode.ERROR, message: error });
    this.forwardSpan.end(hrTime(traceNow()));
    this.forwardSpan = null;
  }
}

/** Samples commands and turns their traces into spans. */
export class Tracing {
  readonly tracer: Tracer;
  readonly ratio: number;
  private readonly random: () => number;

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
   * Starts the server span of a command read from a client at startMs. parent: a remote span
   * (the entry node's forward span, or a client's traceparent); forwarded: run for another node.
   */
  begin(argv: readonly string[], startMs: number, client: { addr?: string }, parent?: TraceParent, forwarded = false): CommandTrace {
    const name = argv[0]!.toUpperCase();
    const attributes: Attributes = {
      'db.system': 'redis',
      'db.system.name': 'redis',
      'db.operation.name': name,
      'raftlock.node': this.options.nodeId,
    };
    if (client.addr !== undefined) attributes['network.peer.address'] = client.addr;
    if (forwarded) attributes['raftlock.forwarded'] = true;
    if (argv.length > 1 && this.options.keys === 'hash') attributes['raftlock.key.hash'] = keyHash(argv[1]!);
    const ctx = parent === undefined ? context.active() : trace.setSpanContext(context.active(), remoteContext(parent));
    const span = this.tracer.startSpan(name, { kind: SpanKind.SERVER, startTime: hrTime(startMs), attributes }, ctx);
    return new CommandTrace(this, span);
  }

  /** Ends the traces of commands whose replies were handed to the socket together at endMs. */
  finishAll(traces: readonly CommandTrace[], endMs: number): void {
    for (const t of traces) this.finish(t, endMs);
  }

  /** Ends a command's trace: its reply was handed over at endMs; errorReply if it answered an error. */
  finish(t: CommandTrace, endMs: number, errorReply?: string): void {
    t.endForward('no reply from the leader');
    const parent = trace.setSpan(context.active(), t.span);
    if (t.partition >= 0) t.span.setAttribute('raftlock.partition', t.partition);
    if (t.proposedMs !== NOT_YET && t.committedMs !== NOT_YET) {
      this.child(parent, 'raft.commit', t.proposedMs, t.committedMs, { 'raftlock.partition': t.partition, 'raftlock.raft.batch_entries': t.batchEntries });
    }
    if (t.persistStartMs !== NOT_YET && t.persistEndMs !== NOT_YET) this.child(parent, 'wal.fsync', t.persistStartMs, t.persistEndMs);
    if (t.applyStartMs !== NOT_YET && t.applyEndMs !== NOT_YET) this.child(parent, 'apply', t.applyStartMs, t.applyEndMs);
    if (t.replyReadyMs !== NOT_YET) this.child(parent, 'reply.write', t.replyReadyMs, endMs);
    if (errorReply !== undefined) t.span.setStatus({ code: SpanStatusCode.ERROR, message: errorReply });
    t.span.end(hrTime(endMs));
  }

  private child(parent: ReturnType<typeof context.active>, name: string, startMs: number, endMs: number, attributes?: Attributes): void {
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
