import t from 'tap';
import { runSeedsInChildren, seedRange } from './batch.js';
import { reproduceLine, runSeed, type SimResult } from './run.js';
import { SCENARIOS, runScenario } from './scenarios.js';

// The random seeds alone take 100-115 s on a busy 2-core machine: the file gets more than tap's
// default 120 s.
t.setTimeout(300_000);

function failure(result: SimResult, what: string): string {
  return `${what} seed ${result.seed}: ${result.violations.join('\n')}`;
}

t.test('the same seed replays the same run event for event', async (t) => {
  const a = await runSeed(7, { keepTrace: true });
  const b = await runSeed(7, { keepTrace: true });
  t.ok(a.ok, a.ok ? 'seed 7 passes its checks' : failure(a, 'random'));
  t.equal(b.traceHash, a.traceHash, `seed 7 twice: the same trace hash (${reproduceLine(7)})`);
  t.equal(b.events, a.events, 'seed 7 twice: the same number of events');
  const firstDifference = a.trace.findIndex((line, i) => line !== b.trace[i]);
  t.equal(firstDifference, -1, firstDifference === -1
    ? `seed 7 twice: identical traces (${a.trace.length} lines)`
    : `seed 7 twice: traces diverge at line ${firstDifference}: ${a.trace[firstDifference]} / ${b.trace[firstDifference]}`);
  const other = await runSeed(8);
  t.not(other.traceHash, a.traceHash, 'another seed gives another run');
});

for (const name of SCENARIOS) {
  t.test(`scenario ${name}`, async (t) => {
    for (let seed = 1; seed <= 10; seed++) {
      const result = await runScenario(name, seed);
      t.ok(result.ok, result.ok ? `${name} seed ${seed}` : failure(result, `scenario ${name}`));
    }
  });
}

t.test('random seeds under faults: safety, liveness, linearizability', async (t) => {
  const { from, count } = seedRange();
  const results = await runSeedsInChildren(from, count);
  for (const r of results) {
    if (r.code === 0) {
      t.pass(`seeds ${r.from}..${r.from + r.count - 1}: all ok, ${r.msPerSeed} ms per seed`);
      continue;
    }
    const failed = r.failedSeeds.length > 0 ? `seeds ${r.failedSeeds.join(', ')} failed` : `the simulator exited with ${r.code}`;
    t.fail(`seeds ${r.from}..${r.from + r.count - 1}: ${failed}\n${r.output.split('\n').filter((line) => !/^seed \d+: ok/.test(line)).join('\n')}`);
  }
});

// The checkers must bite: configurations known to be unsafe must be caught.
t.test('a tick driver that does not catch up after a pause is caught serving stale lease reads', async (t) => {
  const failed: number[] = [];
  for (let seed = 1; seed <= 10; seed++) {
    const result = await runScenario('stale-leader-paused', seed, { tickCatchUp: false, readStalenessMs: Infinity });
    if (!result.ok) failed.push(seed);
  }
  t.ok(failed.length > 0, `no stale read found in stale-leader-paused seeds 1..10 with tickCatchUp: false`);
});

t.test('clock drift beyond the lease bound is caught serving stale lease reads', async (t) => {
  const failed: number[] = [];
  for (let seed = 1; seed <= 20 && failed.length === 0; seed++) {
    const result = await runScenario('stale-leader-partitioned', seed, { driftMax: 0.3, readStalenessMs: Infinity });
    if (!result.ok) failed.push(seed);
  }
  t.ok(failed.length > 0, 'no stale read found in stale-leader-partitioned seeds 1..20 with driftMax 0.3');
});
