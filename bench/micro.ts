// Micro-benchmarks without sockets: the RESP codec (bench/micro-resp.ts) and the lock state machine
// (bench/micro-lock.ts), each run in turn. Reproduce: npm run bench:micro
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface MicroResult {
  name: string;
  opsPerSec: number;
  rme: number;
  itemsPerSec?: number;
}

interface MicroModule {
  run?: () => Promise<MicroResult[]>;
}

const SUITES = [
  { title: 'RESP codec', source: 'bench/micro-resp.ts', module: './micro-resp.js' },
  { title: 'lock state machine', source: 'bench/micro-lock.ts', module: './micro-lock.js' },
];

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Runs one suite; returns false if it could not run. */
async function runSuite(suite: (typeof SUITES)[number]): Promise<boolean> {
  const url = new URL(suite.module, import.meta.url);
  console.log(`\n## ${suite.title} (${suite.source})\n`);
  if (!existsSync(fileURLToPath(url))) {
    console.log(`${suite.source} is not there (or not built yet): skipped.`);
    return false;
  }
  const loaded = (await import(url.href)) as MicroModule;
  if (typeof loaded.run !== 'function') {
    console.log(`${suite.source} does not export run(): skipped.`);
    return false;
  }
  const results = await loaded.run();
  console.log('');
  console.table(results.map((r) => ({
    benchmark: r.name,
    'ops/s': fmt(r.opsPerSec),
    '±%': r.rme.toFixed(2),
    ...(r.itemsPerSec === undefined ? {} : { 'items/s': fmt(r.itemsPerSec) }),
  })));
  return true;
}

async function main(): Promise<void> {
  console.log(`Node.js ${process.version}; reproduce with: npm run bench:micro`);
  let ran = 0;
  for (const suite of SUITES) {
    if (await runSuite(suite)) ran++;
  }
  if (ran === 0) {
    console.error('\nno micro-benchmark suite could run');
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  console.error(`bench:micro failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});
