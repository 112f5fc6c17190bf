/**
 * A RESP2 reply as a value, for front ends that run commands through
 * dispatch and need the answer as data (the REST API). Bulk and simple
 * strings stay binary strings (one char per byte); integers are numbers
 * when safe, else bigints; nil bulks and arrays are null; errors are
 * { error: text }.
 */
export type RespValue = string | number | bigint | null | { readonly error: string } | RespValue[];

/** Parses exactly one complete RESP2 reply; throws on anything else. */
export function parseRespReply(reply: string): RespValue {
  const [value, end] = parseAt(reply, 0);
  if (end !== reply.length) throw new Error('trailing bytes after a RESP reply');
  return value;
}

function parseAt(text: string, at: number): [RespValue, number] {
  const eol = text.indexOf('\r\n', at);
  if (eol < 0) throw new Error('incomplete RESP reply');
  const line = text.slice(at + 1, eol);
  const next = eol + 2;
  switch (text[at]) {
    case '+': return [line, next];
    case '-': return [{ error: line }, next];
    case ':': {
      const n = BigInt(line);
      return [n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n, next];
    }
    case '$': {
      const length = Number(line);
      if (length < 0) return [null, next];
      if (text.length < next + length + 2) throw new Error('incomplete RESP bulk string');
      return [text.slice(next, next + length), next + length + 2];
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return [null, next];
      const items: RespValue[] = [];
      let cursor = next;
      for (let i = 0; i < count; i++) {
        const [item, end] = parseAt(text, cursor);
        items.push(item);
        cursor = end;
      }
      return [items, cursor];
    }
    default: throw new Error(`not a RESP2 reply type: '${text[at] ?? ''}'`);
  }
}
