import t from 'tap';
import { applyCommand, commandLogTime, decodeCommand, encodeCommand, type LockCommand } from '../../src/lock/commands.js';
import { LockStateMachine } from '../../src/lock/machine.js';

const samples: LockCommand[] = [
  { logTimeMs: 0, op: { kind: 'lock', durability: 'persistent', resource: 'r', owner: 'o', ttlMs: 30000 } },
  { logTimeMs: 12.5, op: { kind: 'lock', durability: 'ephemeral', resource: 'k\r\n\x00\xff', owner: '', ttlMs: 2 ** 31 - 1 } },
  { logTimeMs: 1e12, op: { kind: 'unlock', durability: 'ephemeral', resource: 'r', owner: 'o' } },
  { logTimeMs: 5, op: { kind: 'extend', durability: 'persistent', resource: 'r', owner: 'o', ttlMs: 1 } },
  { logTimeMs: 5, op: { kind: 'set', key: 'k', value: 'v', mode: 'nx', expiry: { kind: 'ttl', ttlMs: 30000 } } },
  { logTimeMs: 5, op: { kind: 'set', key: 'k', value: 'x'.repeat(100_000), mode: 'always', expiry: { kind: 'keep' } } },
  { logTimeMs: 5, op: { kind: 'set', key: '', value: 'v', mode: 'xx', expiry: { kind: 'none' } } },
  { logTimeMs: 5, op: { kind: 'del', keys: ['a', 'b', 'a'] } },
  { logTimeMs: 5, op: { kind: 'del', keys: [] } },
  { logTimeMs: 5, op: { kind: 'expire', key: 'k', ttlMs: -5000, condition: 'lt' } },
  { logTimeMs: 5, op: { kind: 'persist', key: 'k' } },
  { logTimeMs: 7, op: { kind: 'tick' } },
  {
    logTimeMs: 8,
    op: {
      kind: 'script', body: 'return redis.call("get", KEYS[1])\r\n\xff', keys: ['k', '{t}x'], args: ['', 'a\x00b'],
      wallClockMs: 1_700_000_000_123, budget: 1_000_000, partition: 3, partitions: 8,
    },
  },
  { logTimeMs: 9, op: { kind: 'script', body: '', keys: [], args: [], wallClockMs: 0, budget: 0, partition: 0, partitions: 1 } },
];

t.test('every command round-trips through its binary encoding', async (t) => {
  for (const command of samples) {
    t.same(decodeCommand(encodeCommand(command)), command, command.op.kind);
    t.equal(commandLogTime(encodeCommand(command)), command.logTimeMs, `${command.op.kind}: log time read alone`);
  }
});

t.test('corrupt encodings are refused, never applied', async (t) => {
  const good = encodeCommand(samples[0]!);
  t.throws(() => decodeCommand(good.subarray(0, good.length - 1)), /truncated/);
  t.throws(() => decodeCommand(new Uint8Array([...good, 0])), /trailing bytes/);
  t.throws(() => decodeCommand(new Uint8Array([9, ...good.subarray(1)])), /format version/);
  const badKind = good.slice();
  badKind[1] = 200;
  t.throws(() => decodeCommand(badKind), /unknown kind/);
});

t.test('replicas applying the same commands agree on every result and on the state', async (t) => {
  let seed = 99;
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const replicas = [new LockStateMachine({ tombstonesMax: 20 }), new LockStateMachine({ tombstonesMax: 20 })];
  let now = 0;
  for (let i = 0; i < 5000; i++) {
    now += Math.floor(random() * 20);
    const resource = `r${Math.floor(random() * 50)}`;
    const owner = `o${Math.floor(random() * 3)}`;
    const pick = Math.floor(random() * 4);
    const command: LockCommand = {
      logTimeMs: now,
      op: pick === 0 ? { kind: 'unlock', durability: 'persistent', resource, owner }
        : pick === 1 ? { kind: 'tick' }
          : { kind: 'lock', durability: 'persistent', resource, owner, ttlMs: 1 + Math.floor(random() * 300) },
    };
    const bytes = encodeCommand(command);
    const [a, b] = replicas.map((m) => applyCommand(m, decodeCommand(bytes)));
    if (a !== b) {
      t.fail(`step ${i}: replicas disagree (${String(a)} vs ${String(b)})`);
      return;
    }
  }
  const snapshot = (m: LockStateMachine) => [...m.persistent.entries(now)].map(([r, h]) => [r, h.owner, h.token, h.expiresAtMs]);
  t.same(snapshot(replicas[0]!), snapshot(replicas[1]!));
  t.equal(replicas[0]!.persistent.tombstoneCount, replicas[1]!.persistent.tombstoneCount);
});
