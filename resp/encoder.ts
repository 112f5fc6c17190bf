/**
 * RESP2/RESP3 reply encoder. Replies accumulate in one binary string (one
 * char per byte) that the connection sends with socket.write(out, 'latin1'):
 * string concatenation is the cheapest way V8 has to build output, and one
 * write per batch of replies keeps syscalls down.
 *
 * Payloads passed in (bulk, verbatim, simple, error) must already be binary
 * strings; use fromUtf8() for JS text.
 */

const NEWLINES = /[\r\n]/g;

/** Error and status lines cannot hold CR or LF; Redis maps them to spaces too. */
function oneLine(s: string): string {
  return s.indexOf('\r') < 0 && s.indexOf('\n') < 0 ? s : s.replace(NEWLINES, ' ');
}

export class ReplyWriter {
  proto: 2 | 3;
  /**
   * Error replies written so far, nested ones included: a command's reply
   * holds an error when this grew while it was written (how Redis tells
   * failed calls). Cheaper than looking at the output, which is a rope.
   */
  errors = 0;
  private out = '';

  constructor(proto: 2 | 3 = 2) {
    this.proto = proto;
  }

  /** Bytes accumulated so far. */
  get length(): number {
    return this.out.length;
  }

  /** Returns the accumulated bytes and starts over. */
  take(): string {
    const out = this.out;
    this.out = '';
    return out;
  }

  /**
   * Appends bytes that are already RESP-encoded: one whole reply (another
   * node's), counted in `errors` when it is an error.
   */
  raw(bytes: string): void {
    if (bytes.charCodeAt(0) === 45) this.errors += 1;
    this.out += bytes;
  }

  simple(s: string): void {
    this.out += '+' + oneLine(s) + '\r\n';
  }

  /** `s` carries its own prefix: "ERR ...", "WRONGTYPE ...". */
  error(s: string): void {
    this.errors += 1;
    this.out += '-' + oneLine(s) + '\r\n';
  }

  integer(n: number | bigint): void {
    this.out += ':' + n + '\r\n';
  }

  bulk(s: string): void {
    this.out += '$' + s.length + '\r\n' + s + '\r\n';
  }

  bulkOrNull(s: string | null | undefined): void {
    if (s === null || s === undefined) this.nullBulk();
    else this.bulk(s);
  }

  nullBulk(): void {
    this.out += this.proto === 3 ? '_\r\n' : '$-1\r\n';
  }

  nullArray(): void {
    this.out += this.proto === 3 ? '_\r\n' : '*-1\r\n';
  }

  array(n: number): void {
    this.out += '*' + n + '\r\n';
  }

  /** A map of n pairs; RESP2 sees a flat array of 2n items. */
  map(n: number): void {
    this.out += this.proto === 3 ? '%' + n + '\r\n' : '*' + 2 * n + '\r\n';
  }

  set(n: number): void {
    this.out += (this.proto === 3 ? '~' : '*') + n + '\r\n';
  }

  push(n: number): void {
    this.out += (this.proto === 3 ? '>' : '*') + n + '\r\n';
  }

  /** RESP3 double; RESP2 clients get the same text as a bulk string, as from Redis. */
  double(x: number): void {
    const text = formatDouble(x);
    if (this.proto === 3) this.out += ',' + text + '\r\n';
    else this.bulk(text);
  }

  boolean(b: boolean): void {
    if (this.proto === 3) this.out += b ? '#t\r\n' : '#f\r\n';
    else this.out += b ? ':1\r\n' : ':0\r\n';
  }

  /** `format` is three chars, e.g. "txt" or "mkd". RESP2 gets a plain bulk string. */
  verbatim(format: string, s: string): void {
    if (this.proto === 3) this.out += '=' + (s.length + 4) + '\r\n' + format + ':' + s + '\r\n';
    else this.bulk(s);
  }

  bigNumber(n: bigint): void {
    if (this.proto === 3) this.out += '(' + n + '\r\n';
    else this.bulk(String(n));
  }
}

/** 2^62: Redis prints integral doubles up to LLONG_MAX/2 in full, as integers. */
const INTEGRAL_MAX = 2 ** 62;

/**
 * Formats a double like Redis 7.2's d2string(): "nan", "inf", "-inf", "-0",
 * integral values in full up to 2^62, otherwise the shortest round-trip digits
 * laid out as Redis's fpconv does (plain up to a point, then "1.5e+300",
 * "1e-7": no exponent padding).
 */
export function formatDouble(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  if (Number.isInteger(x) && Math.abs(x) <= INTEGRAL_MAX) {
    // Above 2^53 String() would print rounded digits padded with zeros.
    return Math.abs(x) <= Number.MAX_SAFE_INTEGER ? String(x) : BigInt(x).toString();
  }
  const [mantissa = '', exponent = '0'] = x.toExponential().split('e');
  const digits = mantissa.replace('-', '').replace('.', '');
  const sign = x < 0 ? '-' : '';
  return sign + layOutDigits(digits, Number(exponent) - (digits.length - 1));
}

/** fpconv's emit_digits(): the value is digits × 10^k. */
function layOutDigits(digits: string, k: number): string {
  const n = digits.length;
  const exp = Math.abs(k + n - 1);
  if (k >= 0 && exp < n + 7) return digits + '0'.repeat(k);
  if (k < 0 && (k > -7 || exp < 4)) {
    const point = n + k;
    if (point <= 0) return '0.' + '0'.repeat(-point) + digits;
    return digits.slice(0, point) + '.' + digits.slice(point);
  }
  const fraction = n > 1 ? '.' + digits.slice(1) : '';
  return digits[0] + fraction + 'e' + (k + n - 1 < 0 ? '-' : '+') + exp;
}

const NON_ASCII = /[\u0080-\uffff]/;

/** JS text → binary string of its UTF-8 bytes (what goes on the wire). */
export function fromUtf8(s: string): string {
  return !NON_ASCII.test(s) ? s : Buffer.from(s, 'utf8').latin1Slice();
}

/** Binary string of UTF-8 bytes → JS text (inverse of fromUtf8). */
export function toUtf8(bin: string): string {
  return !NON_ASCII.test(bin) ? bin : Buffer.from(bin, 'latin1').toString('utf8');
}
