import http from 'node:http';
import { boundPort, closeHttp, listenHttp } from './http-listener.js';
import { timingSafeEqual } from 'node:crypto';
import type { ClientState } from '../commands/spec.js';
import { fromUtf8, toUtf8 } from '../../resp/encoder.js';
import { TTL_MS_MAX } from '../commands/lock-args.js';
import { parseRespReply, type RespValue } from './resp-reply.js';
import { SocketlessClient } from './socketless-client.js';
import type { Logger } from './log.js';

/**
 * The REST API (DESIGN.md §6): each call becomes the RESP command a client
 * would send (KLOCK, KEXTEND, KUNLOCK, KGETLOCK) and runs through the same
 * dispatch as the RESP server, so a keyed command still goes to its
 * partition's leader. No lock logic lives here: only JSON in, argv, reply,
 * JSON out.
 */

/** Kahuna's response type codes. */
export const RestType = {
  Locked: 0,
  Busy: 1,
  Extended: 2,
  Unlocked: 3,
  Got: 4,
  Errored: 99,
  InvalidInput: 100,
  MustRetry: 101,
  LockDoesNotExist: 102,
  InvalidOwner: 103,
} as const;

/** Request bodies larger than this are refused with 413. */
export const HTTP_BODY_BYTES_MAX = 64 * 1024;
/** A request's headers, and the whole request, must arrive within these. */
const HTTP_HEADERS_TIMEOUT_MS = 10_000;
const HTTP_REQUEST_TIMEOUT_MS = 30_000;

/** What the HTTP front end needs from the server it belongs to. */
export interface RestHost {
  /**
   * Runs argv (binary strings) as a client of this node; resolves with the RESP2 reply.
   * traceparent: the request's W3C trace context header, if it sent one.
   */
  run(argv: string[], client: ClientState, traceparent?: string): string | Promise<string>;
  /** The partitions for which this node sees no reachable leader. */
  partitionsWithoutLeader(): number[];
  readonly partitionCount: number;
  /** AUTH password of the RESP server; when set, REST wants `Authorization: Bearer <password>`. */
  readonly requirepass: string | undefined;
  /** Most simultaneous HTTP connections; further ones are dropped. */
  readonly connectionsMax: number;
}

interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers?: Record<string, string>;
}

type Route = (body: Record<string, unknown>) => string[] | string;
type Answer = (reply: RespValue) => Reply;

interface Endpoint {
  readonly argv: Route;
  readonly answer: Answer;
}

const ENDPOINTS: ReadonlyMap<string, Endpoint> = new Map<string, Endpoint>([
  ['/v1/locks/try-lock', {
    argv: (b) => leaseArgv('KLOCK', b),
    answer: (r) => (r === null ? ok({ type: RestType.Busy }) : ok({ type: RestType.Locked, fencingToken: token(r) })),
  }],
  ['/v1/locks/try-extend', {
    argv: (b) => leaseArgv('KEXTEND', b),
    answer: (r) => (r === null ? ok({ type: RestType.LockDoesNotExist }) : ok({ type: RestType.Extended, fencingToken: token(r) })),
  }],
  ['/v1/locks/try-unlock', {
    argv: (b) => withFields(b, ['resource', 'owner'], (f) => ['KUNLOCK', f.resource!, f.owner!, f.durability]),
    answer: (r) => ok({ type: r === 1 || r === 1n ? RestType.Unlocked : RestType.LockDoesNotExist }),
  }],
  ['/v1/locks/get-info', {
    argv: (b) => withFields(b, ['resource'], (f) => ['KGETLOCK', f.resource!, f.durability]),
    answer: (r) => {
      if (r === null) return ok({ type: RestType.LockDoesNotExist });
      if (!Array.isArray(r) || r.length !== 3) throw new Error('unexpected KGETLOCK reply');
      return ok({ type: RestType.Got, owner: toUtf8(String(r[0])), fencingToken: token(r[1]!), remainingMs: token(r[2]!) });
    },
  }],
]);

function ok(body: Record<string, unknown>): Reply {
  return { status: 200, body };
}

function invalid(message: string, status = 400): Reply {
  return { status, body: { type: RestType.InvalidInput, message } };
}

function token(value: RespValue): number | bigint {
  if (typeof value === 'number' || typeof value === 'bigint') return value;
  throw new Error('expected an integer reply');
}

interface Fields {
  resource?: string;
  owner?: string;
  durability: string;
}

/** Checks the string fields `required` and durability, then builds argv; a string is the 400 message. */
function withFields(body: Record<string, unknown>, required: readonly ('resource' | 'owner')[], build: (f: Fields) => string[]): string[] | string {
  const fields: Fields = { durability: 'PERSISTENT' };
  for (const name of required) {
    const value = body[name];
    if (typeof value !== 'string' || value.length === 0) return `'${name}' must be a non-empty string`;
    fields[name] = fromUtf8(value);
  }
  const durability = body['durability'] ?? 1;
  if (durability !== 0 && durability !== 1) return `'durability' must be 0 (ephemeral) or 1 (persistent)`;
  fields.durability = durability === 0 ? 'EPHEMERAL' : 'PERSISTENT';
  return build(fields);
}

function leaseArgv(command: string, body: Record<string, unknown>): string[] | string {
  const expiresMs = body['expiresMs'];
  if (typeof expiresMs !== 'number' || !Number.isInteger(expiresMs) || expiresMs < 1 || expiresMs > TTL_MS_MAX) {
    return `'expiresMs' must be an integer from 1 to ${TTL_MS_MAX}`;
  }
  return withFields(body, ['resource', 'owner'], (f) => [command, f.resource!, f.owner!, String(expiresMs), f.durability]);
}

