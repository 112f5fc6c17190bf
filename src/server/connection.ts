import type { Socket } from 'node:net';
// The module's binding: the global `performance` is a getter on every access, a cost on each command.
import { performance } from 'node:perf_hooks';
import { RequestDecoder, ProtocolError } from '../../resp/decoder.js';
import { ReplyWriter } from '../../resp/encoder.js';
import { BLOCKING, Completion, type ClientState, type CommandContext, type CommandSpec, type Pending, type ServerInfo } from '../commands/spec.js';
import { dispatch, pipelinable, type DispatchOutcome } from '../commands/dispatch.js';
import type { CommandStats, Refusal } from '../stats/command-stats.js';
import type { Logger } from './log.js';
import { activeTrace, type CommandTrace, type Tracing } from '../trace/trace.js';

/**
 * The replies of a run of commands, in order; it waits (pending) for the last of them when that
 * answers later. A connection keeps finished slots for reuse (with their writer and callbacks):
 * a pipelined client makes one per command that waits for the log.
 */
class Slot {
  pending = false;
  /** The sampled commands whose replies the slot holds; null: none. */
  traces: CommandTrace[] | null = null;
  /** The socket read (counted) that the command making the slot pending, its last, came in. */
  read = 0;
  // The pending command, while pending.
  spec: CommandSpec | null = null;
  argv: string[] = NO_ARGV;
  /** The writer's error count before the command. */
  errors = 0;
  startedMs = 0;
  dispatchedMs = 0;
  blocking = false;
  /** The pending command settled; bound once, the slot being reused. */
  readonly done = (): void => this.owner.slotDone(this);
  readonly failed = (error: unknown): void => this.owner.slotFailed(error);

  constructor(readonly ctx: CommandContext, private readonly owner: Connection) {}
}

const NO_ARGV: string[] = [];
/** Finished slots a connection keeps for reuse. */
const FREE_SLOTS_MAX = 64;

/** Finished replies held back for a pending command of the same read are written anyway beyond these. */
const HELD_REPLY_BYTES_MAX = 64 * 1024;
const HELD_SLOTS_MAX = 1024;

/** Marks the replies of a slot's traced commands ready now, those not ready before. */
function replyReady(traces: readonly CommandTrace[]): void {
  const nowMs = performance.now();
  for (const trace of traces) if (trace.replyReadyMs < 0) trace.replyReadyMs = nowMs;
}

/** Reading pauses while this much output waits for a slow reader. */
const OUTPUT_PAUSE_BYTES = 1024 * 1024;

export interface ConnectionHost {
  readonly info: ServerInfo;
  readonly log: Logger;
  /** Command tracing (--trace); null when off. */
  readonly tracing: Tracing | null;
  removeConnection(connection: Connection): void;
}

/**
 * One client connection. Commands run in arrival order; all replies produced
 * by one read are written with a single socket write. A blocked client
 * (KLOCK ... WAIT) runs nothing more until its reply is written, like Redis;
 * its later commands stay in the decoder's buffer, under the query-buffer limit.
 */
export class Connection implements ClientState {
  name = '';
  libName = '';
  libVer = '';
  proto: 2 | 3 = 2;
  authenticated: boolean;
  db = 0;
  lastCommand = 'NULL';
  closeAfterReply = false;
  blocked = false;
  lastActiveMs: number;
  readonly addr: string;
  readonly laddr: string;
  readonly createdAtMs: number;
  readonly onClose = new Set<() => void>();
  private readonly decoder: RequestDecoder;
  /**
   * Reply slots in command order; the last one takes the replies of commands run now. traces:
   * the sampled commands whose replies the slot holds (null: none).
   */
  private readonly slots: Slot[];
  /** Finished slots for reuse. */
  private readonly free: Slot[] = [];
  private current: CommandContext;
  /** Commands whose reply waits (writes in the log, a blocked KLOCK ... WAIT). */
  private inflight = 0;
  /** A command read but held back until the client's pending writes finish. */
  private parked: string[] | null = null;
  private runScheduled = false;
  /** Counts reads from the socket: the commands run between two reads came together (a pipeline). */
  private reads = 0;
  private closed = false;
  private paused = false;
  /** What dispatch reports of each command, reused for every one. */
  private readonly outcome: DispatchOutcome = { spec: null, refused: null };
  /** The statistics of the last command run: clients mostly repeat one command. */
  private lastStats: CommandStats | undefined;

