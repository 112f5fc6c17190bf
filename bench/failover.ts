// Failover benchmark: a 3-node raftlock cluster with clients writing KLOCKs to every partition through
// the nodes that survive; again and again a node leading some partitions is killed with kill -9, and
// for each partition it led the time from the kill to the first successful PERSISTENT write, and to
// the first EPHEMERAL lock granted on a fresh resource, is measured. The node is restarted and the
// leaders rebalanced before the next kill. Writes the "failover" section of bench/RESULTS-cluster.md.
// Reproduce: npm run bench:failover   (= npm run build && node dist/bench/failover.js [--kills N] ...)
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ProcessCluster } from './lib/cluster.js';
import { partitionTags, waitForLeadership } from './lib/leaders.js';
import { RAFTLOCK_MAIN, REPO_ROOT, SERVER_COMMAND } from './lib/proc.js';
import { machineFacts, writeSection } from './lib/report.js';
import { RespClient, ReplyError, type Reply } from './lib/resp-client.js';
import { median, quantile } from './lib/stats.js';
import { positiveInt } from './lib/args.js';

const NODES = 3;
const OWNER = 'fo';
const PERSISTENT_TTL_MS = 30_000;
/** Unanswered workload requests on a connection before the workload skips a send (a hung leader must not grow a queue). */
const IN_FLIGHT_MAX = 1000;
/** The kinds of write the workload sends to every partition. */
type Kind = 'PERSISTENT' | 'EPHEMERAL';
const KINDS: Kind[] = ['PERSISTENT', 'EPHEMERAL'];
/** The target for the PERSISTENT recovery time. */
const TARGET_P99_MS = 1500;

interface Options {
  partitions: number;
  kills: number;
  intervalMs: number;
  ephemeralTtlMs: number;
  recoveryTimeoutMs: number;
  out: string;
  quick: boolean;
}

function parseOptions(argv: string[]): Options {
  const program = new Command()
    .name('npm run bench:failover --')
    .description('kill -9 partition leaders of a 3-node raftlock cluster under load; writes bench/RESULTS-cluster.md')
    .option('--partitions <n>', 'raftlock partitions (Raft groups)', positiveInt, 8)
    .option('--kills <n>', 'leader kills', positiveInt, 20)
    .option('--interval-ms <n>', 'each partition gets one PERSISTENT and one EPHEMERAL KLOCK this often', positiveInt, 10)
    .option('--ephemeral-ttl-ms <n>', 'ttl of the workload\'s EPHEMERAL locks (how long a new leader must wait for them)', positiveInt, 2000)
    .option('--recovery-timeout-ms <n>', 'give up on a partition recovering after this long', positiveInt, 30_000)
    .option('--quick', 'a short check that everything works: 2 kills; writes bench/out/RESULTS-cluster-quick.md')
    .option('--out <file>', 'results file (default bench/RESULTS-cluster.md)')
    .parse(argv);
  const raw = program.opts<{ partitions: number; kills: number; intervalMs: number; ephemeralTtlMs: number; recoveryTimeoutMs: number; quick?: boolean; out?: string }>();
  const quick = raw.quick === true;
  return {
    partitions: raw.partitions,
    kills: quick && program.getOptionValueSource('kills') !== 'cli' ? 2 : raw.kills,
    intervalMs: raw.intervalMs,
    ephemeralTtlMs: raw.ephemeralTtlMs,
    recoveryTimeoutMs: raw.recoveryTimeoutMs,
    out: join(REPO_ROOT, raw.out ?? (quick ? join('bench', 'out', 'RESULTS-cluster-quick.md') : join('bench', 'RESULTS-cluster.md'))),
    quick,
  };
}

/** What one kill did to one partition the killed node led. */
interface Recovery {
  kill: number;
  victim: string;
  partition: number;
  /** ms from the kill to the first successful write of that kind sent after it; null: not within the timeout. */
  persistentMs: number | null;
  ephemeralMs: number | null;
  /** The wait the new leader announced in its first "EPHEMERAL locks are unavailable for N ms" reply. */
  announcedWaitMs: number | null;
}

interface KillReport {
  kill: number;
  victim: string;
  led: number[];
  recoveries: Recovery[];
  /** Error replies during the kill's window, by their first words. */
  errors: Map<string, number>;
  /** The longest time without a successful write of a kind on a partition the victim did not lead. */
  othersGapMaxMs: number;
  /** From the restart until the leaders were balanced again. */
  rebalancedMs: number;
}

