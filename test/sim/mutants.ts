/**
 * Mutation check of the simulator: plants one known bug at a time in a copy of
 * the production sources and runs seeds until the simulator reports a
 * violation. A mutant that survives every seed means the simulator (or its
 * checkers) would miss that bug.
 *
 *   npm run sim:mutants -- [--seeds-max N] [--only NAME]
 *
 * The copy lives in a temp dir (node_modules linked); the working tree is never changed.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Edit {
  file: string;
  find: string;
  replace: string;
}

interface Mutant {
  name: string;
  edits: Edit[];
}

const MUTANTS: Mutant[] = [
  {
    name: 'commit an old-term entry by counting replicas',
    edits: [{ file: 'raft/leader.ts', find: 'if (index <= r.log.committed || r.log.termOrZero(index) !== r.term) return false;', replace: 'if (index <= r.log.committed) return false;' }],
  },
  {
    name: 'skip the vote persistence',
    edits: [{ file: 'src/cluster/replica.ts', find: "records.push({ type: 'hardState', group: this.options.group, hardState: rd.hardState });", replace: "records.push({ type: 'hardState', group: this.options.group, hardState: { ...rd.hardState, vote: null } });" }],
  },
  {
    name: 'grant a vote to a shorter log',
    edits: [{ file: 'raft/raft.ts', find: 'const grant = canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);', replace: 'const grant = canVote;' }],
  },
  {
    name: 'acknowledge appends before the fsync',
    // Every node's messages, a follower's acknowledgements and votes included, leave before its write (not only a leader's).
    edits: [{ file: 'src/cluster/replica.ts', find: "const sendFirst = rd.messages.length > 0 && this.role === 'leader' && rd.snapshot === undefined\n      && (rd.softState === undefined || rd.softState.role === 'leader');", replace: 'const sendFirst = rd.messages.length > 0;' }],
  },
  {
    name: 'serve a read without ReadIndex or lease',
    edits: [
      { file: 'src/cluster/replica.ts', find: 'if (this.raw.leaseValid() && this.applied >= this.raw.committedIndex()) return Promise.resolve(fn(this.appliedLogTimeMs));', replace: 'return Promise.resolve(fn(this.appliedLogTimeMs));' },
      // The staleness tick also goes through the log; without ReadIndex it must go too.
      { file: 'src/cluster/replica.ts', find: 'if (this.logNow() - this.appliedLogTimeMs > (this.options.readStalenessMs ?? READ_STALENESS_MS)) {', replace: 'if (this.logNow() < 0) {' },
    ],
  },
  {
    name: 'apply a committed entry twice after a restart',
    edits: [{ file: 'src/cluster/replica.ts', find: 'this.applied = this.storage.snapshotMeta.index;', replace: 'this.applied = 0;' }],
  },
  {
    name: 'install a snapshot without loading its lock table',
    edits: [{ file: 'src/cluster/replica.ts', find: '      this.restoreMachine(rd.snapshot.data);\n', replace: '' }],
  },
  {
    name: 'answer a write that changes nothing without the leader lease',
    edits: [{ file: 'src/cluster/replica.ts', find: 'if (this.failed !== null || !this.isLeader || !this.raw.leaseValid() || this.applied < this.raw.committedIndex()) return undefined;', replace: 'if (this.failed !== null || !this.isLeader) return undefined;' }],
  },
  {
    name: 'grant EPHEMERAL locks right after a leader change (no lock-delay)',
    edits: [{ file: 'src/cluster/replica.ts', find: 'if (nowMs < this.inheritedHorizonMs) throw new LockDelayError(this.inheritedHorizonMs - nowMs);', replace: '' }],
  },
  {
    name: 'grant an EPHEMERAL lease past the committed horizon',
    edits: [{ file: 'src/cluster/replica.ts', find: 'if (untilMs <= horizonMs) {', replace: 'if (untilMs <= horizonMs || untilMs > 0) {' }],
  },
];

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LOADER = join(ROOT, 'node_modules', '@tapjs', 'typescript', 'dist', 'esm', 'import.mjs');

function copyTree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'raftlock-mutant-'));
  for (const part of ['raft', 'resp', 'src', 'test', 'types', 'package.json', 'tsconfig.json']) {
    cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

/** Every named scenario (SCENARIOS in scenarios.ts, not imported: the working tree's sources need not compile). */
const SCENARIOS = [
  'partitioned-mid-append', 'crash-before-fsync', 'figure-8', 'figure-8-exact', 'crash-after-vote',
  'stale-leader-partitioned', 'stale-leader-paused', 'snapshot-catch-up',
];

