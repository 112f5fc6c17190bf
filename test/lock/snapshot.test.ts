import t from 'tap';
import { LockStateMachine } from '../../src/lock/machine.js';
import { applyCommand, type LockOp } from '../../src/lock/commands.js';
import { LockSnapshotDecoder, LockSnapshotEncoder, encodeLockSnapshot, restoreLockSnapshot } from '../../src/lock/snapshot.js';
import { mulberry32 } from '../helpers/random.js';

/** A random PERSISTENT write over a small keyspace, so that locks collide, expire and are released. */
function randomOp(rng: () => number): LockOp {
  const resource = `r${Math.floor(rng() * 40)}`;
  const owner = `o${Math.floor(rng() * 3)}`;
  const ttlMs = 1 + Math.floor(rng() * 300);
  const pick = rng();
  if (pick < 0.35) return { kind: 'lock', durability: 'persistent', resource, owner, ttlMs };
  if (pick < 0.55) return { kind: 'unlock', durability: 'persistent', resource, owner };
  if (pick < 0.7) return { kind: 'extend', durability: 'persistent', resource, owner, ttlMs };
  if (pick < 0.8) return { kind: 'set', key: resource, value: owner, mode: rng() < 0.5 ? 'nx' : 'always', expiry: rng() < 0.2 ? { kind: 'none' } : { kind: 'ttl', ttlMs } };
  if (pick < 0.87) return { kind: 'del', keys: [resource, `r${Math.floor(rng() * 40)}`] };
  if (pick < 0.94) return { kind: 'expire', key: resource, ttlMs: ttlMs - 20, condition: 'always' };
  if (pick < 0.97) return { kind: 'persist', key: resource };
  return { kind: 'tick' };
}

t.test('a machine restored from a snapshot behaves exactly like the original from then on', async (t) => {
  for (let seed = 1; seed <= 30; seed++) {
    const rng = mulberry32(seed);
    // A small tombstone limit makes eviction (and so the token floor) part of the state.
    const limits = { tombstonesMax: 8 };
    const original = new LockStateMachine(limits);
    let now = 1000;
    for (let i = 0; i < 400; i++) {
      now += Math.floor(rng() * 5);
      applyCommand(original, { logTimeMs: now, op: randomOp(rng) });
    }
    const bytes = encodeLockSnapshot(original, now);
    const restored = new LockStateMachine(limits);
    // Some state to be replaced, and EPHEMERAL locks that a snapshot leaves alone.
    applyCommand(restored, { logTimeMs: 5, op: { kind: 'lock', durability: 'persistent', resource: 'gone', owner: 'x', ttlMs: 1e9 } });
    restored.lock('ephemeral', 'e', 'me', 1e9, 5);
    t.same(restoreLockSnapshot(restored, bytes), { logTimeMs: now });
    t.same(restored.info('ephemeral', 'e', now)?.owner, 'me', 'EPHEMERAL locks are not part of the snapshot');
    t.same(encodeLockSnapshot(restored, now), bytes, `seed ${seed}: the restored table encodes identically`);
    const results: [unknown, unknown][] = [];
    for (let i = 0; i < 400; i++) {
      now += Math.floor(rng() * 5);
      const op = randomOp(rng);
      results.push([applyCommand(original, { logTimeMs: now, op }), applyCommand(restored, { logTimeMs: now, op })]);
    }
    t.same(results.map((r) => r[1]), results.map((r) => r[0]), `seed ${seed}: same replies to the next 400 writes`);
    t.same(encodeLockSnapshot(restored, now), encodeLockSnapshot(original, now), `seed ${seed}: same state after them`);
    t.equal(restored.dbsize(), original.dbsize());
  }
});

t.test('tokens stay above every forgotten tombstone after a restore', async (t) => {
  const machine = new LockStateMachine({ tombstonesMax: 2 });
  for (let i = 0; i < 5; i++) {
    for (let round = 0; round < 3; round++) {
      machine.lock('persistent', `r${i}`, 'a', 100, 0);
      machine.unlock('persistent', `r${i}`, 'a', 0);
    }
  }
  const restored = new LockStateMachine({ tombstonesMax: 2 });
  restoreLockSnapshot(restored, encodeLockSnapshot(machine, 0));
  t.ok(restored.persistent.tombstoneCount <= 2);
  // Every resource was granted tokens 0..2; a forgotten one restarts above them all.
  for (let i = 0; i < 5; i++) t.ok(restored.lock('persistent', `r${i}`, 'b', 100, 1)! >= 3n, `r${i}`);
});

