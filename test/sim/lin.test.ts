import t from 'tap';
import { checkHistory, type CheckOptions, type CheckResult } from './lin/checker.js';
import {
  HistoryRecorder, formatOp, type Durability, type LockInfoOutput, type LockInput, type LockOp, type LockOutput,
} from './lin/history.js';
import { checkMutex, type MutexViolationKind } from './lin/mutex.js';
import { bruteForceLinearizable } from './lin/oracle.js';
import { generate, mutate, rng, serveInOrder, type Scheduled } from './lin/random-history.js';

const P: Durability = 'persistent';
const E: Durability = 'ephemeral';

function lock(owner: string, ttlMs: number, durability = P, resource = 'r'): LockInput {
  return { kind: 'lock', resource, owner, ttlMs, durability };
}
function unlock(owner: string, durability = P, resource = 'r'): LockInput {
  return { kind: 'unlock', resource, owner, durability };
}
function extend(owner: string, ttlMs: number, durability = P, resource = 'r'): LockInput {
  return { kind: 'extend', resource, owner, ttlMs, durability };
}
function get(durability = P, resource = 'r'): LockInput {
  return { kind: 'get', resource, durability };
}
function info(owner: string, token: bigint, remainingMs: number): LockInfoOutput {
  return { owner, token, remainingMs };
}

type Row = Omit<LockOp, 'id' | 'client'>;

/** An op over [call, ret]; ret undefined means no reply (output must be omitted then). */
function at(call: number, ret: number | undefined, input: LockInput, output?: LockOutput, logTime?: number): Row {
  const row: Row = { call, ret, input, output };
  return logTime === undefined ? row : { ...row, logTime };
}

/** Numbers the rows; the client is the owner (or "reader" for get). */
function history(...rows: Row[]): LockOp[] {
  return rows.map((row, id) => ({ id, client: row.input.kind === 'get' ? 'reader' : row.input.owner, ...row }));
}

function okText(result: CheckResult): string {
  return result.ok === true ? 'ok' : result.ok === false ? result.explanation : result.reason;
}

const good: { name: string; ops: LockOp[]; options?: CheckOptions }[] = [
  {
    name: 'sequential lock, get, unlock, re-grant with the next token, extend',
    ops: history(
      at(0, 10, lock('a', 1000), 0n),
      at(20, 30, get(), info('a', 0n, 980)),
      at(40, 50, unlock('a'), true),
      at(60, 70, lock('b', 1000), 1n),
      at(80, 90, extend('b', 500), 1n),
      at(100, 110, unlock('b'), true),
      at(120, 130, get(), null),
      at(140, 150, unlock('b'), false),
    ),
  },
  {
    name: 'concurrent lock attempts: a wins',
    ops: history(at(0, 10, lock('a', 1000), 0n), at(5, 15, lock('b', 1000), null)),
  },
  {
    name: 'concurrent lock attempts: b wins although a was invoked first',
    ops: history(at(0, 10, lock('a', 1000), null), at(5, 15, lock('b', 1000), 0n)),
  },
  {
    name: 'an unanswered lock that must have taken effect',
    ops: history(
      at(0, undefined, lock('a', 1000)),
      at(20, 30, lock('b', 1000), null),
      at(40, 50, get(), info('a', 0n, 960)),
    ),
  },
  {
    name: 'an unanswered lock that never took effect',
    ops: history(at(0, undefined, lock('a', 1000)), at(20, 30, lock('b', 1000), 0n), at(40, 50, unlock('b'), true)),
  },
  {
    name: 'an unanswered unlock that took effect later',
    ops: history(
      at(0, 10, lock('a', 1000), 0n),
      at(20, undefined, unlock('a')),
      at(30, 40, get(), info('a', 0n, 970)),
      at(50, 60, lock('b', 1000), 1n),
    ),
  },
  {
    name: 'expiry then re-grant with token + 1',
    ops: history(at(0, 10, lock('a', 100), 0n), at(200, 210, lock('b', 100), 1n), at(220, 230, unlock('a'), false)),
  },
  {
    name: 'held at exactly grant + ttl, free right after (log time)',
    ops: history(
      at(0, 10, lock('a', 100), 0n, 5),
      at(100, 110, lock('b', 100), null, 105),
      at(100, 110, lock('c', 100), 1n, 106),
    ),
  },
  {
    name: 'same owner re-lock returns the same token and keeps the expiry',
    ops: history(
      at(0, 10, lock('a', 100), 0n),
      at(50, 60, lock('a', 5000), 0n),
      at(150, 160, lock('b', 100), 1n),
    ),
  },
  {
    name: 'extend then get',
    ops: history(
      at(0, 10, lock('a', 100), 0n),
      at(50, 60, extend('a', 1000), 0n),
      at(70, 80, get(), info('a', 0n, 980)),
      at(500, 510, lock('b', 100), null),
    ),
  },
  {
    name: 'log time orders concurrent ops',
    ops: history(
      at(0, 100, lock('a', 50), 0n, 10),
      at(0, 100, get(), info('a', 0n, 30), 30),
      at(0, 100, lock('b', 50), 1n, 61),
    ),
  },
  {
    name: 'ephemeral tokens need only increase, and a failover may lose the lease',
    ops: history(
      at(0, 10, lock('a', 1000, E), 7n),
      at(20, 30, get(E), null),
      at(40, 50, lock('b', 1000, E), null),
      at(60, 70, unlock('a', E), false),
      at(2000, 2010, lock('b', 1000, E), 1n << 32n),
    ),
  },
  {
    name: 'locks are independent: one resource does not constrain another',
    ops: history(
      at(0, 10, lock('a', 1000, P, 'x'), 0n),
      at(20, 30, lock('b', 1000, P, 'y'), 0n),
      at(40, 50, lock('b', 1000, E, 'x'), 0n),
    ),
  },
  {
    name: 'client clock slack admits a remaining time off by the drift',
    ops: history(at(0, 10, lock('a', 1000), 0n), at(20, 30, get(), info('a', 0n, 995))),
    options: { timeSlackMs: 10 },
  },
];

