import type { Socket } from 'node:net';
import { RequestDecoder, ProtocolError } from '../../resp/decoder.js';
import { ReplyWriter } from '../../resp/encoder.js';
import type { ClientState, CommandContext, ServerInfo } from '../commands/spec.js';
import { dispatch } from '../commands/dispatch.js';
import type { Logger } from './log.js';

/** Reading pauses while this much output waits for a slow reader. */
const OUTPUT_PAUSE_BYTES = 1024 * 1024;

export interface ConnectionHost {
  readonly info: ServerInfo;
  readonly log: Logger;
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
  private readonly reply = new ReplyWriter(2);
  private readonly ctx: CommandContext;
  private closed = false;
  private paused = false;

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
    this.lastActiveMs = host.info.service.now();
    this.decoder = new RequestDecoder({ maxBulkBytes: config.maxBulkBytes, maxArgs: config.maxArgs });
    this.ctx = { reply: this.reply, client: this, server: host.info };
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
    this.decoder.push(chunk);
    if (this.decoder.bufferedBytes > this.host.info.config.queryBufferBytesMax) {
      return this.close('query buffer limit reached');
    }
    this.run();
  }

  /** Runs buffered commands until input runs out, the client blocks, or output backs up. */
  private run(): void {
    const stats = this.host.info.stats;
    this.lastActiveMs = this.host.info.service.now();
    while (!this.blocked && !this.closed && !this.closeAfterReply) {
      if (this.socket.writableLength + this.reply.length > OUTPUT_PAUSE_BYTES) {
        this.pauseForOutput();
        break;
      }
      this.decoder.authRequired = !this.authenticated;
      const argv = this.decoder.next();
      if (argv === null) break;
      if (argv instanceof ProtocolError) {
        this.protocolError(argv);
        break;
      }
      stats.commandsProcessed += 1;
      const pending = dispatch(this.ctx, argv);
      if (pending !== undefined) this.block(pending);
    }
    this.flush();
  }

  private block(pending: Promise<void>): void {
    this.blocked = true;
    if (this.host.info.config.timeoutSeconds > 0) this.socket.setTimeout(0);
    pending.then(() => {
      this.blocked = false;
      if (this.closed) return;
      if (this.host.info.config.timeoutSeconds > 0) this.socket.setTimeout(this.host.info.config.timeoutSeconds * 1000);
      this.flush();
      this.run();
    }, (error: unknown) => {
      this.host.log.error('blocking command failed', { client: this.id, error: String(error) });
      this.close();
    });
  }

  private flush(): void {
    if (this.reply.length > 0 && !this.closed) {
      const out = this.reply.take();
      this.host.info.stats.netOutputBytes += out.length;
      this.socket.write(out, 'latin1');
      if (this.socket.writableLength > this.host.info.config.outputBufferBytesMax) {
        return this.close('output buffer limit reached');
      }
    }
    if (this.closeAfterReply && !this.closed) {
      this.closed = true;
      this.socket.end();
    }
  }

  private protocolError(error: ProtocolError): void {
    this.host.info.stats.protocolErrors += 1;
    this.host.log.info('protocol error from client', { client: this.id, addr: this.addr, error: error.message });
    this.reply.error(`ERR Protocol error: ${error.message}`);
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