  constructor(
    readonly id: number,
    private readonly socket: Socket,
    private readonly host: ConnectionHost,
  ) {
    const config = host.info.config;
    this.authenticated = config.requirepass === undefined;
    this.addr = `${socket.remoteAddress}:${socket.remotePort}`;
    this.laddr = `${socket.localAddress}:${socket.localPort}`;
    this.createdAtMs = host.info.wallClockMs();
    this.lastActiveMs = host.info.clockMs();
    this.decoder = new RequestDecoder({ maxBulkBytes: config.maxBulkBytes, maxArgs: config.maxArgs });
    const first = this.openSlot(0);
    this.current = first.ctx;
    this.slots = [first];
    socket.setNoDelay(true);
    if (config.timeoutSeconds > 0) socket.setTimeout(config.timeoutSeconds * 1000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('timeout', () => this.onIdle());
    socket.on('error', (error) => host.log.debug('client socket error', { client: this.id, error: error.message }));
    socket.on('close', () => this.onSocketClose());
  }

  bufferSizes(): { query: number; output: number } {
    return { query: this.decoder.bufferedBytes, output: this.socket.writableLength };
  }

  /** Closes the connection at once (server shutdown, limits). */
  close(reason?: string): void {
    if (this.closed) return;
    this.closed = true;
    if (reason !== undefined) this.host.log.warn('closing client', { client: this.id, addr: this.addr, reason });
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.host.info.stats.netInputBytes += chunk.length;
    this.host.info.stats.readsProcessed += 1;
    this.reads += 1;
    this.decoder.push(chunk);
    if (this.decoder.bufferedBytes > this.host.info.config.queryBufferBytesMax) {
      this.host.info.stats.queryBufferLimitDisconnections += 1;
      return this.close('query buffer limit reached');
    }
    this.run();
  }

  /**
   * Runs buffered commands until input runs out, the client blocks, or output
   * backs up. A write that waits for the log does not stop the loop: later
   * writes pipeline behind it (the log keeps their order) and their replies
   * go to later slots, flushed in order. Any other command waits until the
   * client's writes are done, so a client always reads its own writes.
   */
  private run(): void {
    const stats = this.host.info.stats;
    // One clock read per command: each command's time runs from the end of
    // the previous one (so it includes decoding it) to its reply being ready.
    let startedMs = performance.now();
    // The server's clockMs() is this clock in whole ms: no second read.
    this.lastActiveMs = Math.floor(startedMs);
    while (!this.blocked && !this.closed && !this.closeAfterReply) {
      if (this.socket.writableLength + this.current.reply.length > OUTPUT_PAUSE_BYTES) {
        this.pauseForOutput();
        break;
      }
      let argv = this.parked;
      if (argv === null) {
        this.decoder.authRequired = !this.authenticated;
        const next = this.decoder.next();
        if (next === null) break;
        if (next instanceof ProtocolError) {
          this.protocolError(next);
          break;
        }
        stats.commandsProcessed += 1;
        argv = next;
      }
      if (this.inflight > 0 && !pipelinable(argv)) {
        this.parked = argv;
        break;
      }
      this.parked = null;
      const reply = this.current.reply;
      const errors = reply.errors;
      const tracing = this.host.tracing;
      let trace: CommandTrace | null = null;
      if (tracing !== null && tracing.sample()) activeTrace.current = trace = tracing.begin(argv, startedMs, this);
      const pending = dispatch(this.current, argv, this.outcome);
      const doneMs = performance.now();
      if (trace !== null) this.traced(trace, pending === undefined ? doneMs : -1);
      if (pending !== undefined) this.startAsync(pending, argv, errors, startedMs, doneMs);
      else this.commandDone(this.outcome.spec, this.outcome.refused, argv, reply.errors - errors, doneMs - startedMs);
      startedMs = doneMs;
    }
    this.flush();
  }

  /**
   * The current slot's reply becomes the pending command's; later replies go
   * to a new slot. `errors`: the slot writer's error count before the command.
   */
  private startAsync(pending: Pending, argv: string[], errors: number, startedMs: number, dispatchedMs: number): void {
    const slot = this.slots[this.slots.length - 1]!;
    slot.pending = true;
    this.inflight += 1;
    slot.spec = this.outcome.spec;
    slot.argv = argv;
    slot.errors = errors;
    slot.startedMs = startedMs;
    slot.dispatchedMs = dispatchedMs;
    const blocking = (pending as { [BLOCKING]?: boolean })[BLOCKING] === true;
    slot.blocking = blocking;
    slot.read = this.reads;
    if (blocking) {
      this.releaseBeforeBlocking(slot);
      this.blocked = true;
      if (this.host.info.config.timeoutSeconds > 0) this.socket.setTimeout(0);
    }
    const next = this.openSlot(0);
    this.current = next.ctx;
    this.slots.push(next);
    if (pending instanceof Completion) pending.onComplete(slot.done);
    else pending.then(slot.done, slot.failed);
  }

  /** A slot's pending command settled: its reply is in the slot. */
  slotDone(slot: Slot): void {
    if (slot.traces !== null) replyReady(slot.traces);
    const blocking = slot.blocking;
    // A command that blocked in a wait queue is timed until it blocked: as in Redis, time spent waiting is not its own.
    this.commandDone(slot.spec, null, slot.argv, slot.ctx.reply.errors - slot.errors, (blocking ? slot.dispatchedMs : performance.now()) - slot.startedMs);
    slot.pending = false;
    slot.argv = NO_ARGV;
    this.inflight -= 1;
    if (blocking) {
      this.blocked = false;
      if (this.host.info.config.timeoutSeconds > 0) this.socket.setTimeout(this.host.info.config.timeoutSeconds * 1000);
    }
    this.scheduleRun();
  }

  slotFailed(error: unknown): void {
    this.host.log.error('command failed', { client: this.id, error: String(error) });
    this.close();
  }

  /** A slot taking the replies of the commands run from now on: a reused one if there is. */
  private openSlot(read: number): Slot {
    const slot = this.free.pop() ?? new Slot({ reply: new ReplyWriter(this.proto), client: this, server: this.host.info }, this);
    slot.ctx.reply.proto = this.proto;
    slot.ctx.reply.errors = 0;
    slot.read = read;
    return slot;
  }

  /** A slot whose replies were written. */
  private recycle(slot: Slot): void {
    slot.traces = null;
    slot.spec = null;
    slot.blocking = false;
    if (this.free.length < FREE_SLOTS_MAX) this.free.push(slot);
  }

  /**
   * The replies already in the slot of a command that blocks leave now, not when it unblocks, as
   * Redis writes them before a client blocks: they move to a finished slot before it.
   */
  private releaseBeforeBlocking(slot: Slot): void {
    if (slot.ctx.reply.length === 0) return;
    const ready = this.openSlot(slot.read);
    ready.ctx.reply.raw(slot.ctx.reply.take());
    if (slot.traces !== null) {
      // Traced commands answered already go with their replies; the blocked one (not ready) stays.
      ready.traces = slot.traces.filter((trace) => trace.replyReadyMs >= 0);
      slot.traces = slot.traces.filter((trace) => trace.replyReadyMs < 0);
      if (ready.traces.length === 0) ready.traces = null;
      if (slot.traces.length === 0) slot.traces = null;
    }
    this.slots.splice(this.slots.length - 1, 0, ready);
  }

  /**
   * Counts a command whose reply is ready: a refusal (always answered at
   * once) against its reason and command; a run against its command's calls,
   * time, failures (`errors` error replies written) and latency histogram,
   * and the slow log if it took long enough.
   */
  private commandDone(spec: CommandSpec | null, refused: Refusal | null, argv: string[], errors: number, durationMs: number): void {
    const info = this.host.info;
    if (errors > 0) info.stats.totalErrorReplies += errors;
    // dispatch names the spec of every command it runs.
    if (refused !== null || spec === null) return info.commandStats.refused(spec, refused ?? 'unknown_command');
    let stats = this.lastStats;
    if (stats?.spec !== spec) stats = this.lastStats = info.commandStats.of(spec);
    stats?.ran(durationMs, errors > 0);
    const durationUs = durationMs * 1000;
    if (info.slowlog.logs(durationUs)) {
      info.slowlog.push(spec.name, argv, durationUs, this.addr, this.name, info.wallClockMs());
    }
  }

  /**
   * Resumes after replies completed. Deferred to after the microtask queue
   * drains, so that every reply completed by one batch of applied log entries
   * leaves in a single socket write.
   */
  private scheduleRun(): void {
    if (this.runScheduled) return;
    this.runScheduled = true;
    process.nextTick(() => {
      this.runScheduled = false;
      if (this.closed) return;
      this.run();
    });
  }

  /**
   * A sampled command was dispatched: its reply goes to the current slot (the one that becomes
   * pending if it waits). readyMs: when its reply was ready, -1 if it is not yet.
   */
  private traced(trace: CommandTrace, readyMs: number): void {
    activeTrace.current = null;
    trace.replyReadyMs = readyMs;
    const slot = this.slots[this.slots.length - 1]!;
    (slot.traces ??= []).push(trace);
  }

  /**
   * Writes every finished slot's replies, in order, with one socket write. Finished replies wait
   * while a command read together with them (one pipeline) is still pending, so that a pipeline
   * whose commands finish at different times (forwarded to different leaders, or committed in
   * different batches) is answered with one write rather than one per wave: its client waits for
   * the last reply anyway. They do not wait for a blocked command, nor beyond HELD_REPLY_BYTES_MAX.
   */
  private flush(): void {
    if (this.closed) return;
    if (this.holdsForPipeline()) return;
    let out = '';
    let traces: CommandTrace[] | null = null;
    while (!this.slots[0]!.pending) {
      const slot = this.slots[0]!;
      out += slot.ctx.reply.take();
      if (slot.traces !== null) {
        traces = traces === null ? slot.traces : traces.concat(slot.traces);
        slot.traces = null;
      }
      if (this.slots.length === 1) break;
      this.recycle(this.slots.shift()!);
    }
    if (out.length > 0) {
      this.host.info.stats.netOutputBytes += out.length;
      this.host.info.stats.writesProcessed += 1;
      this.socket.write(out, 'latin1');
      if (traces !== null) this.host.tracing?.finishAll(traces, performance.now());
      if (this.socket.writableLength > this.host.info.config.outputBufferBytesMax) {
        this.host.info.stats.outputBufferLimitDisconnections += 1;
        return this.close('output buffer limit reached');
      }
    }
    if (this.closeAfterReply && this.inflight === 0) {
      this.closed = true;
      this.socket.end();
    }
  }

  /**
   * Whether the finished replies at the head wait for a pending command of the same read. Never
   * while the client is blocked: its blocking command is its last pending one.
   */
  private holdsForPipeline(): boolean {
    if (this.blocked) return false;
    const slots = this.slots;
    let held = 0;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      if (slot.pending) return i > 0 && slot.read === slots[i - 1]!.read && held <= HELD_REPLY_BYTES_MAX && i <= HELD_SLOTS_MAX;
      held += slot.ctx.reply.length;
    }
    return false;
  }

  private protocolError(error: ProtocolError): void {
    this.host.info.stats.protocolErrors += 1;
    this.host.info.stats.totalErrorReplies += 1;
    this.host.log.info('closing client', { client: this.id, addr: this.addr, reason: `protocol error: ${error.message}` });
    this.current.reply.error(`ERR Protocol error: ${error.message}`);
    this.closeAfterReply = true;
  }

  /** Stops reading while the client does not read its replies (backpressure, not buffering). */
  private pauseForOutput(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
    this.socket.once('drain', () => {
      this.paused = false;
      if (this.closed) return;
      this.socket.resume();
      this.run();
    });
  }

  private onIdle(): void {
    if (this.blocked) return;
    this.host.log.debug('closing idle client', { client: this.id, addr: this.addr });
    this.close();
  }

  private onSocketClose(): void {
    this.closed = true;
    for (const cleanup of this.onClose) cleanup();
    this.onClose.clear();
    this.host.removeConnection(this);
  }
}