t.test('binary resource names and owners survive', async (t) => {
  const machine = new LockStateMachine();
  const name = 'k\u0000\u00ff\r\n' + 'x'.repeat(40);
  machine.lock('persistent', name, '\u0080owner\u00fe'.repeat(5), 1000, 0);
  const restored = new LockStateMachine();
  restoreLockSnapshot(restored, encodeLockSnapshot(machine, 0));
  t.equal(restored.info('persistent', name, 1)?.owner, '\u0080owner\u00fe'.repeat(5));
});

t.test('damaged snapshot bytes are refused with a clear error', async (t) => {
  const machine = new LockStateMachine();
  machine.lock('persistent', 'r', 'a', 1000, 0);
  const bytes = encodeLockSnapshot(machine, 7);
  t.throws(() => restoreLockSnapshot(new LockStateMachine(), bytes.subarray(0, bytes.length - 3)), /lock snapshot: truncated/);
  t.throws(() => restoreLockSnapshot(new LockStateMachine(), new Uint8Array([...bytes, 0])), /lock snapshot: 1 trailing bytes/);
  const badMagic = bytes.slice();
  badMagic[0] = 0;
  t.throws(() => restoreLockSnapshot(new LockStateMachine(), badMagic), /lock snapshot: bad magic/);
  const badVersion = bytes.slice();
  badVersion[4] = 9;
  t.throws(() => restoreLockSnapshot(new LockStateMachine(), badVersion), /unknown format version 9/);
});

t.test('a released resource remembers who released it, through a snapshot; one whose lease ran out does not', async (t) => {
  const machine = new LockStateMachine();
  machine.lock('persistent', 'released', 'alice', 1000, 0);
  machine.unlock('persistent', 'released', 'alice', 10);
  machine.set('deleted', 'bob', { mode: 'nx', expiry: { kind: 'ttl', ttlMs: 1000 } }, 0);
  machine.del(['deleted'], 10);
  machine.lock('persistent', 'expired', 'carol', 100, 0);
  machine.lock('persistent', 'held', 'dave', 1000, 0);
  machine.lock('persistent', 'retaken', 'erin', 1000, 0);
  machine.unlock('persistent', 'retaken', 'erin', 10);
  machine.lock('persistent', 'retaken', 'frank', 1000, 20);
  const expect = (m: LockStateMachine, label: string): void => {
    t.equal(m.releasedBy('released', 200), 'alice', `${label}: KUNLOCK`);
    t.equal(m.releasedBy('deleted', 200), 'bob', `${label}: DEL`);
    t.equal(m.releasedBy('expired', 200), undefined, `${label}: a lease that ran out is no release`);
    t.equal(m.releasedBy('held', 200), undefined, `${label}: held`);
    t.equal(m.releasedBy('retaken', 200), 'erin', `${label}: taken by another owner since: still erin's release`);
    t.equal(m.info('persistent', 'retaken', 200)?.owner, 'frank', `${label}: held by frank`);
    t.equal(m.releasedBy('never', 200), undefined, `${label}: no record`);
  };
  expect(machine, 'original');
  machine.expireDue(200, 100);
  t.equal(machine.releasedBy('expired', 200), undefined, 'reclaimed by expiry: still no release');
  const restored = new LockStateMachine();
  restoreLockSnapshot(restored, encodeLockSnapshot(machine, 200));
  expect(restored, 'restored');
  restored.lock('persistent', 'released', 'zoe', 100, 300);
  t.equal(restored.releasedBy('released', 350), 'alice', 'held by another owner: the last release is still alice\'s');
  restored.expireDue(500, 100);
  t.equal(restored.releasedBy('released', 500), undefined, 'once a lease ran out there, forgotten');
});