/**
 * An error reply: -TRYAGAIN is MustRetry (101) with HTTP 503 and
 * Retry-After, so generic HTTP clients and proxies treat it as the
 * transient unavailability it is; any other error is Errored (99), 503 for
 * -CLUSTERDOWN, else 500.
 */
function errorAnswer(text: string): Reply {
  if (text.startsWith('TRYAGAIN')) return { status: 503, body: { type: RestType.MustRetry, message: text }, headers: { 'retry-after': '1' } };
  return { status: text.startsWith('CLUSTERDOWN') ? 503 : 500, body: { type: RestType.Errored, message: text } };
}

/** The REST listener. */
export class RestServer {
  private readonly server: http.Server;

  constructor(private readonly host: RestHost, private readonly log: Logger) {
    this.server = http.createServer({ headersTimeout: HTTP_HEADERS_TIMEOUT_MS, requestTimeout: HTTP_REQUEST_TIMEOUT_MS }, (req, res) => {
      this.handle(req, res).catch((error: Error) => {
        this.log.error('REST request failed', { url: req.url, error: error.message });
        send(res, { status: 500, body: { type: RestType.Errored, message: 'internal error' } });
      });
    });
    this.server.maxConnections = host.connectionsMax;
  }

  /** Listens on port (0: any free port) at bind; resolves with the bound port. */
  listen(port: number, bind: string): Promise<number> {
    return listenHttp(this.server, port, bind, this.log, 'REST');
  }

  get port(): number {
    return boundPort(this.server);
  }

  /** Stops accepting and drops every connection, idle or not. */
  close(): Promise<void> {
    return closeHttp(this.server);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/health') return send(res, req.method === 'GET' || req.method === 'HEAD' ? this.health() : notAllowed('GET'));
    const endpoint = ENDPOINTS.get(path);
    if (endpoint === undefined) return send(res, invalid(`no route for ${req.method ?? ''} ${path}`, 404));
    if (req.method !== 'POST') return send(res, notAllowed('POST'));
    if (!this.authorized(req)) return send(res, { status: 401, body: { type: RestType.InvalidInput, message: 'send Authorization: Bearer <requirepass>' } });
    const body = await readJson(req);
    if (!(body instanceof ReplyBox)) return send(res, await this.call(endpoint, body, req, res));
    // The rest of a body too large is never read: close the connection after the answer.
    if (body.status === 413) res.shouldKeepAlive = false;
    return send(res, body);
  }

  private async call(endpoint: Endpoint, body: Record<string, unknown>, req: http.IncomingMessage, res: http.ServerResponse): Promise<Reply> {
    const argv = endpoint.argv(body);
    if (typeof argv === 'string') return invalid(argv);
    const client = new SocketlessClient(2, 'http', false, 'rest');
    // A caller that hangs up cancels a command still forwarded to a leader.
    res.once('close', () => client.close());
    const traceparent = req.headers['traceparent'];
    const reply = parseRespReply(await this.host.run(argv, client, typeof traceparent === 'string' ? traceparent : undefined));
    if (reply !== null && typeof reply === 'object' && 'error' in reply) return errorAnswer(reply.error);
    return endpoint.answer(reply);
  }

  private health(): Reply {
    const leaderless = this.host.partitionsWithoutLeader();
    const body = { status: leaderless.length === 0 ? 'ok' : 'degraded', partitions: this.host.partitionCount, partitionsWithoutLeader: leaderless };
    return { status: leaderless.length === 0 ? 200 : 503, body };
  }

  private authorized(req: http.IncomingMessage): boolean {
    const password = this.host.requirepass;
    if (password === undefined) return true;
    const given = Buffer.from(/^Bearer (.*)$/.exec(req.headers.authorization ?? '')?.[1] ?? '');
    const wanted = Buffer.from(password);
    return given.length === wanted.length && timingSafeEqual(given, wanted);
  }
}

function notAllowed(allow: string): Reply {
  return { status: 405, body: { type: RestType.InvalidInput, message: `use ${allow}` }, headers: { allow } };
}

/** Marks a Reply made while reading the body, so it cannot be mistaken for a JSON body. */
class ReplyBox implements Reply {
  constructor(readonly status: number, readonly body: Record<string, unknown>) {}
}

/** The request's JSON object, or the 400/413 reply to send instead. */
async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown> | ReplyBox> {
  const tooLarge = new ReplyBox(413, { type: RestType.InvalidInput, message: `request body larger than ${HTTP_BODY_BYTES_MAX} bytes` });
  if (Number(req.headers['content-length'] ?? 0) > HTTP_BODY_BYTES_MAX) return tooLarge;
  const text = await new Promise<string | null>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const collect = (chunk: Buffer): void => {
      bytes += chunk.length;
      if (bytes <= HTTP_BODY_BYTES_MAX) return void chunks.push(chunk);
      // Discard the rest rather than destroy the socket, so the caller reads the 413.
      req.off('data', collect);
      req.resume();
      resolve(null);
    };
    req.on('data', collect);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
  if (text === null) return tooLarge;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return new ReplyBox(400, { type: RestType.InvalidInput, message: `invalid JSON: ${(error as Error).message}` });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return new ReplyBox(400, { type: RestType.InvalidInput, message: 'the body must be a JSON object' });
  }
  return value as Record<string, unknown>;
}

/** JSON with bigints as exact integer literals (fencing tokens are 64-bit). */
function toJson(body: Record<string, unknown>): string {
  const marked = JSON.stringify(body, (_key, value: unknown) => (typeof value === 'bigint' ? `\u0000${value}\u0000` : value));
  return marked.replace(/"\\u0000(-?\d+)\\u0000"/g, '$1');
}

function send(res: http.ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) return;
  const text = toJson(reply.body);
  res.writeHead(reply.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...reply.headers });
  res.end(text);
}
