import t from 'tap';
import { createRequire } from 'node:module';
import { KNOWN_SCRIPTS, knownScript, type KnownScript } from '../../src/script/known.js';
import { runCall, type CallContext } from '../../src/script/calls.js';
import { runScript } from '../../src/script/run.js';
import { luaVm } from '../../src/script/vm.js';
import { sha1Hex } from '../../src/script/sha1.js';
import { LockStateMachine } from '../../src/lock/machine.js';
import { encodeLockSnapshot } from '../../src/lock/snapshot.js';
import { partitionOfKey } from '../../src/cluster/slots.js';
import type { ScriptReply } from '../../src/script/reply.js';
import { mulberry32 } from '../helpers/random.js';

const require = createRequire(import.meta.url);

t.test('the known scripts are the exact texts the installed redlock versions send', async (t) => {
  const Redlock4 = require('redlock') as new (clients: unknown[]) => Record<string, string>;
  const v4 = new Redlock4([{}]);
  const { default: Redlock5 } = require('redlock5') as { default: new (clients: unknown[]) => { scripts: Record<string, { value: string; hash: string }> } };
  const v5 = new Redlock5([{}]).scripts;
  const texts: [string, string][] = [
    ['redlock v4 acquire', v4['lockScript']!], ['redlock v4 extend', v4['extendScript']!], ['redlock v4 release', v4['unlockScript']!],
    ['redlock v5 acquire', v5['acquireScript']!.value], ['redlock v5 extend', v5['extendScript']!.value], ['redlock v5 release', v5['releaseScript']!.value],
  ];
  for (const [name, text] of texts) {
    const known = knownScript(text);
    t.equal(known?.name, name, `${name} is recognised by its text`);
  }
  t.equal(v5['releaseScript']!.hash, knownScript(v5['releaseScript']!.value)!.sha1, 'redlock v5 computes the same SHA1');
});

t.test('every known script has a distinct text, hashes to its recorded SHA1 and compiles', async (t) => {
  t.equal(new Set(KNOWN_SCRIPTS.map((s) => s.body)).size, KNOWN_SCRIPTS.length);
  for (const script of KNOWN_SCRIPTS) {
    t.equal(sha1Hex(script.body), script.sha1, script.name);
    t.equal(luaVm().compile(script.body), null, `${script.name} compiles`);
  }
  t.equal(knownScript(KNOWN_SCRIPTS[0]!.body + ' '), undefined, 'one more space is another script');
});

const KEYS = ['lock:a', 'lock:b', '{lock}c'];
const OWNERS = ['me', 'other', ''];
const TTLS = ['30000', '1', '250', '0', '-100', 'abc', '1.5', '007', '9007199254740993', '99999999999999999999', '2147483647', ' 5'];
const PARTITIONS = 4;