t.test('a version 2 snapshot (no releasers) is still read', async (t) => {
  const machine = new LockStateMachine();
  machine.lock('persistent', 'held', 'a', 1000, 0);
  machine.lock('persistent', 'free', 'b', 1000, 0);
  machine.unlock('persistent', 'free', 'b', 1);
  const bytes = encodeLockSnapshot(machine, 5);
  t.equal(bytes[4], 3, 'written as version 3');
  // Version 2 wrote a tombstone as tag 0: rewrite the releaser record ('free', tag 2 + "b") that way.
  const v2 = Buffer.from(bytes);
  v2[4] = 2;
  const tag = v2.lastIndexOf(2); // bit 1 alone: no holder, a releaser
  const downgraded = Buffer.concat([v2.subarray(0, tag), Buffer.from([0]), v2.subarray(tag + 1 + 4 + 1)]);
  const restored = new LockStateMachine();
  restoreLockSnapshot(restored, downgraded);
  t.equal(restored.info('persistent', 'held', 2)?.owner, 'a');
  t.equal(restored.releasedBy('free', 2), undefined);
  t.equal(restored.lock('persistent', 'free', 'c', 1000, 2), 1n, 'the tombstone token is kept');
});

t.test('a snapshot encoded in slices is the state when its encoder was made, whatever changes while it is written', async (t) => {
  for (let seed = 1; seed <= 10; seed++) {
    const rng = mulberry32(seed);
    const machine = new LockStateMachine({ tombstonesMax: 8 });
    let now = 1000;
    for (let i = 0; i < 300; i++) {
      now += Math.floor(rng() * 5);
      applyCommand(machine, { logTimeMs: now, op: randomOp(rng) });
    }
    const expected = Buffer.from(encodeLockSnapshot(machine, now)).toString('hex');
    const encoder = new LockSnapshotEncoder(machine, now);
    const captured = now;
    let slices = 1;
    while (!encoder.step(3)) {
      slices++;
      // Writes, releases, expiries and evictions between slices reuse slots and grow the table.
      for (let i = 0; i < 5; i++) {
        now += Math.floor(rng() * 5);
        applyCommand(machine, { logTimeMs: now, op: randomOp(rng) });
      }
      applyCommand(machine, { logTimeMs: now, op: { kind: 'lock', durability: 'persistent', resource: `new${slices}`, owner: 'x', ttlMs: 50 } });
    }
    t.ok(slices > 5, `seed ${seed}: ${slices} slices`);
    t.equal(Buffer.from(encoder.bytes()).toString('hex'), expected, `seed ${seed}: the bytes of an encoding made at once, then`);
    t.equal(encoder.step(3), true, 'a finished encoder stays finished');
    const restored = new LockStateMachine({ tombstonesMax: 8 });
    t.same(restoreLockSnapshot(restored, encoder.bytes()), { logTimeMs: captured });
  }
  const unfinished = new LockSnapshotEncoder(new LockStateMachine(), 0);
  t.throws(() => unfinished.bytes(), /not fully encoded/);
});

t.test('tokens up to 2^53 - 1 and a floor one past it round-trip; a larger token in a snapshot is refused', async (t) => {
  const machine = new LockStateMachine({ tombstonesMax: 0 });
  // Every token handed out: the floor is one past the largest.
  machine.persistent.grant('r', 'a', 1000);
  const bytes = encodeLockSnapshot(machine, 0);
  // Layout: header (21 bytes), floor (u64) at 21, expired (f64), count (u32), then 'r' with its u64 token after its name.
  const view = Buffer.from(bytes);
  view.writeUInt32BE(0x1fffff, 21);
  view.writeUInt32BE(0xffffffff, 25);
  const tokenAt = 21 + 8 + 8 + 4 + 4 + 1;
  view.writeUInt32BE(0x1fffff, tokenAt);
  view.writeUInt32BE(0xfffffffe, tokenAt + 4);
  const restored = new LockStateMachine({ tombstonesMax: 0 });
  restoreLockSnapshot(restored, view);
  t.equal(restored.info('persistent', 'r', 1)?.token, 2n ** 53n - 2n, 'the largest tokens are read exactly');
  t.same(Buffer.from(encodeLockSnapshot(restored, 0)).toString('hex'), view.toString('hex'), 'and written back exactly');
  view.writeUInt32BE(0x200000, 21);
  view.writeUInt32BE(0, 25);
  restoreLockSnapshot(new LockStateMachine({ tombstonesMax: 0 }), view);
  t.pass('a floor of 2^53 (every token used) is read');
  view.writeUInt32BE(1, 25);
  t.throws(() => restoreLockSnapshot(new LockStateMachine(), view), /the token floor is 9007199254740993, past 9007199254740992/);
  view.writeUInt32BE(0, 25);
  view.writeUInt32BE(0x200000, tokenAt);
  view.writeUInt32BE(0, tokenAt + 4);
  t.throws(() => restoreLockSnapshot(new LockStateMachine(), view), /the token of 'r' is 9007199254740992, past 9007199254740991/);
});