for (const { name, ops, options } of good) {
  t.test(`accepts: ${name}`, async (t) => {
    const result = checkHistory(ops, options);
    t.equal(result.ok, true, okText(result));
    const mutex = checkMutex(ops, options);
    t.equal(mutex.ok, true, mutex.ok ? 'ok' : mutex.explanation);
  });
}

const bad: { name: string; ops: LockOp[]; explains: RegExp; mutex?: MutexViolationKind; options?: CheckOptions }[] = [
  {
    name: 'two owners granted the same unexpired lock',
    ops: history(at(0, 10, lock('a', 1000), 0n), at(20, 30, lock('b', 1000), 1n)),
    explains: /#1 b lock "r".*-> 1[\s\S]*"a" holds it/,
    mutex: 'two-holders',
  },
  {
    name: 'two owners granted the same unexpired ephemeral lock despite a failover',
    ops: history(at(0, 10, lock('a', 1000, E), 5n), at(20, 30, get(E), null), at(40, 50, lock('b', 1000, E), 9n)),
    explains: /lease is still running|fails until it expires/,
    mutex: 'two-holders',
  },
  {
    name: 'token going backwards',
    ops: history(
      at(0, 10, lock('a', 100, E), 5n),
      at(20, 30, unlock('a', E), true),
      at(40, 50, lock('b', 100, E), 3n),
    ),
    explains: /#0 a lock .* -> 5 .*\n.*the newest token 5, but #2 has yet to show token 3, and tokens never go back/,
    mutex: 'token-not-increasing',
  },
  {
    name: 'persistent token skipping a value',
    ops: history(at(0, 10, lock('a', 100), 0n), at(20, 30, unlock('a'), true), at(40, 50, lock('b', 100), 2n)),
    explains: /new grant must return token 1, got 2/,
  },
  {
    name: 'token reused by a different owner after expiry',
    ops: history(at(0, 10, lock('a', 100), 0n), at(200, 210, lock('b', 100), 0n)),
    explains: /token 1, got 0/,
    mutex: 'token-reused',
  },
  {
    name: 'a get that shows the holder after its unlock returned',
    ops: history(
      at(0, 10, lock('a', 1000), 0n),
      at(20, 30, unlock('a'), true),
      at(40, 50, get(), info('a', 0n, 950)),
    ),
    explains: /#2 reader get.*\n.*nobody holds it/,
  },
  {
    name: 'a stale read after an acknowledged lock',
    ops: history(at(0, 10, lock('a', 10_000), 0n), at(20, 30, get(), null)),
    explains: /"a" holds it, so get shows it, got nil/,
  },
  {
    name: 'an unlock that returned true for a non-holder',
    ops: history(at(0, 10, lock('a', 1000), 0n), at(20, 30, unlock('b'), true)),
    explains: /another owner's unlock fails, got true/,
  },
  {
    name: 'an extend by a non-holder that returned a token',
    ops: history(at(0, 10, lock('a', 1000), 0n), at(20, 30, extend('b', 1000), 0n)),
    explains: /another owner's extend fails/,
  },
  {
    name: 're-lock that restarted the lease',
    ops: history(at(0, 10, lock('a', 100), 0n), at(50, 60, lock('a', 5000), 0n), at(150, 160, lock('b', 100), null)),
    explains: /lock must grant it, got nil/,
  },
  {
    name: 'a remaining time longer than the lease',
    ops: history(at(0, 10, lock('a', 100), 0n), at(20, 30, get(), info('a', 0n, 500))),
    explains: /remaining time must be expiry - now, in 70\.\.90 ms/,
  },
  {
    name: 'a lease that expired early (log time)',
    ops: history(at(0, 10, lock('a', 100), 0n, 5), at(50, 60, lock('b', 100), 1n, 55)),
    explains: /lease is still running at every instant/,
    mutex: 'two-holders',
  },
  {
    name: 'log time going backwards against real-time order',
    ops: history(at(0, 10, lock('a', 100), 0n, 500), at(20, 30, get(), info('a', 0n, 100), 400)),
    explains: /#0 a lock .*log 500\]\n.*it must take effect in 500, at or after the previous op \(>= -Infinity\) and by 400/,
  },
  {
    name: 'a failover-lost ephemeral lease when loss is not allowed',
    ops: history(at(0, 10, lock('a', 1000, E), 5n), at(20, 30, get(E), null)),
    explains: /holds it, so get shows it/,
    options: { ephemeralLoss: false },
  },
];