interface Case {
  setup: { key: string; owner: string; ttlMs: number | null; atMs: number }[];
  keys: string[];
  args: string[];
  nowMs: number;
  readOnly: boolean;
  partition: number;
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

/** A random state (keys held by either owner, with or without expiry, some expired by now) and call. */
function randomCase(random: () => number, script: KnownScript): Case {
  const nowMs = 10_000;
  const setup: Case['setup'] = [];
  for (const key of KEYS) {
    const roll = random();
    if (roll < 0.3) continue;
    const ttlMs = roll < 0.45 ? null : roll < 0.6 ? 1 + Math.floor(random() * 500) : 1000 + Math.floor(random() * 60_000);
    // Held since 0..5000 ms: a short lease may have run out by nowMs.
    setup.push({ key, owner: pick(random, ['me', 'other']), ttlMs, atMs: Math.floor(random() * 5000) });
  }
  const keyCount = script.multiKey ? Math.floor(random() * 4) : random() < 0.9 ? 1 : pick(random, [0, 2]);
  const keys = Array.from({ length: keyCount }, () => pick(random, KEYS));
  const argCount = random() < 0.85 ? 3 : Math.floor(random() * 3);
  const args = [pick(random, OWNERS), random() < 0.7 ? pick(random, TTLS.slice(0, 3)) : pick(random, TTLS), pick(random, ['0', '1', 'x'])].slice(0, argCount);
  const partition = keys.length > 0 && random() < 0.95 ? partitionOfKey(keys[0]!, PARTITIONS) : Math.floor(random() * PARTITIONS);
  return { setup, keys, args, nowMs, readOnly: random() < 0.1, partition };
}

function machineFor(c: Case): LockStateMachine {
  const machine = new LockStateMachine({ tombstonesMax: 100 });
  for (const { key, owner, ttlMs, atMs } of c.setup) {
    machine.set(key, owner, { mode: 'always', expiry: ttlMs === null ? { kind: 'none' } : { kind: 'ttl', ttlMs } }, atMs);
  }
  return machine;
}

function context(machine: LockStateMachine, c: Case): CallContext {
  return {
    machine, nowMs: c.nowMs, wallClockMs: 1_700_000_000_000, readOnly: c.readOnly,
    isLocal: (key) => partitionOfKey(key, PARTITIONS) === c.partition,
  };
}

/** The reply and resulting state of the script run in the Lua VM, the reference. */
function inVm(script: KnownScript, c: Case): { reply: ScriptReply; state: Uint8Array } {
  const machine = machineFor(c);
  const ctx = context(machine, c);
  const reply = luaVm().execute({ body: script.body, keys: c.keys, args: c.args, budget: 1_000_000, host: (argv) => runCall(ctx, argv) });
  return { reply, state: encodeLockSnapshot(machine, c.nowMs) };
}

t.test('each known script run natively gives the VM\'s reply and state on random states and arguments', async (t) => {
  const seed = Number(process.env['RAFTLOCK_SEED'] ?? 20240605);
  const random = mulberry32(seed);
  for (const script of KNOWN_SCRIPTS) {
    let native = 0;
    let mismatches = 0;
    const cases = 400;
    for (let i = 0; i < cases; i++) {
      const c = randomCase(random, script);
      const expected = inVm(script, c);
      const machine = machineFor(c);
      const reply = script.native(context(machine, c), c.keys, c.args);
      if (reply === undefined) continue;
      native += 1;
      const state = encodeLockSnapshot(machine, c.nowMs);
      if (JSON.stringify(reply) !== JSON.stringify(expected.reply) || Buffer.compare(state, expected.state) !== 0) {
        mismatches += 1;
        if (mismatches <= 3) t.fail(`${script.name} (seed ${seed}, case ${i}): ${JSON.stringify(c)} native ${JSON.stringify(reply)} vm ${JSON.stringify(expected.reply)}`);
      }
    }
    t.equal(mismatches, 0, `${script.name}: ${native} of ${cases} cases ran natively, all as in the VM`);
    t.ok(native >= cases / 3, `${script.name}: the fast path takes the well-formed calls (${native})`);
  }
});

t.test('runScript falls back to the VM for calls a native run does not take, with the VM\'s result', async (t) => {
  const random = mulberry32(7);
  for (const script of KNOWN_SCRIPTS) {
    for (let i = 0; i < 60; i++) {
      const c = randomCase(random, script);
      const expected = inVm(script, c);
      const machine = machineFor(c);
      const reply = runScript(machine, {
        body: script.body, keys: c.keys, args: c.args, nowMs: c.nowMs, wallClockMs: 1_700_000_000_000,
        budget: 1_000_000, partition: c.partition, partitions: PARTITIONS, readOnly: c.readOnly,
      });
      t.same(reply, expected.reply, `${script.name} case ${i}`);
      t.equal(Buffer.compare(encodeLockSnapshot(machine, c.nowMs), expected.state), 0, `${script.name} case ${i}: state`);
    }
  }
});

t.test('fast-path replies lock clients rely on', async (t) => {
  const run = (body: string, machine: LockStateMachine, keys: string[], args: string[], nowMs = 100): ScriptReply =>
    runScript(machine, { body, keys, args, nowMs, wallClockMs: 0, budget: 1_000_000, partition: 0, partitions: 1, readOnly: false });
  const byName = (name: string): string => KNOWN_SCRIPTS.find((s) => s.name === name)!.body;
  const m = new LockStateMachine();
  t.equal(run(byName('redlock v5 acquire'), m, ['a', 'b'], ['me', '1000']), 2, 'acquires both keys');
  t.equal(run(byName('redlock v5 acquire'), m, ['b', 'c'], ['you', '1000']), 0, 'one key taken: nothing acquired');
  t.equal(m.get('c', 100), undefined);
  t.equal(run(byName('redlock v5 extend'), m, ['a', 'b'], ['me', '5000'], 500), 2);
  t.equal(m.pttl('a', 500), 5000);
  t.equal(run(byName('redlock v5 release'), m, ['a', 'b', 'c'], ['me']), 2);
  t.equal(run(byName('redis-py Lock release'), m, ['a'], ['me']), 0);
  m.set('p', 'tok', { mode: 'always', expiry: { kind: 'ttl', ttlMs: 1000 } }, 0);
  t.equal(run(byName('redis-py Lock extend'), m, ['p'], ['tok', '500', '0'], 200), 1, 'adds to the remaining time');
  t.equal(m.pttl('p', 200), 1300);
  t.equal(run(byName('redsync delete (-1 when missing)'), m, ['gone'], ['tok']), -1);
  t.equal(run(byName('pottery Redlock acquired'), m, ['p'], ['tok'], 300), 1200);
});

t.test('owner repeats: the holder\'s acquire and a released owner\'s release succeed without changing anything', async (t) => {
  const script = (name: string): string => KNOWN_SCRIPTS.find((k) => k.name === name)!.body;
  const run = (m: LockStateMachine, body: string, keys: string[], args: string[], nowMs: number): ScriptReply =>
    runScript(m, { body, keys, args, nowMs, wallClockMs: 0, budget: 1_000_000, partition: 0, partitions: 1, readOnly: false });
  const acquire = script('redlock v5 acquire');
  const release = script('redlock v5 release');
  for (const repeats of ['none', 'scripts'] as const) {
    const m = new LockStateMachine();
    m.ownerRepeats = repeats;
    const on = repeats === 'scripts';
    t.equal(run(m, acquire, ['a', 'b'], ['v1', '1000'], 0), 2, `${repeats}: acquire`);
    const before = encodeLockSnapshot(m, 0);
    t.equal(run(m, acquire, ['a', 'b'], ['v1', '1000'], 10), on ? 2 : 0, `${repeats}: the same owner again`);
    t.same(encodeLockSnapshot(m, 0), before, `${repeats}: which changed nothing (the expiry stays)`);
    t.equal(run(m, acquire, ['a', 'b'], ['v2', '1000'], 10), 0, `${repeats}: another owner still fails`);
    t.equal(run(m, acquire, ['a', 'c'], ['v1', '1000'], 10), 0, `${repeats}: the owner holding only some of the keys fails`);
    t.equal(run(m, release, ['a', 'b'], ['v1'], 20), 2, `${repeats}: release`);
    t.equal(run(m, release, ['a', 'b'], ['v1'], 30), on ? 2 : 0, `${repeats}: the same release again`);
    t.equal(run(m, acquire, ['a'], ['v2', '1000'], 40), 1, `${repeats}: another owner takes a`);
    t.equal(run(m, release, ['a', 'b'], ['v1'], 50), on ? 2 : 0, `${repeats}: v1's late repeat still counts, and leaves v2's lock alone`);
    t.equal(m.get('a', 50), 'v2');
    t.equal(run(m, acquire, ['x'], ['v3', '100'], 60), 1);
    t.equal(run(m, release, ['x'], ['v3'], 500), 0, `${repeats}: a lock whose lease ran out is not released by a repeat`);
  }
});