t.test('a snapshot read in slices installs the same state as one read at once, and only when complete', async (t) => {
  for (let seed = 1; seed <= 10; seed++) {
    const rng = mulberry32(seed);
    const original = new LockStateMachine({ tombstonesMax: 8 });
    let now = 1000;
    for (let i = 0; i < 300; i++) {
      now += Math.floor(rng() * 5);
      applyCommand(original, { logTimeMs: now, op: randomOp(rng) });
    }
    const bytes = encodeLockSnapshot(original, now);
    const atOnce = new LockStateMachine({ tombstonesMax: 8 });
    restoreLockSnapshot(atOnce, bytes);
    const sliced = new LockStateMachine({ tombstonesMax: 8 });
    sliced.lock('persistent', 'before', 'x', 1e9, 0);
    const decoder = new LockSnapshotDecoder(bytes);
    let slices = 1;
    while (!decoder.step(2)) {
      slices++;
      t.equal(sliced.info('persistent', 'before', 1)?.owner, 'x', 'the table is untouched until the install');
    }
    t.same(decoder.installInto(sliced), { logTimeMs: now });
    t.ok(slices > 3, `seed ${seed}: ${slices} slices`);
    t.equal(Buffer.from(encodeLockSnapshot(sliced, now)).toString('hex'), Buffer.from(bytes).toString('hex'), `seed ${seed}: the snapshot's state`);
    // Same behaviour from then on, expiries included.
    for (let i = 0; i < 200; i++) {
      now += Math.floor(rng() * 5);
      const op = randomOp(rng);
      t.same(applyCommand(sliced, { logTimeMs: now, op }), applyCommand(atOnce, { logTimeMs: now, op }));
    }
  }
  const unfinished = new LockSnapshotDecoder(encodeLockSnapshot(new LockStateMachine(), 0));
  t.throws(() => unfinished.installInto(new LockStateMachine()), /not fully read/);
});

t.test('a damaged snapshot leaves the machine as it was', async (t) => {
  const source = new LockStateMachine();
  for (let i = 0; i < 20; i++) source.lock('persistent', `r${i}`, 'a', 1000, 0);
  const bytes = encodeLockSnapshot(source, 0);
  const machine = new LockStateMachine();
  machine.lock('persistent', 'mine', 'me', 1000, 0);
  const before = Buffer.from(encodeLockSnapshot(machine, 0)).toString('hex');
  t.throws(() => restoreLockSnapshot(machine, new Uint8Array([...bytes, 0])), /trailing bytes/);
  t.throws(() => restoreLockSnapshot(machine, bytes.subarray(0, bytes.length - 10)), /truncated/);
  const duplicate = new LockStateMachine();
  duplicate.lock('persistent', 'rr', 'a', 1000, 0);
  duplicate.lock('persistent', 'rs', 'a', 1000, 0);
  const twice = Buffer.from(encodeLockSnapshot(duplicate, 0));
  twice[twice.indexOf('rs') + 1] = 'r'.charCodeAt(0);
  t.throws(() => restoreLockSnapshot(machine, twice), /a resource appears twice/);
  t.equal(Buffer.from(encodeLockSnapshot(machine, 0)).toString('hex'), before);
});
