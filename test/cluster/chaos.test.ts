import t, { type Test } from 'tap';
import { LeaseClock, formatReport, holdOps, runChaos, type ChaosOp, type ChaosOptions } from './harness/chaos.js';
import { checkHolds } from './harness/holds.js';

// Two runs of about 45 s each (cluster start, 30 s of faults, settling, kill -9 of all, checks).
t.setTimeout(300_000);

async function chaos(t: Test, options: ChaosOptions): Promise<void> {
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const report = await runChaos({ ...options, signal: abort.signal });
  t.comment(formatReport(report));
  t.same(report.violations.map((v) => `[${v.check}] ${v.message}`), [], `no violations (seed ${report.seed}; the report above has the excerpts)`);
  t.ok(report.faultLog.length >= 4, `faults were injected (${report.faultLog.length})`);
  t.ok(new Set(report.faultLog.map((f) => f.kind)).size >= 3, 'of several kinds');
  t.ok(report.grants.persistent > 0 && report.grants.ephemeral > 0, 'locks were granted in both durabilities');
  t.ok(report.grants.afterFirstFault > 0, `grants after the first fault (${report.grants.afterFirstFault})`);
  t.ok(report.grants.afterLastHeal > 0, `grants after the last fault healed (${report.grants.afterLastHeal})`);
  t.ok(report.fencedStore.accepted > 0, 'fenced writes happened');
  t.equal(report.linearizability.persistent.keys, report.resources, 'every PERSISTENT resource was checked for linearizability');
  t.equal(report.linearizability.ephemeral.keys, report.resources, 'and every EPHEMERAL one');
  t.not(report.final.settleAfterRestartMs, null, 'the cluster recovered from kill -9 of every node');
  t.ok(report.final.durableAcked > 0 && report.final.durableChecked > 0, 'acknowledged durable keys were read back after the restart');
}

t.test('the lease clock bounds log time from samples: it never decreases and never gains on real time', async (t) => {
  const clock = new LeaseClock();
  clock.add(0, 10, 1000);
  clock.add(100, 110, 1090);
  // An outage: log time stood still for most of 1.9 s.
  clock.add(2000, 2010, 1200);
  clock.seal();
  t.equal(clock.lower(50), 1030, 'at least the last value read, and the next one minus the real time to it');
  t.equal(clock.upper(50, 'persistent'), 1050, 'at most the last value plus the real time since');
  t.equal(clock.lower(1000), 1090);
  t.equal(clock.upper(1000, 'persistent'), 1200, 'PERSISTENT ops are bounded by the next value read');
  t.equal(clock.upper(1000, 'ephemeral'), 1990, 'EPHEMERAL ops (leader memory) only by real time');
  t.same(clock.problems(12), []);
  const ahead = new LeaseClock();
  ahead.add(0, 10, 1000);
  ahead.add(100, 110, 1500);
  t.match(ahead.problems(12), [/ran ahead of real time by 390 ms/]);
  const back = new LeaseClock();
  back.add(0, 10, 1000);
  back.add(100, 110, 990);
  t.match(back.problems(12), [/went back from 1000 to 990/]);
});

t.test('a shorter KEXTEND ends the earlier definite-hold window', async (t) => {
  let id = 0;
  const op = (owner: string, kind: 'lock' | 'extend', call: number, ttlMs: number, output: bigint | null): ChaosOp =>
    ({ id: id++, client: owner, node: 'n1', input: { kind, resource: 'r', durability: 'persistent', owner, ttlMs }, call, ret: call + 5, output, status: output === null ? 'refused' : 'ok' });
  const shortened = [op('a', 'lock', 0, 1000, 0n), op('a', 'extend', 200, 100, 0n), op('b', 'lock', 400, 1000, 1n)];
  t.same(checkHolds(holdOps(shortened), { drift: 0 }).violations, [], 'b after the shortened lease ran out');
  const overlapping = [op('a', 'lock', 0, 1000, 0n), op('b', 'lock', 400, 1000, 1n)];
  t.match(checkHolds(holdOps(overlapping), { drift: 0 }).violations, [/mutual exclusion on r: a \(token 0\)/]);
});

t.test('3 nodes under faults: no violations, progress throughout', (t) => chaos(t, { seed: 11, nodes: 3, durationMs: 30_000 }));

t.test('5 nodes under faults: no violations, progress throughout', (t) => chaos(t, { seed: 12, nodes: 5, durationMs: 30_000 }));
