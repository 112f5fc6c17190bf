/**
 * CRC32C (Castagnoli), the checksum of every WAL record and snapshot file.
 *
 * Castagnoli rather than the zlib CRC32 because its error-detection properties
 * are better for the record sizes a log writes, and because it is what iSCSI,
 * ext4 and most storage engines use, so test vectors are easy to cross-check.
 * Slicing-by-8: eight 256-entry tables let the loop consume 8 bytes per step,
 * which keeps checksumming well below the cost of the fdatasync it protects.
 */

/** The reversed (LSB-first) form of the Castagnoli polynomial 0x1EDC6F41. */
const POLYNOMIAL_REVERSED = 0x82f63b78;

const TABLES: Int32Array[] = buildTables();

function buildTables(): Int32Array[] {
  const tables = Array.from({ length: 8 }, () => new Int32Array(256));
  const base = tables[0]!;
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLYNOMIAL_REVERSED : c >>> 1;
    base[n] = c;
  }
  // Table k answers "the CRC contribution of byte n followed by k zero bytes".
  for (let n = 0; n < 256; n++) {
    let c = base[n]!;
    for (let k = 1; k < 8; k++) {
      c = base[c & 0xff]! ^ (c >>> 8);
      tables[k]![n] = c;
    }
  }
  return tables;
}

/**
 * CRC32C of `data[start, end)`. Pass a previous result as `crc` to continue a
 * checksum over a second buffer: `crc32c(b, crc32c(a))` equals the CRC of a+b.
 */
export function crc32c(data: Uint8Array, crc = 0, start = 0, end = data.length): number {
  if (!(start >= 0 && start <= end && end <= data.length)) {
    throw new RangeError(`crc32c range [${start}, ${end}) is outside a buffer of ${data.length} bytes`);
  }
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [Int32Array, Int32Array, Int32Array, Int32Array,
    Int32Array, Int32Array, Int32Array, Int32Array];
  let c = ~crc;
  let i = start;
  for (const last8 = end - 8; i <= last8; i += 8) {
    const lo = c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    c = t7[lo & 0xff]! ^ t6[(lo >>> 8) & 0xff]! ^ t5[(lo >>> 16) & 0xff]! ^ t4[lo >>> 24]!
      ^ t3[data[i + 4]!]! ^ t2[data[i + 5]!]! ^ t1[data[i + 6]!]! ^ t0[data[i + 7]!]!;
  }
  for (; i < end; i++) c = t0[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
