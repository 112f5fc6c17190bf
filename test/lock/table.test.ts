import t from 'tap';
import { LockTable, NO_EXPIRY, NO_SLOT, TOKEN_MAX } from '../../src/lock/table.js';
import { DeadlineHeap } from '../../src/lock/heap.js';
import { Reader, Writer } from '../../src/lock/codec.js';
import { mulberry32 } from '../helpers/random.js';

/** A table restored from hand-written snapshot records (resource, token, owner or null for a tombstone). */
function tableFrom(floor: bigint, records: [string, bigint, string | null][]): LockTable {
  const w = new Writer().u64(floor).f64(0).u32(records.length);
  for (const [resource, token, owner] of records) {
    w.str(resource).u64(token).f64(NO_EXPIRY);
    if (owner === null) w.u8(0);
    else w.u8(1).str(owner);
  }
  const table = new LockTable();
  table.readSnapshot(new Reader(w.finish(), 'lock snapshot'));
  return table;
}

t.test('the table grows past its initial capacity and keeps every record', async (t) => {
  const table = new LockTable();
  const initial = table.slotCapacity;
  const n = 10 * initial + 7;
  for (let i = 0; i < n; i++) table.grant(`r${i}`, `o${i % 13}`, i % 3 === 0 ? NO_EXPIRY : 1000 + i);
  t.ok(table.slotCapacity >= n, `capacity ${table.slotCapacity} holds ${n}`);
  t.ok(table.slotCapacity < 2 * n, 'and grows by a fraction, not without bound');
  let wrong = 0;
  for (let i = 0; i < n; i++) {
    const holder = table.peek(`r${i}`, 0);
    const expiresAtMs = i % 3 === 0 ? NO_EXPIRY : 1000 + i;
    if (holder?.owner !== `o${i % 13}` || holder.token !== 0n || holder.expiresAtMs !== expiresAtMs) wrong += 1;
  }
  t.equal(wrong, 0, 'every record reads back');
  t.equal(table.expiringCount, n - Math.ceil(n / 3));
  t.equal(table.liveCount(1000 + 100), n - 100 + Math.ceil(100 / 3), 'expiry still finds the early deadlines');
});

t.test('slots of evicted tombstones are reused', async (t) => {
  const table = new LockTable({ tombstonesMax: 10 });
  const tokens: bigint[] = [];
  for (let i = 0; i < 10_000; i++) {
    const slot = table.grant(`r${i}`, 'o', NO_EXPIRY);
    tokens.push(table.tokenOf(slot));
    table.release(`r${i}`, slot);
  }
  t.ok(table.slotCapacity <= 64, `capacity stays at ${table.slotCapacity} while 10k resources come and go`);
  t.equal(table.recordCount, 10);
  // A reused slot starts clean: the new resource starts above every forgotten token, with no old expiry.
  const slot = table.grant('new', 'p', NO_EXPIRY);
  t.equal(table.ownerOf(slot), 'p');
  const forgotten = tokens.slice(0, -10).reduce((a, b) => (a > b ? a : b));
  t.ok(table.tokenOf(slot) > forgotten, `token ${table.tokenOf(slot)} is above every forgotten one (${forgotten})`);
  t.equal(table.expiresAtMsOf(slot), NO_EXPIRY);
  t.equal(table.expiringCount, 0);
});

t.test('a stale expiry entry of a resource whose slot was reused releases nothing', async (t) => {
  const table = new LockTable({ tombstonesMax: 0 });
  const a = table.grant('a', 'o', 100);
  table.release('a', a); // 'a' is forgotten at once; its heap entry (100, 'a') stays behind
  t.equal(table.recordCount, 0);
  const b = table.grant('b', 'o', 100);
  t.equal(b, a, 'b took a\'s slot');
  table.grant('a', 'o', 50);
  table.drainFreed();
  t.equal(table.expireDue(101, 1), 1);
  t.same(table.drainFreed(), ['a'], 'the earliest deadline first');
  t.equal(table.expireDue(101, 1), 1, 'the stale entry did not use up the budget');
  t.same(table.drainFreed(), ['b']);
  t.equal(table.nextExpiryMs(), Infinity);
});

