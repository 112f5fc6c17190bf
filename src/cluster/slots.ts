/**
 * Keys to slots to partitions. A key's slot is CRC16(key) mod 16384, as in
 * Redis Cluster, hashing only the hash tag when the key has one (the bytes
 * between the first '{' and the next '}', if not empty), so that keys sharing
 * a tag share a slot. Slots map to partitions in contiguous ranges.
 */

export const SLOT_COUNT = 16384;

/** CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the one Redis Cluster uses. */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** CRC16 of the binary string s[start, end) (one byte per char, as the RESP decoder produces keys). */
export function crc16(s: string, start = 0, end = s.length): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ s.charCodeAt(i)) & 0xff]!;
  return crc;
}

/** The key's slot, honouring {hash tags}. */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return crc16(key, open + 1, close) & (SLOT_COUNT - 1);
  }
  return crc16(key) & (SLOT_COUNT - 1);
}

function checkPartitions(partitions: number): void {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > SLOT_COUNT) {
    throw new RangeError(`partitions must be an integer from 1 to ${SLOT_COUNT}, got ${partitions}`);
  }
}

/** The slots [first, last] (inclusive, as CLUSTER SLOTS reports them) that partition p of `partitions` owns. */
export function slotRange(p: number, partitions: number): { first: number; last: number } {
  checkPartitions(partitions);
  if (!Number.isInteger(p) || p < 0 || p >= partitions) throw new RangeError(`partition ${p} is not one of 0..${partitions - 1}`);
  return { first: Math.ceil((p * SLOT_COUNT) / partitions), last: Math.ceil(((p + 1) * SLOT_COUNT) / partitions) - 1 };
}

/** The partition owning a slot: the inverse of slotRange. */
export function partitionOfSlot(slot: number, partitions: number): number {
  checkPartitions(partitions);
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) throw new RangeError(`slot ${slot} is not one of 0..${SLOT_COUNT - 1}`);
  return Math.floor((slot * partitions) / SLOT_COUNT);
}

export function partitionOfKey(key: string, partitions: number): number {
  return partitionOfSlot(keySlot(key), partitions);
}