/** The first failing seed of one batch of the random simulation (scenario null) or a named scenario. */
function batchFailure(dir: string, scenario: string | null, from: number, count: number): number | null {
  const args = ['--import', LOADER, 'test/sim/main.ts', '--seeds', String(count), '--from', String(from)];
  if (scenario !== null) args.push('--scenario', scenario);
  // Transpiling without a type check halves each child's start-up.
  const env = { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' };
  const run = spawnSync(process.execPath, args, { cwd: dir, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const summary = /seeds from \d+: \d+ ok, (\d+) failed(?: \(([\d, ]+)\))?/.exec(run.stdout);
  if (summary === null) throw new Error(`the simulator did not finish (exit ${run.status}):\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-2000)}`);
  return Number(summary[1]) > 0 ? Number(summary[2]!.split(',')[0]) : null;
}

/** Most seeds of one run given to one simulator process. */
const CHUNK_SEEDS_MAX = 16;

/**
 * Seeds in chunks of 1, 2, 4, ... seeds, each chunk through the random run
 * and every named scenario, until something fails: a mutant that one run
 * catches at its first seeds costs only as many seeds of every other run.
 */
function firstFailure(dir: string, seedsMax: number): { seed: number; run: string; seedsRun: number } | null {
  let seedsRun = 0;
  let chunk = 1;
  for (let from = 1; from <= seedsMax; from += chunk, chunk = Math.min(2 * chunk, CHUNK_SEEDS_MAX)) {
    const count = Math.min(chunk, seedsMax - from + 1);
    for (const scenario of [null, ...SCENARIOS]) {
      seedsRun += count;
      const seed = batchFailure(dir, scenario, from, count);
      if (seed !== null) return { seed, run: scenario ?? 'random', seedsRun };
    }
  }
  return null;
}

function main(): number {
  const args = process.argv.slice(2);
  const at = args.indexOf('--seeds-max');
  const seedsMax = at >= 0 ? Number(args[at + 1]) : 300;
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
  let survivors = 0;
  for (const mutant of MUTANTS.filter((m) => only === undefined || m.name.includes(only))) {
    const dir = copyTree();
    try {
      for (const edit of mutant.edits) {
        const path = join(dir, edit.file);
        const source = readFileSync(path, 'utf8');
        if (source.split(edit.find).length !== 2) throw new Error(`mutant "${mutant.name}": the text to replace is not in ${edit.file} exactly once`);
        writeFileSync(path, source.replace(edit.find, edit.replace));
      }
      const started = Date.now();
      const found = firstFailure(dir, seedsMax);
      const took = ((Date.now() - started) / 1000).toFixed(0);
      if (found === null) survivors += 1;
      console.log(found === null
        ? `SURVIVED  ${mutant.name}: no violation in seeds 1..${seedsMax} of the random run and of each scenario (${took} s)`
        : `caught    ${mutant.name}: ${found.run} seed ${found.seed}, after ${found.seedsRun} seeds run (${took} s)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(survivors === 0 ? 'every mutant was caught' : `${survivors} mutant(s) survived`);
  return survivors === 0 ? 0 : 1;
}

process.exitCode = main();
