/**
 * Runs random seeds for `npm test`. The seeds run in child processes of the
 * CLI (main.ts), one per core: tap's process-info hooks slow promise-heavy
 * code such as the replica's Ready loop by half, and tap runs one test file at
 * a time. Every failure names its seed and how to reproduce it.
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

/** Seeds per `npm test`; override with RAFTLOCK_SIM_SEEDS (and RAFTLOCK_SIM_FROM for the first seed). */
export const SEEDS_DEFAULT = 300;

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
const LOADER = fileURLToPath(new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url));

export interface BatchResult {
  from: number;
  count: number;
  code: number | null;
  /** The CLI's output: one summary line per seed, violations and `reproduce with:` lines for failures. */
  output: string;
  failedSeeds: number[];
  msPerSeed: number;
}

export function seedRange(): { from: number; count: number } {
  return {
    from: Number(process.env['RAFTLOCK_SIM_FROM'] ?? 1),
    count: Number(process.env['RAFTLOCK_SIM_SEEDS'] ?? SEEDS_DEFAULT),
  };
}

/** Runs seeds from..from+count-1 split over `jobs` child processes. */
export async function runSeedsInChildren(from: number, count: number, jobs = Math.max(1, availableParallelism())): Promise<BatchResult[]> {
  const per = Math.ceil(count / jobs);
  const runs: Promise<BatchResult>[] = [];
  for (let start = from; start < from + count; start += per) runs.push(runChild(start, Math.min(per, from + count - start)));
  return Promise.all(runs);
}

function runChild(from: number, count: number): Promise<BatchResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key !== 'NODE_OPTIONS' && !key.startsWith('_TAPJS_')) env[key] = value;
  }
  const child = spawn(process.execPath, ['--import', LOADER, MAIN, '--seeds', String(count), '--from', String(from)], {
    env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const failedSeeds = [...output.matchAll(/^seed (\d+): VIOLATION/gm)].map((m) => Number(m[1]));
      const perSeed = /; (\d+) ms\/seed$/m.exec(output);
      resolve({ from, count, code, output, failedSeeds, msPerSeed: perSeed === null ? NaN : Number(perSeed[1]) });
    });
  });
}
