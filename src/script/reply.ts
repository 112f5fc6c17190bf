/**
 * Redis replies as scripts see and produce them, independent of the wire
 * protocol: what redis.call returns to Lua, and what a script's return value
 * converts to. Strings are binary strings (one char per byte), like every
 * key and value in raftlock.
 */
export type ScriptReply =
  /** An integer reply. */
  | number
  /** A bulk string. */
  | string
  /** A nil bulk (or nil array). */
  | null
  | ScriptReply[]
  | StatusReply
  | ErrorReply
  /** A double (a script returning {double = n}); RESP2 clients get it as a bulk string. */
  | { readonly double: number };

export interface StatusReply {
  readonly ok: string;
}

/** `err` carries its code: "ERR syntax error", "NOSCRIPT ...". */
export interface ErrorReply {
  readonly err: string;
}

export const OK: StatusReply = Object.freeze({ ok: 'OK' });

export function isError(reply: ScriptReply): reply is ErrorReply {
  return typeof reply === 'object' && reply !== null && !Array.isArray(reply) && 'err' in reply;
}

export function errorReply(text: string): ErrorReply {
  return { err: text };
}

const INT64_MIN = -9223372036854775808;
const INT64_BOUND = 9223372036854775808;

/**
 * A Lua number as Redis turns it into an integer reply: truncated toward
 * zero, like C's (long long) cast. Values outside int64 (and NaN) give
 * int64's minimum, as that cast does on x86-64.
 */
export function luaNumberToInteger(n: number): number {
  if (!(n > -INT64_BOUND && n < INT64_BOUND)) return INT64_MIN;
  const t = Math.trunc(n);
  return t === 0 ? 0 : t;
}

/**
 * A Lua number passed as an argument to redis.call, formatted as Redis
 * formats it: integral values within int64 as plain integers (5100.0 →
 * "5100"), anything else with C's %.17g.
 */
export function formatNumberArg(n: number): string {
  if (Number.isInteger(n) && n > -INT64_BOUND && n < INT64_BOUND) {
    return Math.abs(n) <= Number.MAX_SAFE_INTEGER ? String(n === 0 ? 0 : n) : BigInt(n).toString();
  }
  return formatG17(n);
}

/** C's printf("%.17g", x). */
export function formatG17(x: number): string {
  // Lua's 0/0 is a NaN with the sign bit set on x86-64, which glibc prints so.
  if (Number.isNaN(x)) return '-nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const [mantissa = '', exponentText = '0'] = x.toExponential(16).split('e');
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 17) {
    const digits = stripZeros(mantissa);
    const sign = exponent < 0 ? '-' : '+';
    const abs = Math.abs(exponent);
    return `${digits}e${sign}${abs < 10 ? '0' : ''}${abs}`;
  }
  return stripZeros(x.toFixed(Math.max(0, 16 - exponent)));
}

function stripZeros(text: string): string {
  if (!text.includes('.')) return text;
  return text.replace(/0+$/, '').replace(/\.$/, '');
}
