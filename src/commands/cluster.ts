import { createHash } from 'node:crypto';
import { defineCommand, type CommandContext, type CommandSpec } from './spec.js';
import { helpCommand } from './help.js';
import { SLOT_COUNT, keySlot, slotRange } from '../cluster/slots.js';

/** The node's id in Redis Cluster's form (40 hex chars), derived from its node id. */
export function clusterNodeId(nodeId: string): string {
  return createHash('sha1').update(nodeId).digest('hex');
}

/** Where clients reach this node: the address they connected to (this node serves every slot). */
function endpoint(ctx: CommandContext): { host: string; port: number } {
  const at = ctx.client.laddr.lastIndexOf(':');
  const port = Number(ctx.client.laddr.slice(at + 1));
  // Without a usable local address (not TCP), fall back to the configured one.
  if (at <= 0 || !Number.isInteger(port) || port <= 0) return { host: ctx.server.config.bind, port: ctx.server.config.port };
  return { host: ctx.client.laddr.slice(0, at).replace(/^::ffff:/, ''), port };
}

function ranges(ctx: CommandContext): { first: number; last: number }[] {
  const partitions = ctx.server.services.length;
  return Array.from({ length: partitions }, (_, p) => slotRange(p, partitions));
}

function clusterSub(spec: Pick<CommandSpec, 'name' | 'summary' | 'arity' | 'handler'> & Partial<CommandSpec>): CommandSpec {
  return defineCommand({ since: '3.0.0', group: 'cluster', flags: ['stale'], aclCategories: ['@slow'], ...spec });
}

const subcommands: CommandSpec[] = [
  clusterSub({
    name: 'cluster|myid',
    summary: "Returns this node's cluster id (40 hex characters derived from --node-id).",
    arity: { min: 2, max: 2 },
    handler(ctx) {
      ctx.reply.bulk(clusterNodeId(ctx.server.config.nodeId));
    },
  }),
  clusterSub({
    name: 'cluster|info',
    summary: 'Returns the cluster state in Redis CLUSTER INFO form.',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      const lines = [
        'cluster_state:ok', `cluster_slots_assigned:${SLOT_COUNT}`, `cluster_slots_ok:${SLOT_COUNT}`, 'cluster_slots_pfail:0',
        'cluster_slots_fail:0', 'cluster_known_nodes:1', 'cluster_size:1', 'cluster_current_epoch:0', 'cluster_my_epoch:0',
        `cluster_partitions:${ctx.server.services.length}`,
      ];
      ctx.reply.bulk(lines.join('\r\n') + '\r\n');
    },
  }),
  clusterSub({
    name: 'cluster|slots',
    summary: 'Returns the slot ranges of each partition with the node that leads it.',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      const { host, port } = endpoint(ctx);
      const id = clusterNodeId(ctx.server.config.nodeId);
      const all = ranges(ctx);
      const r = ctx.reply;
      r.array(all.length);
      for (const { first, last } of all) {
        r.array(3);
        r.integer(first);
        r.integer(last);
        r.array(4);
        r.bulk(host);
        r.integer(port);
        r.bulk(id);
        r.array(0);
      }
    },
  }),
  clusterSub({
    name: 'cluster|shards',
    summary: 'Returns the shards (one per leader) with their slot ranges and nodes.',
    since: '7.0.0',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      const { host, port } = endpoint(ctx);
      const all = ranges(ctx);
      const r = ctx.reply;
      r.array(1);
      r.map(2);
      r.bulk('slots');
      r.array(all.length * 2);
      for (const { first, last } of all) {
        r.integer(first);
        r.integer(last);
      }
      r.bulk('nodes');
      r.array(1);
      r.map(7);
      const fields: [string, string | number][] = [
        ['id', clusterNodeId(ctx.server.config.nodeId)], ['port', port], ['ip', host], ['endpoint', host],
        ['role', 'master'], ['replication-offset', 0], ['health', 'online'],
      ];
      for (const [name, value] of fields) {
        r.bulk(name);
        if (typeof value === 'number') r.integer(value);
        else r.bulk(value);
      }
    },
  }),
  clusterSub({
    name: 'cluster|nodes',
    summary: 'Returns the nodes in Redis CLUSTER NODES form.',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      const { host, port } = endpoint(ctx);
      const slots = ranges(ctx).map(({ first, last }) => `${first}-${last}`).join(' ');
      ctx.reply.bulk(`${clusterNodeId(ctx.server.config.nodeId)} ${host}:${port}@${port + 10000} myself,master - 0 0 0 connected ${slots}\n`);
    },
  }),
  defineCommand({
    name: 'cluster|keyslot',
    summary: 'Returns the hash slot of a key: CRC16 of the key (or of its {hash tag}) mod 16384.',
    since: '3.0.0',
    group: 'cluster',
    complexity: 'O(N) where N is the number of bytes in the key',
    arity: { min: 3, max: 3 },
    flags: ['stale'],
    aclCategories: ['@slow'],
    args: [{ name: 'key', type: 'string' }],
    handler(ctx, argv) {
      ctx.reply.integer(keySlot(argv[2]!));
    },
  }),
];

const container = defineCommand({
  name: 'cluster',
  summary: 'Cluster commands: KEYSLOT, MYID, INFO, SLOTS, SHARDS, NODES.',
  since: '3.0.0',
  group: 'cluster',
  arity: { min: 2, max: Infinity },
  flags: [],
  aclCategories: ['@slow'],
});

export default defineCommand({ ...container, subcommands: [...subcommands, helpCommand(container, subcommands)] });
