/**
 * A small RESP2/RESP3 reply parser for tests: simple strings become
 * { ok: text }, errors { err: text }, bulks and verbatim strings plain strings
 * (latin1 binary strings), integers numbers or bigints, maps plain objects,
 * sets arrays, nulls null.
 */
export type Reply =
  | string | number | bigint | boolean | null
  | { ok: string } | { err: string } | { push: Reply[] }
  | Reply[] | { [key: string]: Reply };

/** Parses one reply starting at offset; undefined when incomplete. */
export function parseReply(buf: Buffer, offset = 0): [Reply, number] | undefined {
  const eol = buf.indexOf('\r\n', offset);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[offset]!);
  const line = buf.latin1Slice(offset + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return [{ ok: line }, next];
    case '-': return [{ err: line }, next];
    case ':': {
      const n = BigInt(line);
      return [n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n, next];
    }
    case '(': return [BigInt(line), next];
    case ',': return [line === 'inf' ? Infinity : line === '-inf' ? -Infinity : Number(line), next];
    case '#': return [line === 't', next];
    case '_': return [null, next];
    case '$':
    case '=':
    case '!': {
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return undefined;
      const body = buf.latin1Slice(next, next + len);
      const value = type === '=' ? body.slice(4) : body;
      return [type === '!' ? { err: value } : value, next + len + 2];
    }
    case '*':
    case '~':
    case '>':
    case '%': {
      const count = Number(line);
      if (count < 0) return [null, next];
      const items: Reply[] = [];
      let at = next;
      const total = type === '%' ? count * 2 : count;
      for (let i = 0; i < total; i++) {
        const parsed = parseReply(buf, at);
        if (parsed === undefined) return undefined;
        items.push(parsed[0]);
        at = parsed[1];
      }
      if (type === '>') return [{ push: items }, at];
      if (type !== '%') return [items, at];
      const map: { [key: string]: Reply } = {};
      for (let i = 0; i < items.length; i += 2) map[String(items[i])] = items[i + 1]!;
      return [map, at];
    }
    default:
      throw new Error(`unexpected reply type byte ${JSON.stringify(type)} at ${offset}`);
  }
}
