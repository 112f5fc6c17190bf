import t from 'tap';
import { crc32c } from '../../src/storage/crc32c.js';
import { seededRng } from './helpers.js';

/** Bit-at-a-time CRC32C: slow and obviously right, the oracle for the table-driven one. */
function crc32cBitwise(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

t.test('known CRC32C vectors (the check value and RFC 3720 iSCSI vectors)', async (t) => {
  const cases: [string, Uint8Array, number][] = [
    ['"123456789"', new TextEncoder().encode('123456789'), 0xe3069283],
    ['empty', new Uint8Array(0), 0],
    ['32 zero bytes', new Uint8Array(32), 0x8a9136aa],
    ['32 bytes of 0xff', new Uint8Array(32).fill(0xff), 0x62a8ab43],
    ['32 ascending bytes', Uint8Array.from({ length: 32 }, (_, i) => i), 0x46dd794e],
    ['32 descending bytes', Uint8Array.from({ length: 32 }, (_, i) => 31 - i), 0x113fdb5c],
  ];
  for (const [name, data, expected] of cases) t.equal(crc32c(data), expected, name);
});

t.test('matches a bitwise implementation for every length around the 8-byte stride', async (t) => {
  const rng = seededRng(1);
  for (let length = 0; length < 80; length++) {
    const data = Uint8Array.from({ length }, () => Math.floor(rng() * 256));
    t.equal(crc32c(data), crc32cBitwise(data), `length ${length}`);
  }
});

t.test('continues across buffers and honours sub-ranges', async (t) => {
  const data = new TextEncoder().encode('the quick brown fox jumps over the lazy dog');
  const whole = crc32c(data);
  for (const split of [0, 1, 7, 8, 9, 20, data.length]) {
    t.equal(crc32c(data.subarray(split), crc32c(data.subarray(0, split))), whole, `split at ${split}`);
  }
  t.equal(crc32c(data, 0, 4, 9), crc32c(data.subarray(4, 9)), 'range [4, 9)');
  t.throws(() => crc32c(data, 0, 5, 2), RangeError);
  t.throws(() => crc32c(data, 0, 0, data.length + 1), RangeError);
});