t.test('fencing tokens stop at 2^53 - 1 with a clear error', async (t) => {
  const table = tableFrom(0n, [['r', BigInt(TOKEN_MAX) - 1n, null], ['held', BigInt(TOKEN_MAX), 'a']]);
  const slot = table.grant('r', 'o', NO_EXPIRY);
  t.equal(table.tokenOf(slot), BigInt(TOKEN_MAX), 'the largest token is exact');
  table.release('r', slot);
  t.throws(() => table.grant('r', 'o', NO_EXPIRY), /fencing tokens of 'r' are exhausted/);
  t.equal(table.lookup('r', 0), NO_SLOT, 'and nothing was granted');
  t.throws(() => table.replace('held', 'b', NO_EXPIRY, 0), /fencing tokens of 'held' are exhausted/);
  t.equal(table.peek('held', 0)?.owner, 'a');
  t.equal(table.replace('held', 'a', 5, 0), table.lookup('held', 0), 'the same owner keeps its token');
  t.equal(table.peek('held', 0)?.token, BigInt(TOKEN_MAX));

  const atFloor = tableFrom(BigInt(TOKEN_MAX) + 1n, []);
  t.throws(() => atFloor.grant('x', 'o', NO_EXPIRY), /exhausted/, 'a floor past the last token is refused on grant');
  t.throws(() => tableFrom(0n, [['r', BigInt(TOKEN_MAX) + 1n, null]]), /lock snapshot: the token of 'r' is 9007199254740992, past 9007199254740991/);
  t.throws(() => tableFrom(2n ** 64n - 1n, []), /lock snapshot: the token floor is 18446744073709551615, past 9007199254740992/);
});

t.test('release checks that the slot is the resource\'s and held', async (t) => {
  const table = new LockTable();
  const a = table.grant('a', 'o', NO_EXPIRY);
  const b = table.grant('b', 'o', NO_EXPIRY);
  t.throws(() => table.release('a', b), /release of a lock not held: 'a'/);
  t.throws(() => table.release('c', NO_SLOT), /not held/);
  table.release('a', a);
  t.throws(() => table.release('a', a), /not held/);
  t.throws(() => table.grant('b', 'p', NO_EXPIRY), /grant of held resource 'b'/);
});

/**
 * The table's behaviour as plainly as it can be written: records as objects,
 * expiry by sorting. The table must match it step by step.
 */
class ModelTable {
  readonly records = new Map<string, { owner: string | null; token: number; expiresAtMs: number }>();
  floor = 0;
  freed: string[] = [];

  constructor(private readonly tombstonesMax: number) {}

  lookup(resource: string, nowMs: number): { owner: string; token: number; expiresAtMs: number } | undefined {
    const record = this.records.get(resource);
    if (record === undefined || record.owner === null) return undefined;
    if (nowMs > record.expiresAtMs) {
      this.release(resource);
      return undefined;
    }
    return record as { owner: string; token: number; expiresAtMs: number };
  }

  grant(resource: string, owner: string, expiresAtMs: number): void {
    const record = this.records.get(resource);
    if (record === undefined) this.records.set(resource, { owner, token: this.floor, expiresAtMs });
    else Object.assign(record, { owner, token: Math.max(record.token + 1, this.floor), expiresAtMs });
  }

  release(resource: string): void {
    Object.assign(this.records.get(resource)!, { owner: null, expiresAtMs: NO_EXPIRY });
    this.freed.push(resource);
    if (this.tombstones() <= this.tombstonesMax) return;
    for (const [r, record] of this.records) {
      if (this.tombstones() <= Math.floor(this.tombstonesMax * 0.9)) break;
      if (record.owner !== null) continue;
      this.floor = Math.max(this.floor, record.token + 1);
      this.records.delete(r);
    }
  }

  expireDue(nowMs: number, budget: number): number {
    const due = [...this.records].filter(([, r]) => r.owner !== null && r.expiresAtMs < nowMs);
    due.sort(([ka, a], [kb, b]) => a.expiresAtMs - b.expiresAtMs || (ka < kb ? -1 : ka > kb ? 1 : 0));
    const victims = due.slice(0, budget);
    for (const [resource] of victims) this.release(resource);
    return victims.length;
  }