/** What the workload watches for while a kill is measured. */
interface Watch {
  killedAt: number;
  led: Set<number>;
  firstOk: Record<Kind, Map<number, number>>;
  announced: Map<number, number>;
  errors: Map<string, number>;
  othersGapMaxMs: number;
}

/**
 * The continuous load: every intervalMs, one PERSISTENT and one EPHEMERAL KLOCK on a fresh key of
 * each partition, sent through the node the partition is routed to (never the one about to be
 * killed), without waiting for earlier replies.
 */
class Workload {
  private readonly clients = new Map<string, RespClient>();
  private readonly connecting = new Set<string>();
  private routes: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  readonly lastOk: Record<Kind, Float64Array>;
  skipped = 0;
  watch: Watch | null = null;

  constructor(private readonly cluster: ProcessCluster, private readonly tags: string[], private readonly options: Options) {
    this.lastOk = { PERSISTENT: new Float64Array(tags.length), EPHEMERAL: new Float64Array(tags.length) };
  }

  /** Routes every partition through the nodes other than `avoid`, alternating between them. */
  route(avoid: string): void {
    const via = this.cluster.nodes.map((n) => n.id).filter((id) => id !== avoid);
    this.routes = this.tags.map((_, p) => via[p % via.length]!);
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.options.intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
    for (const client of this.clients.values()) client.close();
  }

  /** Whether every partition had a successful write of each kind within the last withinMs. */
  healthy(withinMs: number): boolean {
    const now = performance.now();
    return KINDS.every((kind) => this.lastOk[kind].every((t) => t > 0 && now - t <= withinMs));
  }

  /**
   * The connection for one partition and kind through one node: each has its own, because replies on
   * a connection come in order, so a request stuck on a leaderless partition would hold back others.
   */
  private client(id: string, p: number, kind: Kind): RespClient | undefined {
    const name = `${id}/${p}/${kind}`;
    const client = this.clients.get(name);
    if (client !== undefined && !client.broken) return client;
    if (!this.connecting.has(name) && this.cluster.node(id).child !== null) {
      this.connecting.add(name);
      RespClient.connect(this.cluster.node(id).port, '127.0.0.1', 2000)
        .then((c) => this.clients.set(name, c), () => undefined)
        .finally(() => this.connecting.delete(name));
    }
    return undefined;
  }

  private tick(): void {
    for (let p = 0; p < this.tags.length; p++) {
      for (const kind of KINDS) {
        const client = this.client(this.routes[p]!, p, kind);
        if (client === undefined || client.inFlight >= IN_FLIGHT_MAX) {
          this.skipped += 1;
          continue;
        }
        const key = `${kind === 'PERSISTENT' ? 'w' : 'e'}{${this.tags[p]}}:${this.seq++}`;
        const ttlMs = kind === 'PERSISTENT' ? PERSISTENT_TTL_MS : this.options.ephemeralTtlMs;
        const sentAt = performance.now();
        client.send(['KLOCK', key, OWNER, ttlMs, kind], (reply) => this.onReply(p, kind, sentAt, reply));
      }
    }
  }

  private onReply(p: number, kind: Kind, sentAt: number, reply: Reply | Error): void {
    const now = performance.now();
    const watch = this.watch;
    const ok = !(reply instanceof Error) && !(reply instanceof ReplyError);
    if (!ok) {
      if (watch === null) return;
      const text = reply.message;
      const code = text.replace(/\d+/g, 'N').split(' ').slice(0, 7).join(' ');
      watch.errors.set(code, (watch.errors.get(code) ?? 0) + 1);
      const announced = /unavailable for (\d+) ms/.exec(text);
      if (announced !== null && watch.led.has(p) && !watch.announced.has(p)) watch.announced.set(p, Number(announced[1]));
      return;
    }
    if (watch !== null) {
      if (!watch.led.has(p)) watch.othersGapMaxMs = Math.max(watch.othersGapMaxMs, now - Math.max(this.lastOk[kind][p]!, watch.killedAt));
      else if (sentAt >= watch.killedAt && !watch.firstOk[kind].has(p)) watch.firstOk[kind].set(p, now - watch.killedAt);
    }
    this.lastOk[kind][p] = now;
  }
}