for (const { name, ops, explains, mutex, options } of bad) {
  t.test(`rejects: ${name}`, async (t) => {
    const result = checkHistory(ops, options);
    t.equal(result.ok, false, 'not linearizable');
    if (result.ok !== false) return;
    t.match(result.explanation, /^not linearizable: /);
    t.match(result.explanation, /longest linearizable prefix/);
    t.match(result.explanation, /ops that could not be placed next:/);
    t.match(result.explanation, explains, result.explanation);
    t.ok(result.unplaced.length > 0, 'names the ops it could not place');
    const direct = checkMutex(ops, options);
    if (mutex === undefined) return;
    t.equal(direct.ok, false, 'the mutex checker finds it too');
    if (direct.ok === false) t.ok(direct.violations.some((v) => v.kind === mutex), direct.explanation);
  });
}

t.test('the explanation prints the prefix, the model state and each op it could not place', async (t) => {
  const result = checkHistory(history(
    at(0, 10, lock('a', 1000), 0n),
    at(20, 30, lock('b', 1000), 1n),
    at(25, 35, get(), info('a', 0n, 975)),
  ));
  t.equal(result.ok, false);
  if (result.ok !== false) return;
  t.same(result.partition, { durability: 'persistent', resource: 'r' });
  t.same(result.prefix.map((op) => op.id), [0, 2]);
  t.same(result.unplaced.map((op) => op.id), [1]);
  t.match(result.explanation, /1\. #0 a lock "r" owner="a" ttl=1000 persistent -> 0 \[call 0, ret 10\]/);
  t.match(result.explanation, /held by "a" until 1000\.\.1005; newest token 0; next op at >= 25/);
});

t.test('the mutex checker is certain: overlapping windows alone are not a violation', async (t) => {
  // a's lease could have expired at 100..110; b was granted at 105..115.
  const ops = history(at(0, 10, lock('a', 100), 0n), at(105, 115, lock('b', 100), 1n));
  t.equal(checkHistory(ops).ok, true);
  t.equal(checkMutex(ops).ok, true);
  // An unanswered unlock by a may have released it at any instant after its call.
  const released = history(
    at(0, 10, lock('a', 1000), 0n), at(20, undefined, unlock('a')), at(30, 40, lock('b', 100), 1n),
  );
  t.equal(checkHistory(released).ok, true);
  t.equal(checkMutex(released).ok, true);
});

t.test('a step budget turns a search that is too large into unknown, never a hang', async (t) => {
  // 30 concurrent reads commute, so refuting the last op means visiting every subset of them.
  const reads = Array.from({ length: 30 }, () => at(0, 1000, get(), null));
  const ops = history(...reads, at(2000, 2010, get(), info('a', 0n, 5)));
  const result = checkHistory(ops, { stepsMaxPerPartition: 10_000 });
  t.equal(result.ok, 'unknown');
  if (result.ok === 'unknown') t.match(result.reason, /persistent "r": gave up after 10000 model steps over 31 ops/);
});

t.test('malformed histories are refused, not reported as violations', async (t) => {
  const base = at(0, 10, lock('a', 100), 0n);
  const cases: [string, Row][] = [
    ['output must be present exactly when ret is', { ...base, output: undefined }],
    ['ret must be an integer ms >= call', { ...base, ret: -1 }],
    ['ttlMs must be a positive integer', { ...base, input: lock('a', 0) }],
    ['lock replies with a bigint token or null', { ...base, output: true }],
    ['logTime must be an integer ms', { ...base, logTime: 1.5 }],
  ];
  for (const [message, row] of cases) t.throws(() => checkHistory(history(row)), { message: new RegExp(message) });
  t.throws(() => checkHistory([...history(base), ...history(base)]), { message: /duplicate id/ });
});

t.test('HistoryRecorder assigns ids and times from the injected clock', async (t) => {
  let now = 10.4;
  const recorder = new HistoryRecorder(() => now);
  const a = recorder.invoke('c1', lock('a', 100));
  const b = recorder.invoke('c2', lock('b', 100));
  const c = recorder.invoke('c3', unlock('c'));
  const d = recorder.invoke('c4', get());
  now = 20.2;
  recorder.complete(a, 0n);
  recorder.setLogTime(a, 15);
  recorder.failUnknown(b);
  recorder.failNoEffect(c);
  t.throws(() => recorder.complete(a, 0n), /already completed/);
  t.throws(() => recorder.complete(b, null), /already given up/);
  t.throws(() => recorder.complete(d, 3n), /get replies with null/);
  t.throws(() => recorder.setLogTime(a, 1.5), /integer/);
  t.throws(() => recorder.complete(99, null), /no op #99/);
  const ops = recorder.history();
  t.same(ops.map((op) => [op.id, op.client, op.call, op.ret, op.output, op.logTime]), [
    [0, 'c1', 10, 21, 0n, 15],
    [1, 'c2', 10, undefined, undefined, undefined],
    [3, 'c4', 10, undefined, undefined, undefined],
  ]);
  t.equal(formatOp(ops[0]!), '#0 c1 lock "r" owner="a" ttl=100 persistent -> 0 [call 10, ret 21, log 15]');
  t.equal(checkHistory(ops).ok, true);
});

const SEEDS = 60;

t.test('random histories from a correct server pass both checkers', async (t) => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const options = { seed, ops: 150, clients: 6, resources: 3, lostPercent: 10, logTime: seed % 2 === 0 };
    const ops = generate(options);
    // With log times, check both as the simulator would (complete) and as if some were missing.
    for (const logTimeComplete of options.logTime ? [false, true] : [false]) {
      const result = checkHistory(ops, { logTimeComplete });
      if (result.ok !== true) t.fail(`seed ${seed} (logTime ${options.logTime}, ${logTimeComplete}): ${okText(result)}`);
      const mutex = checkMutex(ops, { logTimeComplete });
      if (!mutex.ok) t.fail(`seed ${seed}: ${mutex.explanation}`);
    }
  }
  t.pass(`${SEEDS} seeds`);
});