  tombstones(): number {
    return [...this.records.values()].filter((r) => r.owner === null).length;
  }
}

t.test('random operations: the table matches a plain model, including which locks expire in which order', async (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const rng = mulberry32(seed);
    const table = new LockTable({ tombstonesMax: 6 });
    const model = new ModelTable(6);
    let now = 0;
    const trace: string[] = [];
    for (let step = 0; step < 1500; step++) {
      now += Math.floor(rng() * 4);
      const resource = `r${Math.floor(rng() * 30)}`;
      const owner = `o${Math.floor(rng() * 3)}`;
      const expiresAtMs = rng() < 0.2 ? NO_EXPIRY : now + Math.floor(rng() * 60);
      const pick = rng();
      const slot = pick < 0.8 ? table.lookup(resource, now) : NO_SLOT;
      const held = pick < 0.8 ? model.lookup(resource, now) : undefined;
      let got: unknown;
      let want: unknown;
      if (pick < 0.35) {
        got = slot === NO_SLOT ? table.tokenOf(table.grant(resource, owner, expiresAtMs)) : table.tokenOf(slot);
        if (held === undefined) model.grant(resource, owner, expiresAtMs);
        want = BigInt(model.records.get(resource)!.token);
      } else if (pick < 0.55) {
        if (slot !== NO_SLOT && table.ownerOf(slot) === owner) table.release(resource, slot);
        if (held !== undefined && held.owner === owner) model.release(resource);
      } else if (pick < 0.7) {
        if (slot !== NO_SLOT) table.setExpiry(resource, slot, expiresAtMs);
        if (held !== undefined) held.expiresAtMs = expiresAtMs;
      } else if (pick < 0.8) {
        got = slot === NO_SLOT ? null : [table.ownerOf(slot), table.expiresAtMsOf(slot)];
        want = held === undefined ? null : [held.owner, held.expiresAtMs];
      } else {
        const budget = Math.floor(rng() * 4);
        got = table.expireDue(now, budget);
        want = model.expireDue(now, budget);
      }
      trace.push(`${step} ${pick.toFixed(2)} ${resource} ${owner}`);
      const freedGot = table.drainFreed();
      const freedWant = model.freed.splice(0);
      if (
        JSON.stringify([got, freedGot, table.recordCount, table.tombstoneCount], bigints) !==
        JSON.stringify([want, freedWant, model.records.size, model.tombstones()], bigints)
      ) {
        t.fail(`seed ${seed} step ${step}: got ${JSON.stringify([got, freedGot], bigints)}, want ${JSON.stringify([want, freedWant], bigints)}`);
        t.comment(trace.slice(-10).join('\n'));
        return;
      }
    }
    const holders = [...table.entries(now)].map(([r, h]) => [r, h.owner, Number(h.token), h.expiresAtMs]);
    const expected = [...model.records].filter(([, r]) => r.owner !== null && now <= r.expiresAtMs);
    t.same(holders, expected.map(([r, h]) => [r, h.owner, h.token, h.expiresAtMs]), `seed ${seed}: same holders, in the same order`);
  }
});

t.test('the deadline heap pops in (deadline, key) order through growth and shrinking', async (t) => {
  const rng = mulberry32(3);
  const heap = new DeadlineHeap();
  const reference: [number, string][] = [];
  const popped: string[] = [];
  const expected: string[] = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 5000; i++) {
      const entry: [number, string] = [Math.floor(rng() * 500), `k${Math.floor(rng() * 200)}`];
      heap.push(...entry);
      reference.push(entry);
    }
    reference.sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    // Pop most, so that the heap shrinks, then grow it again.
    for (const [deadline, key] of reference.splice(0, 4900)) expected.push(`${deadline} ${key}`);
    for (let i = 0; i < 4900; i++) {
      popped.push(`${heap.peekDeadline()} ${heap.peekKey()}`);
      heap.pop();
    }
    t.equal(heap.size, reference.length);
  }
  t.same(popped, expected);
  heap.clear();
  t.equal(heap.size, 0);
  t.equal(heap.peekDeadline(), Infinity);
  t.equal(heap.peekKey(), undefined);
});

function bigints(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? `${value}n` : value;
}
