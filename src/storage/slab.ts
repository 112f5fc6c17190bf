/**
 * Small byte arrays carved out of shared 64 KiB chunks. Every Uint8Array
 * with its own ArrayBuffer costs several hundred bytes of bookkeeping beyond
 * its data; log entries are small (tens of bytes) and there can be millions
 * of them in memory, so they share chunks instead. A chunk is freed once no
 * array in it is referenced; entries are released in log order, so chunks
 * are released with them.
 */
const CHUNK_BYTES = 64 * 1024;
/** Larger arrays get their own buffer: they would waste much of a chunk. */
const SHARED_MAX_BYTES = 1024;

let chunk = new Uint8Array(CHUNK_BYTES);
let used = 0;

/** A copy of bytes[start, end), usually a view into a shared chunk. */
export function slabCopy(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  const n = end - start;
  if (n > SHARED_MAX_BYTES) {
    // Not bytes.slice(): on a Buffer that is a view, which would pin the whole source.
    const own = new Uint8Array(n);
    own.set(bytes.subarray(start, end));
    return own;
  }
  if (used + n > CHUNK_BYTES) {
    chunk = new Uint8Array(CHUNK_BYTES);
    used = 0;
  }
  const out = chunk.subarray(used, used + n);
  out.set(bytes.subarray(start, end));
  // Keep views 8-byte aligned so that DataView reads stay on aligned addresses.
  used += (n + 7) & ~7;
  return out;
}
