// Partition leadership as the nodes report it (INFO raft), for the cluster benchmarks: who leads
// which partition, whether every running node agrees, whether leadership is spread evenly; and a
// hash tag per partition, so that a benchmark can address each partition on purpose.
import type { ProcessCluster } from './cluster.js';
import { callOnce, ReplyError } from './resp-client.js';
import { keySlot, partitionOfKey } from '../../src/cluster/slots.js';

export interface PartitionView {
  role: string;
  term: number;
  /** The leader's node id, '' when this node knows none. */
  leader: string;
}

/** One node's view of every partition, in partition order. */
export async function raftInfo(port: number, timeoutMs = 2000): Promise<PartitionView[]> {
  const reply = await callOnce(port, ['INFO', 'raft'], timeoutMs);
  if (typeof reply !== 'string') throw new Error(`INFO raft answered ${reply instanceof ReplyError ? reply.message : JSON.stringify(reply)}`);
  return [...reply.matchAll(/^partition(\d+):role=(\w+),term=(\d+),leader=([^,]*),/gm)]
    .map((m) => ({ role: m[2]!, term: Number(m[3]), leader: m[4]! }));
}

export interface Leadership {
  /** The leader of each partition. */
  leaders: string[];
  /** Each partition's term. */
  terms: number[];
}

/** The leaders if every running node reports the same running leader for every partition, else null. */
export async function agreedLeadership(cluster: ProcessCluster): Promise<Leadership | null> {
  const running = cluster.running();
  const views = await Promise.all(running.map((id) => raftInfo(cluster.node(id).port).catch(() => null)));
  const first = views[0];
  if (first == null || first.length === 0) return null;
  for (const view of views) {
    if (view === null || view.length !== first.length) return null;
    for (let p = 0; p < first.length; p++) {
      if (view[p]!.leader !== first[p]!.leader || !running.includes(first[p]!.leader)) return null;
    }
  }
  // A node's term may lag a moment behind the leader's; the leader's own view is the reference.
  const terms = first.map((_, p) => Math.max(...views.map((v) => v![p]!.term)));
  return { leaders: first.map((v) => v.leader), terms };
}

/** Whether every running node leads floor(P/N) or ceil(P/N) partitions. */
export function isBalanced(leaders: string[], running: string[]): boolean {
  const low = Math.floor(leaders.length / running.length);
  return running.every((id) => {
    const led = leaders.filter((l) => l === id).length;
    return led === low || led === low + 1;
  });
}

/** Whether partition p is led by its preferred leader, the (p mod N)-th of the sorted node ids, where the nodes move it once all are up. */
export function isPreferred(leaders: string[], ids: string[]): boolean {
  const sorted = [...ids].sort();
  return leaders.every((leader, p) => leader === sorted[p % sorted.length]);
}

/**
 * Waits until the running nodes agree on the leaders and (if asked) leadership is balanced, or
 * every partition is led by its preferred leader (no leadership transfer is still to come), and it
 * stays so for stableMs (no leader or term changes).
 */