async function waitUntil(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The next node, from `after` on in id order, that leads at least one partition. */
function nextVictim(leaders: string[], nodeIds: string[], kill: number): string {
  for (let i = 0; i < nodeIds.length; i++) {
    const id = nodeIds[(kill + i) % nodeIds.length]!;
    if (leaders.includes(id)) return id;
  }
  throw new Error('no node leads a partition');
}

async function killOnce(cluster: ProcessCluster, workload: Workload, kill: number, options: Options): Promise<KillReport> {
  const nodeIds = cluster.nodes.map((n) => n.id);
  let leadership = await waitForLeadership(cluster, { balanced: true, stableMs: 1000, timeoutMs: 120_000 });
  const victim = nextVictim(leadership.leaders, nodeIds, kill);
  workload.route(victim);
  // Steady state through the survivors, EPHEMERAL locks of ttl ephemeralTtlMs held on every leader.
  await waitUntil('no steady writes to every partition', 60_000, () => workload.healthy(200));
  await new Promise((r) => setTimeout(r, options.ephemeralTtlMs));
  await waitUntil('no steady writes to every partition', 60_000, () => workload.healthy(200));
  leadership = await waitForLeadership(cluster, { balanced: true, stableMs: 0, timeoutMs: 10_000 });
  const led = leadership.leaders.flatMap((l, p) => (l === victim ? [p] : []));
  const watch: Watch = {
    killedAt: performance.now(), led: new Set(led), firstOk: { PERSISTENT: new Map(), EPHEMERAL: new Map() },
    announced: new Map(), errors: new Map(), othersGapMaxMs: 0,
  };
  workload.watch = watch;
  await cluster.kill(victim);
  const deadline = watch.killedAt + options.recoveryTimeoutMs;
  while (performance.now() < deadline && !KINDS.every((k) => led.every((p) => watch.firstOk[k].has(p)))) {
    await new Promise((r) => setTimeout(r, 20));
  }
  workload.watch = null;
  const endedAt = performance.now();
  for (let p = 0; p < options.partitions; p++) {
    if (watch.led.has(p)) continue;
    for (const kind of KINDS) watch.othersGapMaxMs = Math.max(watch.othersGapMaxMs, endedAt - Math.max(workload.lastOk[kind][p]!, watch.killedAt));
  }
  const recoveries = led.map((partition): Recovery => ({
    kill, victim, partition,
    persistentMs: watch.firstOk.PERSISTENT.get(partition) ?? null,
    ephemeralMs: watch.firstOk.EPHEMERAL.get(partition) ?? null,
    announcedWaitMs: watch.announced.get(partition) ?? null,
  }));
  const restartedAt = performance.now();
  await cluster.startNode(victim);
  await waitForLeadership(cluster, { balanced: true, stableMs: 0, timeoutMs: 120_000 });
  const rebalancedMs = performance.now() - restartedAt;
  return { kill, victim, led, recoveries, errors: watch.errors, othersGapMaxMs: watch.othersGapMaxMs, rebalancedMs };
}

const fmtMs = (n: number | null): string => (n === null ? 'timeout' : Number.isFinite(n) ? String(Math.round(n)) : 'n/a');

interface Distribution {
  count: number;
  timeouts: number;
  p50: number;
  p99: number;
  max: number;
}

function distribution(values: (number | null)[]): Distribution {
  const done = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  const timeouts = values.length - done.length;
  return { count: values.length, timeouts, p50: quantile(done, 0.5), p99: timeouts > 0 ? Infinity : quantile(done, 0.99), max: timeouts > 0 ? Infinity : (done.at(-1) ?? NaN) };
}

const fmtDist = (d: Distribution): string => `${d.count} | ${d.timeouts} | ${fmtMs(d.p50)} | ${Number.isFinite(d.p99) ? fmtMs(d.p99) : 'timeout'} | ${Number.isFinite(d.max) ? fmtMs(d.max) : 'timeout'}`;

function resultsMarkdown(reports: KillReport[], options: Options, invocation: string): string {
  const all = reports.flatMap((r) => r.recoveries);
  const persistent = distribution(all.map((r) => r.persistentMs));
  const ephemeral = distribution(all.map((r) => r.ephemeralMs));
  const announced = all.map((r) => r.announcedWaitMs).filter((v): v is number => v !== null);
  const errors = new Map<string, number>();
  for (const r of reports) for (const [k, v] of r.errors) errors.set(k, (errors.get(k) ?? 0) + v);
  const met = Number.isFinite(persistent.p99) && persistent.p99 <= TARGET_P99_MS;
  return [
    '## Failover: kill -9 of a partition leader under load',
    '',
    `Produced by \`${invocation}\` (\`npm run bench:failover\` runs \`npm run build && node dist/bench/failover.js\`) on ${new Date().toISOString()}.`,
    '',
    '### Machine',
    '',
    ...machineFacts([]),
    '',
    'The three nodes and the load generator share these cores. With the default --election-timeout-ms of 500, Raft ticks every 50 ms and a follower starts an election after 10–20 ticks (0.5–1 s) ' +
      'without hearing from its leader (randomized), with PreVote and CheckQuorum, so most of a failover is that timeout.',
    '',
    '### Method',
    '',
    `A ${NODES}-node cluster with ${options.partitions} partitions (\`${SERVER_COMMAND} --node-id nI ... --partitions ${options.partitions}\`, started by bench/lib/cluster.ts). ` +
      `Every ${options.intervalMs} ms the workload sends, to each partition, one \`KLOCK <fresh key> ${OWNER} ${PERSISTENT_TTL_MS} PERSISTENT\` and one ` +
      `\`KLOCK <fresh key> ${OWNER} ${options.ephemeralTtlMs} EPHEMERAL\` (EPHEMERAL locks of ${options.ephemeralTtlMs} ms: the lease a new leader must wait out), ` +
      'without waiting for earlier replies. A partition\'s keys carry a hash tag chosen for it (checked with CLUSTER KEYSLOT against the ranges of CLUSTER SLOTS). ' +
      'Requests go through the two nodes that are not about to be killed (partitions alternate between them); they forward to the leaders. ' +
      'Each partition and kind has its own connection: replies on a connection come in order, so a request waiting on a leaderless partition would otherwise hold back the others.',
    '',
    `Each of ${options.kills} rounds: wait until the nodes agree on the leaders, every node leads ${Math.floor(options.partitions / NODES)} or ${Math.ceil(options.partitions / NODES)} ` +
      `partitions and that has held for 1 s; wait until every partition takes both kinds of write, then ${options.ephemeralTtlMs} ms more (so EPHEMERAL locks of the full ttl are held); ` +
      'pick the next node (n1, n2, n3, n1, ...) that leads a partition and kill it with SIGKILL; then, for each partition it led, measure the time from the kill to the ' +
      'first successful reply to a write *sent after the kill*, for each kind (within ' +
      `${options.recoveryTimeoutMs} ms, else "timeout"); restart the node on its data dir, and let balancing hand it its partitions back. ` +
      `The workload's period (${options.intervalMs} ms) bounds the resolution.`,
    '',
    '### Summary',
    '',
    '| write after the kill | partitions measured | timeouts | p50 ms | p99 ms | max ms |',
    '|---|---:|---:|---:|---:|---:|',
    `| first PERSISTENT KLOCK granted | ${fmtDist(persistent)} |`,
    `| first EPHEMERAL KLOCK granted (fresh resource, workload ttl ${options.ephemeralTtlMs} ms) | ${fmtDist(ephemeral)} |`,
    '',
    `Target (issue): PERSISTENT p99 ≤ ${TARGET_P99_MS} ms: ${met ? 'met' : 'missed'}. ` +
      `With ${persistent.count} samples the p99 is ${persistent.count < 100 ? 'the largest or nearly the largest value' : 'the 99th-percentile value'} (nearest rank). ` +
      `A new leader refuses EPHEMERAL locks until the horizon the old leader committed (its longest lease plus 1 s of slack) has passed; ` +
      (announced.length > 0 ? `its first refusal announced a wait of ${Math.round(median(announced))} ms (median over the partitions where one was seen).` : 'no such refusal was seen.'),
    '',
    `Partitions the killed node did not lead should not notice the kill. The longest time one of them went without a successful write of a kind, ` +
      `from the kill to the end of the round: median over the rounds ${Math.round(median(reports.map((r) => r.othersGapMaxMs)))} ms, ` +
      `max ${Math.round(Math.max(0, ...reports.map((r) => r.othersGapMaxMs)))} ms (the workload's period is ${options.intervalMs} ms). ` +
      `From the restart of the killed node until the leaders were balanced again (INFO raft on every node): median ${Math.round(median(reports.map((r) => r.rebalancedMs)))} ms, ` +
      `max ${Math.round(Math.max(0, ...reports.map((r) => r.rebalancedMs)))} ms (a returning node must stay connected 3 s before leadership moves back to it).`,
    '',
    'Error replies seen during the rounds (the workload retries by sending the next request):',
    '',
    ...(errors.size === 0 ? ['- none'] : [...errors].sort((a, b) => b[1] - a[1]).map(([k, v]) => `- ${v} × \`${k}…\``)),
    '',
    '### Every kill',
    '',
    '| kill | killed node | partition | PERSISTENT ms | EPHEMERAL ms | announced EPHEMERAL wait ms |',
    '|---:|---|---:|---:|---:|---:|',
    ...all.map((r) => `| ${r.kill + 1} | ${r.victim} | ${r.partition} | ${fmtMs(r.persistentMs)} | ${fmtMs(r.ephemeralMs)} | ${r.announcedWaitMs === null ? '—' : r.announcedWaitMs} |`),
  ].join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv);
  if (!existsSync(RAFTLOCK_MAIN)) throw new Error(`${RAFTLOCK_MAIN} does not exist: run npm run build (npm run bench:failover builds first)`);
  const invocation = `node dist/bench/failover.js ${process.argv.slice(2).join(' ')}`.trim();
  console.log(`${NODES}-node raftlock cluster, ${options.partitions} partitions, ${options.kills} kills; workload every ${options.intervalMs} ms per partition, EPHEMERAL ttl ${options.ephemeralTtlMs} ms`);
  const cluster = await ProcessCluster.start({ nodes: NODES, partitions: options.partitions });
  let workload: Workload | undefined;
  const shutdown = async (): Promise<void> => {
    workload?.stop();
    await cluster.close();
  };
  process.once('SIGINT', () => void shutdown().then(() => process.exit(130)));
  process.once('SIGTERM', () => void shutdown().then(() => process.exit(143)));
  const reports: KillReport[] = [];
  try {
    await waitForLeadership(cluster, { balanced: true, stableMs: 2000, timeoutMs: 60_000 });
    const tags = await partitionTags(cluster.node('n1').port, options.partitions, 'f');
    workload = new Workload(cluster, tags, options);
    workload.route('');
    workload.start();
    for (let kill = 0; kill < options.kills; kill++) {
      const report = await killOnce(cluster, workload, kill, options);
      reports.push(report);
      const each = report.recoveries.map((r) => `p${r.partition} ${fmtMs(r.persistentMs)}/${fmtMs(r.ephemeralMs)}`).join('  ');
      console.log(`kill ${kill + 1}/${options.kills}: ${report.victim} led ${report.led.length} partition(s); ms to first PERSISTENT/EPHEMERAL grant: ${each}; ` +
        `other partitions' longest gap ${Math.round(report.othersGapMaxMs)} ms; balanced again ${Math.round(report.rebalancedMs)} ms after the restart`);
    }
  } finally {
    await shutdown();
  }
  const all = reports.flatMap((r) => r.recoveries);
  for (const kind of KINDS) {
    const d = distribution(all.map((r) => (kind === 'PERSISTENT' ? r.persistentMs : r.ephemeralMs)));
    console.log(`${kind}: ${d.count} partition recoveries, ${d.timeouts} timeouts, p50 ${fmtMs(d.p50)} ms, p99 ${Number.isFinite(d.p99) ? fmtMs(d.p99) : 'timeout'} ms, max ${Number.isFinite(d.max) ? fmtMs(d.max) : 'timeout'} ms`);
  }
  console.log(`workload sends skipped (no connection or ${IN_FLIGHT_MAX} unanswered): ${workload?.skipped ?? 0}`);
  writeSection(options.out, { name: 'failover', title: '# raftlock cluster benchmarks', markdown: resultsMarkdown(reports, options, invocation), order: ['cluster', 'failover'] });
  console.log(`wrote the failover section of ${relative(process.cwd(), options.out) || options.out}`);
}

main().catch((error: unknown) => {
  console.error(`bench:failover failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
