import net from 'node:net';
import { parseReply, type Reply } from './resp-reply.js';

/** A raw TCP client for byte-exact protocol tests. */
export class RawClient {
  private buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.notify();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', () => {
        this.ended = true;
        this.notify();
        resolve();
      });
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host }, () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', reject);
    });
  }

  send(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Sends a command as a RESP multibulk. */
  command(...args: (string | number)[]): void {
    let out = `*${args.length}\r\n`;
    for (const arg of args) {
      const s = String(arg);
      out += `$${Buffer.byteLength(s, 'latin1')}\r\n${s}\r\n`;
    }
    this.send(out);
  }

  async call(...args: (string | number)[]): Promise<Reply> {
    this.command(...args);
    return this.reply();
  }

  /** The next reply; rejects if the connection closes first or after timeoutMs. */
  async reply(timeoutMs = 5000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const parsed = this.buffer.length > 0 ? parseReply(this.buffer) : undefined;
      if (parsed !== undefined) {
        this.buffer = this.buffer.subarray(parsed[1]);
        return parsed[0];
      }
      if (this.ended) throw new Error(`connection closed; unparsed bytes: ${JSON.stringify(this.buffer.latin1Slice(0, 200))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a reply');
      await this.wait(left);
    }
  }

  /** All bytes received so far, as text (for raw assertions). */
  takeRaw(): string {
    const text = this.buffer.latin1Slice(0, this.buffer.length);
    this.buffer = Buffer.alloc(0);
    return text;
  }

  /** Resolves once at least n bytes arrived or the connection ended. */
  async waitBytes(n: number, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffer.length < n && !this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.buffer.length})`);
      await this.wait(left);
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
