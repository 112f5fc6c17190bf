/**
 * Chaos runner CLI (see harness/chaos.ts): a real cluster under faults and load, then the checkers.
 *
 *   npm run chaos -- --nodes 5 --duration 600
 *
 *   --seed S          seed of the fault schedule and the workload (default: random, printed)
 *   --nodes N         node processes (default 3)
 *   --duration SEC    seconds of fault injection (default 60)
 *   --partitions K    Raft groups (default: nodes)
 *   --clients C       lock clients (default 16)
 *   --resources R     hot resources, each in both durabilities (default: max(3, partitions))
 *   --quiet           no progress lines, only the summary
 *
 * Exit code 1 when a checker found a violation: the summary prints the seed and history excerpts,
 * and the whole history and clock samples go to a JSON file in the temp dir (its path is printed).
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatReport, runChaos, type ChaosOptions } from './harness/chaos.js';

function integer(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} ${value}: expected a non-negative integer`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      nodes: { type: 'string' },
      duration: { type: 'string' },
      partitions: { type: 'string' },
      clients: { type: 'string' },
      resources: { type: 'string' },
      quiet: { type: 'boolean', default: false },
    },
  });
  const seed = integer('seed', values.seed, Math.floor(Math.random() * 2 ** 31));
  const nodes = integer('nodes', values.nodes, 3);
  const durationS = integer('duration', values.duration, 60);
  const options: ChaosOptions = { seed, nodes, durationMs: durationS * 1000 };
  if (values.partitions !== undefined) options.partitions = integer('partitions', values.partitions, nodes);
  if (values.clients !== undefined) options.clients = integer('clients', values.clients, 16);
  if (values.resources !== undefined) options.resources = integer('resources', values.resources, 3);
  const started = performance.now();
  if (!values.quiet) {
    options.log = (line) => console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`);
  }
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  options.signal = abort.signal;
  console.log(`chaos: seed ${seed}, ${nodes} nodes, ${durationS} s of faults`);
  const report = await runChaos(options);
  console.log(formatReport(report));
  const again = ['--seed', seed, '--nodes', nodes, '--duration', durationS,
    ...(['partitions', 'clients', 'resources'] as const).flatMap((k) => (values[k] === undefined ? [] : [`--${k}`, values[k]]))].join(' ');
  if (report.violations.length === 0) return 0;
  const dump = join(tmpdir(), `raftlock-chaos-${seed}-${Date.now()}.json`);
  const { history, clocks, ...rest } = report;
  writeFileSync(dump, JSON.stringify({ report: rest, history, clocks }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  console.log(`history and clock samples: ${dump}`);
  console.log(`reproduce the run's shape with: npm run chaos -- ${again}`);
  return 1;
}

main().then((code) => process.exit(code), (error: unknown) => {
  console.error(error);
  process.exit(2);
});
