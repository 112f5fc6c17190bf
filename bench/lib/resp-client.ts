// A lean RESP2 client for the cluster benchmarks: one TCP connection, requests answered in order,
// a callback per request (no promise per request on the hot path of the load generators).
import net from 'node:net';

export type Reply = string | number | null | ReplyError | Reply[];

/** An error reply (`-TRYAGAIN ...`); a value, not a thrown error, so callers can count and retry. */
export class ReplyError {
  constructor(readonly message: string) {}
  /** The first word: TRYAGAIN, ERR, ... */
  get code(): string {
    return this.message.split(' ', 1)[0]!;
  }
}

/** Unanswered requests on one connection at most; a caller past it gets an error, never a growing queue. */
const PENDING_MAX = 100_000;
const CRLF = 0x0d;

/** Encodes a command as a RESP multibulk. */
export function encodeCommand(args: readonly (string | number)[]): string {
  let out = `*${args.length}\r\n`;
  for (const arg of args) {
    const s = String(arg);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

/** Parses one reply at buf[at]: [reply, next offset], or undefined if the buffer ends first. */
export function parseReply(buf: Buffer, at: number): [Reply, number] | undefined {
  const lineEnd = buf.indexOf(CRLF, at);
  if (lineEnd < 0 || lineEnd + 1 >= buf.length) return undefined;
  const type = buf[at];
  const line = buf.latin1Slice(at + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case 0x2b: return [line, next]; // +
    case 0x2d: return [new ReplyError(line), next]; // -
    case 0x3a: return [Number(line), next]; // :
    case 0x5f: return [null, next]; // _ (RESP3 null)
    case 0x24: { // $
      const length = Number(line);
      if (length < 0) return [null, next];
      if (next + length + 2 > buf.length) return undefined;
      return [buf.toString('utf8', next, next + length), next + length + 2];
    }
    case 0x2a: { // *
      const count = Number(line);
      if (count < 0) return [null, next];
      const items: Reply[] = [];
      let offset = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, offset);
        if (item === undefined) return undefined;
        items.push(item[0]);
        offset = item[1];
      }
      return [items, offset];
    }
    default:
      throw new Error(`unexpected RESP type byte ${type} in reply`);
  }
}

type Callback = (reply: Reply | Error) => void;

/** One connection; replies arrive in request order. Connection errors fail every pending request. */
export class RespClient {
  private pending: Callback[] = [];
  private head = 0;
  private rest: Buffer | null = null;
  private failure: Error | null = null;
  private outbox = '';
  private flushQueued = false;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static connect(port: number, host = '127.0.0.1', timeoutMs = 5000): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`cannot connect to ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new RespClient(socket));
      });
      const onError = (error: Error): void => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once('error', onError);
    });
  }

  get inFlight(): number {
    return this.pending.length - this.head;
  }

  get broken(): boolean {
    return this.failure !== null;
  }

  /**
   * Queues a command; commands queued in the same tick go out in one write (so a burst pipelines).
   * done gets the reply, or an Error if the connection fails first.
   */
  send(args: readonly (string | number)[], done: Callback): void {
    if (this.failure !== null) {
      done(this.failure);
      return;
    }
    if (this.inFlight >= PENDING_MAX) {
      done(new Error(`more than ${PENDING_MAX} requests waiting for replies on one connection`));
      return;
    }
    this.pending.push(done);
    this.outbox += encodeCommand(args);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  call(...args: (string | number)[]): Promise<Reply> {
    return new Promise((resolve, reject) => this.send(args, (reply) => (reply instanceof Error ? reject(reply) : resolve(reply))));
  }

  close(): void {
    this.socket.destroy();
  }

  private flush(): void {
    this.flushQueued = false;
    if (this.outbox.length === 0 || this.failure !== null) return;
    this.socket.write(this.outbox);
    this.outbox = '';
  }

  private receive(chunk: Buffer): void {
    let buf = this.rest === null ? chunk : Buffer.concat([this.rest, chunk]);
    let at = 0;
    for (;;) {
      const parsed = at < buf.length ? parseReply(buf, at) : undefined;
      if (parsed === undefined) break;
      at = parsed[1];
      const done = this.pending[this.head++];
      if (done === undefined) {
        this.fail(new Error('reply without a request'));
        return;
      }
      done(parsed[0]);
    }
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    buf = buf.subarray(at);
    this.rest = buf.length > 0 ? Buffer.from(buf) : null;
  }

  private fail(error: Error): void {
    if (this.failure !== null) return;
    this.failure = error;
    this.socket.destroy();
    const waiting = this.pending.slice(this.head);
    this.pending = [];
    this.head = 0;
    for (const done of waiting) done(error);
  }
}

/** One command on a fresh connection, for control-plane queries (INFO, CLUSTER SLOTS). */
export async function callOnce(port: number, args: (string | number)[], timeoutMs = 5000): Promise<Reply> {
  const client = await RespClient.connect(port, '127.0.0.1', timeoutMs);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      client.call(...args),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no reply to ${args.join(' ')} within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    client.close();
  }
}
