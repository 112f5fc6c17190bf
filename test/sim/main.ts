/**
 * Simulator CLI.
 *   --seed S            run one seed, print its event trace, exit 1 on a violation
 *   --seeds N [--from F] run seeds F..F+N-1 (F defaults to 1), print a summary
 *   --scenario NAME     with --seed or --seeds: run a named scenario (scenarios.ts) instead of the random one
 *   --quiet             with --seed: print the summary only, not the trace
 *   --no-read-guard     gets do not wait for the leader's first commit in its term (SimOptions.readGuard)
 *   --no-catch-up       the tick driver ticks once per timer callback, not once per elapsed tickMs (SimOptions.tickCatchUp)
 *   --drift D           clock rate bound (SimOptions.driftMax); above the raft lease's leaseDriftTicks it is unsafe by design
 *   --reads MODE        the log time gets are evaluated at: replica | pending | committed (SimOptions.readInstant)
 */
import { parseArgs } from 'node:util';
import type { SimOptions } from './options.js';
import { reproduceLine, runSeed, type SimResult } from './run.js';
import { SCENARIOS, runScenario, type ScenarioName } from './scenarios.js';

function summary(r: SimResult): string {
  const o = r.options;
  return `seed ${r.seed}: ${r.ok ? 'ok' : 'VIOLATION'} nodes=${o.nodes} sim=${r.simMs}ms wall=${r.wallMs}ms events=${r.events} ` +
    `msgs=${r.messages} ops=${r.ops.started} replies=${r.ops.replies} unknown=${r.ops.unknown} acked=${r.ops.acked} ` +
    `committed=${r.committed} crashes=${r.crashes} torn=${r.tornTails} elections=${r.elections} lin=${String(r.lin)} trace=${r.traceHash}`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      seeds: { type: 'string' },
      from: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      reads: { type: 'string' },
      'no-read-guard': { type: 'boolean', default: false },
      'no-catch-up': { type: 'boolean', default: false },
      drift: { type: 'string' },
      scenario: { type: 'string' },
    },
  });
  const overrides: Partial<SimOptions> = {};
  if (values.reads !== undefined) {
    if (values.reads !== 'replica' && values.reads !== 'pending' && values.reads !== 'committed') throw new Error(`--reads ${values.reads}: expected replica, pending or committed`);
    overrides.readInstant = values.reads;
  }
  if (values['no-read-guard'] === true) overrides.readGuard = false;
  if (values['no-catch-up'] === true) overrides.tickCatchUp = false;
  if (values.drift !== undefined) overrides.driftMax = Number(values.drift);
  const scenario = values.scenario;
  if (scenario !== undefined && !(SCENARIOS as readonly string[]).includes(scenario)) {
    throw new Error(`--scenario ${scenario}: expected one of ${SCENARIOS.join(', ')}`);
  }
  const run = (seed: number, options: Partial<SimOptions>) =>
    scenario === undefined ? runSeed(seed, options) : runScenario(scenario as ScenarioName, seed, options);
  // Every flag that changes the run goes into the reproduce line.
  const again = [
    scenario === undefined ? '' : ` --scenario ${scenario}`,
    values.reads === undefined ? '' : ` --reads ${values.reads}`,
    values['no-read-guard'] === true ? ' --no-read-guard' : '',
    values['no-catch-up'] === true ? ' --no-catch-up' : '',
    values.drift === undefined ? '' : ` --drift ${values.drift}`,
  ].join('');
  if (values.seed !== undefined) {
    const seed = Number(values.seed);
    const result = await run(seed, { ...overrides, keepTrace: !values.quiet });
    if (!values.quiet) for (const line of result.trace) console.log(line);
    console.log(summary(result));
    if (result.ok) return 0;
    for (const v of result.violations) console.log(v);
    console.log(reproduceLine(seed) + again);
    return 1;
  }
  if (values.seeds === undefined) {
    console.log('usage: npm run sim -- --seed S | --seeds N [--from F]  (see test/sim/main.ts)');
    return 0;
  }
  const count = Number(values.seeds);
  const from = Number(values.from ?? '1');
  const failed: number[] = [];
  let wall = 0;
  for (let seed = from; seed < from + count; seed++) {
    const result = await run(seed, overrides);
    wall += result.wallMs;
    console.log(summary(result));
    if (!result.ok) {
      failed.push(seed);
      for (const v of result.violations) console.log(`  ${v.split('\n').join('\n  ')}`);
      console.log(`  ${reproduceLine(seed)}${again}`);
    }
  }
  console.log(`${count} seeds from ${from}: ${count - failed.length} ok, ${failed.length} failed` +
    `${failed.length > 0 ? ` (${failed.join(', ')})` : ''}; ${Math.round(wall / count)} ms/seed`);
  return failed.length === 0 ? 0 : 1;
}

process.exitCode = await main();