t.test('one mutated reply is mostly caught, and always when the mutex checker proves it wrong', async (t) => {
  let caught = 0;
  let total = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const logTime = seed % 2 === 0;
    const ops = generate({ seed, ops: 60, clients: 4, resources: 2, lostPercent: 5, logTime });
    const random = rng(seed + 1000);
    const answered = ops.filter((op) => op.ret !== undefined);
    const target = answered[random(answered.length)]!;
    const mutated = ops.map((op) => (op === target ? mutate(op, random) : op));
    const result = checkHistory(mutated, { logTimeComplete: logTime });
    t.not(result.ok, 'unknown', `seed ${seed} stays within budget`);
    total += 1;
    if (result.ok === false) caught += 1;
    const mutex = checkMutex(mutated, { logTimeComplete: logTime });
    if (!mutex.ok && result.ok !== false) {
      t.fail(`seed ${seed}: mutex checker proves ${formatOp(target)} wrong but lin says ${result.ok}\n${mutex.explanation}`);
    }
  }
  t.ok(caught >= total * 0.7, `caught ${caught} of ${total} mutations`);
});

t.test('a duplicate grant is always caught (distinct log times, no lost replies)', async (t) => {
  let tried = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const ops = generate({ seed, ops: 80, clients: 4, resources: 2, lostPercent: 0, logTime: true });
    // A lock answered nil while a different owner held the lock: make it a grant too.
    const refused = ops.find((op) => op.input.kind === 'lock' && op.output === null);
    if (refused === undefined) continue;
    tried += 1;
    const mutated = ops.map((op) => (op === refused ? { ...op, output: 1000n } : op));
    const result = checkHistory(mutated, { logTimeComplete: true });
    t.equal(result.ok, false, `seed ${seed}: ${formatOp(refused)} made a grant`);
    const mutex = checkMutex(mutated, { logTimeComplete: true });
    t.equal(mutex.ok, false, `seed ${seed}: mutex checker sees two holders`);
  }
  t.ok(tried > SEEDS / 2, `${tried} duplicate grants tried`);
});

