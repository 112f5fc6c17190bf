import type { LockService, Maybe } from '../lock/service.js';
import type { CommandContext } from './spec.js';

/** Redis Cluster's reply to a multi-key command whose keys live in different partitions. */
export const CROSSSLOT_ERROR = "CROSSSLOT Keys in request don't hash to the same slot";

/** The one partition's service all keys belong to, or undefined (after replying CROSSSLOT) if they span several. */
export function serviceForKeys(ctx: CommandContext, keys: readonly string[]): LockService | undefined {
  const partition = ctx.server.partitionOf(keys[0]!);
  for (let i = 1; i < keys.length; i++) {
    if (ctx.server.partitionOf(keys[i]!) !== partition) {
      ctx.reply.error(CROSSSLOT_ERROR);
      return undefined;
    }
  }
  return ctx.server.services[partition]!;
}

/** Each partition's leader (null while it has none); on a single node, this node leads them all. */
export function partitionLeaders(ctx: CommandContext): (string | null)[] {
  const cluster = ctx.server.cluster;
  const self = ctx.server.config.nodeId;
  return ctx.server.services.map((_, p) => (cluster === undefined ? self : cluster.leaderOf(p)));
}

/**
 * The sum of one number from every partition (some may need the log first);
 * in a cluster, from the partitions this node leads, as a Redis Cluster node
 * counts the keys of the slots it serves.
 */
export function sumOverPartitions(ctx: CommandContext, each: (service: LockService) => Maybe<number>): Maybe<number> {
  const leaders = partitionLeaders(ctx);
  const served = ctx.server.services.filter((_, p) => leaders[p] === ctx.server.config.nodeId);
  const values = served.map(each);
  if (values.every((v) => typeof v === 'number')) return (values as number[]).reduce((a, b) => a + b, 0);
  return Promise.all(values).then((all) => all.reduce((a, b) => a + b, 0));
}
