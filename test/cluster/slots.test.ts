import t from 'tap';
import { createRequire } from 'node:module';
import { SLOT_COUNT, crc16, keySlot, partitionOfKey, partitionOfSlot, slotRange } from '../../src/cluster/slots.js';
import { mulberry32 } from '../helpers/random.js';

// ioredis routes by this package; raftlock must agree with it on every key.
const clusterKeySlot = createRequire(import.meta.url)('cluster-key-slot') as (key: string | Buffer) => number;

t.test('CRC16 and slots match Redis Cluster', async (t) => {
  t.equal(crc16('123456789'), 0x31c3, 'the CRC16-XMODEM check value');
  t.equal(keySlot('somekey'), 11058, 'CLUSTER KEYSLOT somekey (Redis docs)');
  t.equal(keySlot('foo{hash_tag}'), 2515, 'only the hash tag is hashed');
  t.equal(keySlot('bar{hash_tag}'), 2515);
  t.equal(keySlot('{user1000}.following'), keySlot('user1000'));
  t.equal(keySlot('foo{}{bar}'), crc16('foo{}{bar}') % SLOT_COUNT, 'an empty first tag hashes the whole key');
  t.not(keySlot('foo{}{bar}'), keySlot('bar'));
  t.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'), 'the tag runs from the first { to the next }');
  t.equal(keySlot('foo{bar}{zap}'), keySlot('bar'), 'the first tag wins');
  t.equal(keySlot(''), 0);
});

t.test('slots agree with the cluster-key-slot package ioredis uses, on random binary keys', async (t) => {
  const rng = mulberry32(11);
  let mismatches = 0;
  let compared = 0;
  for (let i = 0; i < 20_000; i++) {
    const length = Math.floor(rng() * 24);
    let key = '';
    // Bias towards braces so hash tags of every shape appear.
    for (let j = 0; j < length; j++) key += rng() < 0.15 ? (rng() < 0.5 ? '{' : '}') : String.fromCharCode(Math.floor(rng() * 256));
    // With an empty first tag ('{}') Redis hashes the whole key; cluster-key-slot keeps scanning for a
    // later '}' instead. Redis is the reference (checked above), so those keys are left out here.
    const open = key.indexOf('{');
    if (open >= 0 && key[open + 1] === '}') continue;
    compared += 1;
    const expected = clusterKeySlot(Buffer.from(key, 'latin1'));
    if (keySlot(key) !== expected && mismatches++ < 5) t.fail(`key ${JSON.stringify(key)}: ${keySlot(key)}, cluster-key-slot says ${expected}`);
  }
  t.equal(mismatches, 0, `${compared} keys`);
  t.ok(compared > 15_000);
});

t.test('partitions own contiguous slot ranges that cover every slot once', async (t) => {
  for (const partitions of [1, 2, 3, 5, 7, 8, 13, 100, SLOT_COUNT]) {
    let next = 0;
    for (let p = 0; p < partitions; p++) {
      const { first, last } = slotRange(p, partitions);
      if (first !== next || last < first) t.fail(`P=${partitions}: partition ${p} owns [${first}, ${last}], expected to start at ${next}`);
      if (partitionOfSlot(first, partitions) !== p || partitionOfSlot(last, partitions) !== p) t.fail(`P=${partitions}: slots of ${p} map elsewhere`);
      next = last + 1;
    }
    t.equal(next, SLOT_COUNT, `P=${partitions}: every slot owned once`);
  }
  t.same(slotRange(0, 8), { first: 0, last: 2047 });
  t.same(slotRange(7, 8), { first: 14336, last: 16383 });
  t.equal(partitionOfKey('{user1000}.a', 8), partitionOfKey('{user1000}.b', 8), 'a hash tag keeps keys in one partition');
  t.throws(() => slotRange(0, 0), /partitions must be an integer from 1 to 16384/);
  t.throws(() => slotRange(8, 8), /partition 8 is not one of 0..7/);
  t.throws(() => partitionOfSlot(SLOT_COUNT, 8), /slot 16384 is not one of 0..16383/);
});