t.test('2000 ops over 50 resources with 10 concurrent clients finish with ok', async (t) => {
  const started = performance.now();
  const ops = generate({ seed: 7, ops: 2000, clients: 10, resources: 50, lostPercent: 5, logTime: false });
  const result = checkHistory(ops);
  t.equal(result.ok, true, okText(result));
  t.equal(checkMutex(ops).ok, true);
  t.comment(`checked in ${Math.round(performance.now() - started)} ms`);
});

t.test('a simulator-style history (complete log times) on few locks stays cheap', async (t) => {
  const ops = generate({ seed: 8, ops: 3000, clients: 10, resources: 2, lostPercent: 10, logTime: true });
  const result = checkHistory(ops, { logTimeComplete: true });
  t.equal(result.ok, true, okText(result));
  if (result.ok === true) t.ok(result.steps < 200_000, `${result.steps} model steps for ${ops.length} ops`);
  t.equal(checkMutex(ops, { logTimeComplete: true }).ok, true);
});

/**
 * A tiny PERSISTENT history with short intervals: replies from a correct
 * server (applied at random instants), half of them then with one reply
 * changed, so the oracle sees both kinds.
 */
function tinyHistory(random: (n: number) => number): LockOp[] {
  const owners = ['a', 'b', 'c'];
  const inputs = [
    () => lock(owners[random(3)]!, 1 + random(8)),
    () => unlock(owners[random(3)]!),
    () => extend(owners[random(3)]!, 1 + random(8)),
    () => get(),
  ];
  const rows = Array.from({ length: 2 + random(5) }, (_v, id): Scheduled => {
    const input = inputs[random(inputs.length)]!();
    const call = random(12);
    const ret = random(7) === 0 ? undefined : call + random(5);
    // The server applies it at `at`; a lost reply may also mean it never ran.
    const at = random(3) === 0 && ret === undefined ? undefined : call + random((ret ?? call + 4) - call + 1);
    const logTime = at !== undefined && random(4) === 0 ? { logTime: at } : {};
    return { op: { id, client: 'c', call, ret, input, output: undefined, ...logTime }, at };
  });
  const ops = serveInOrder(rows);
  const answered = ops.filter((op) => op.ret !== undefined);
  if (answered.length === 0 || random(2) === 0) return ops;
  const target = answered[random(answered.length)]!;
  return ops.map((op) => (op === target ? mutate(op, random) : op));
}

t.test('agrees with a brute-force oracle on small histories', async (t) => {
  const random = rng(4242);
  let linearizable = 0;
  const cases = 400;
  for (let i = 0; i < cases; i++) {
    const ops = tinyHistory(random);
    const expected = bruteForceLinearizable(ops);
    const result = checkHistory(ops, { ephemeralLoss: false });
    if (result.ok !== expected) {
      t.fail(`case ${i}: oracle ${expected}, checker ${okText(result)}\n${ops.map(formatOp).join('\n')}`);
    }
    const mutex = checkMutex(ops);
    if (!mutex.ok && expected) t.fail(`case ${i}: mutex checker flags a linearizable history\n${mutex.explanation}`);
    if (expected) linearizable += 1;
  }
  t.ok(linearizable > cases / 4 && linearizable < (cases * 3) / 4, `${linearizable} of ${cases} linearizable`);
});