export async function waitForLeadership(
  cluster: ProcessCluster,
  options: { balanced: boolean; preferred?: boolean; stableMs: number; timeoutMs: number },
): Promise<Leadership> {
  const deadline = Date.now() + options.timeoutMs;
  let since: number | null = null;
  let last: Leadership | null = null;
  let lastText = 'no answer yet';
  for (;;) {
    const now = await agreedLeadership(cluster);
    const ok = now !== null && (!options.balanced || isBalanced(now.leaders, cluster.running())) &&
      (options.preferred !== true || isPreferred(now.leaders, cluster.nodes.map((n) => n.id)));
    if (ok && last !== null && JSON.stringify(now) === JSON.stringify(last)) {
      if (since !== null && Date.now() - since >= options.stableMs) return now!;
    } else {
      since = ok ? Date.now() : null;
    }
    last = ok ? now : null;
    if (now !== null) lastText = `leaders ${now.leaders.join(',')}, terms ${now.terms.join(',')}`;
    if (Date.now() > deadline) {
      throw new Error(`no ${options.balanced ? 'balanced, ' : ''}${options.preferred === true ? 'preferred, ' : ''}stable leadership within ${options.timeoutMs} ms (last: ${lastText})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Why a measurement on the cluster does not count, or null: throws if a node died; else leadership
 * unsettled, a partition's leader or term changed since `before`, or the first error reply seen.
 */
export async function runProblem(cluster: ProcessCluster, before: Leadership, error: string | null): Promise<string | null> {
  const dead = cluster.nodes.filter((n) => n.child === null).map((n) => n.id);
  if (dead.length > 0) throw new Error(`raftlock node(s) ${dead.join(', ')} died during the benchmark:\n${dead.map((id) => cluster.node(id).log.slice(-20).join('\n')).join('\n')}`);
  const after = await agreedLeadership(cluster);
  const changed = after === null ? null : changedPartitions(before, after);
  if (changed === null) return 'leadership unsettled after the run';
  if (changed.length > 0) return `leader or term changed in partition(s) ${changed.join(', ')}`;
  if (error !== null) return `error replies, e.g. ${error}`;
  return null;
}

/** Waits until every partition grants EPHEMERAL locks through the node at `port` (none is in its post-election wait). */
export async function waitEphemeralReady(port: number, tags: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const [p, tag] of tags.entries()) {
    for (;;) {
      const reply = await callOnce(port, ['KLOCK', `ready{${tag}}:${Date.now()}`, 'o', 1000, 'EPHEMERAL']);
      if (!(reply instanceof ReplyError)) break;
      if (Date.now() > deadline) throw new Error(`partition ${p} still refuses EPHEMERAL locks after ${timeoutMs} ms: ${reply.message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** The partitions whose leader or term differs between two observations. */
export function changedPartitions(before: Leadership, after: Leadership): number[] {
  return before.leaders.flatMap((leader, p) => (leader !== after.leaders[p] || before.terms[p] !== after.terms[p] ? [p] : []));
}

/**
 * For each partition, a hash tag whose keys live there (`x{tag}` has the tag's slot), found with
 * raftlock's slot function and checked against the node: CLUSTER KEYSLOT gives the same slot and
 * that slot lies in the partition's range in CLUSTER SLOTS (ranges in partition order).
 */
export async function partitionTags(port: number, partitions: number, prefix: string): Promise<string[]> {
  const tags: (string | undefined)[] = new Array(partitions).fill(undefined);
  let found = 0;
  for (let i = 0; found < partitions; i++) {
    if (i > 1_000_000) throw new Error(`no hash tag found for some of ${partitions} partitions`);
    const tag = `${prefix}${i}`;
    const p = partitionOfKey(`{${tag}}`, partitions);
    if (tags[p] === undefined) {
      tags[p] = tag;
      found += 1;
    }
  }
  const slots = await callOnce(port, ['CLUSTER', 'SLOTS']);
  if (!Array.isArray(slots) || slots.length !== partitions) throw new Error(`CLUSTER SLOTS lists ${Array.isArray(slots) ? slots.length : 'no'} ranges, expected ${partitions}`);
  const ranges = (slots as [number, number][]).map(([first, last]) => ({ first, last })).sort((a, b) => a.first - b.first);
  for (let p = 0; p < partitions; p++) {
    const slot = await callOnce(port, ['CLUSTER', 'KEYSLOT', `{${tags[p]}}`]);
    const range = ranges[p]!;
    if (typeof slot !== 'number' || slot !== keySlot(`{${tags[p]}}`) || slot < range.first || slot > range.last) {
      throw new Error(`hash tag ${tags[p]}: CLUSTER KEYSLOT says ${JSON.stringify(slot)}, not in partition ${p}'s range ${range.first}-${range.last}`);
    }
  }
  return tags as string[];
}
