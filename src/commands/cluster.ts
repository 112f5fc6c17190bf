import { createHash } from 'node:crypto';
import { defineCommand, type CommandContext, type CommandSpec } from './spec.js';
import { helpCommand } from './help.js';
import { SLOT_COUNT, keySlot, slotRange } from '../cluster/slots.js';
import { partitionLeaders } from './partition.js';

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

interface Shard {
  /** The node serving these slot ranges (this node when no leader is known: it forwards). */
  nodeId: string;
  host: string;
  port: number;
  ranges: { first: number; last: number }[];
}

/**
 * The partitions as Redis Cluster shards: each partition's slot range (one
 * range per partition, even when adjacent ones share a leader) owned by its
 * current leader.
 */
function shards(ctx: CommandContext): Shard[] {
  const self = ctx.server.config.nodeId;
  const here = endpoint(ctx);
  const partitions = ctx.server.services.length;
  const byNode = new Map<string, Shard>();
  for (let p = 0; p < partitions; p++) {
    const leader = ctx.server.cluster?.leaderOf(p) ?? self;
    const at = leader === self ? here : ctx.server.cluster?.endpointOf(leader);
    const nodeId = at === undefined ? self : leader;
    let shard = byNode.get(nodeId);
    if (shard === undefined) {
      const { host, port } = at ?? here;
      shard = { nodeId, host, port, ranges: [] };
      byNode.set(nodeId, shard);
    }
    shard.ranges.push(slotRange(p, partitions));
  }
  return [...byNode.values()];
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
      const leaders = partitionLeaders(ctx);
      const partitions = leaders.length;
      let slotsOk = SLOT_COUNT;
      leaders.forEach((leader, p) => {
        if (leader !== null) return;
        const { first, last } = slotRange(p, partitions);
        slotsOk -= last - first + 1;
      });
      const led = leaders.filter((l) => l === ctx.server.config.nodeId).length;
      const masters = new Set(leaders.filter((l) => l !== null));
      const lines = [
        `cluster_state:${slotsOk === SLOT_COUNT ? 'ok' : 'fail'}`, `cluster_slots_assigned:${SLOT_COUNT}`, `cluster_slots_ok:${slotsOk}`,
        'cluster_slots_pfail:0', `cluster_slots_fail:${SLOT_COUNT - slotsOk}`, `cluster_known_nodes:${ctx.server.cluster?.nodes().length ?? 1}`,
        `cluster_size:${masters.size}`, 'cluster_current_epoch:0', 'cluster_my_epoch:0',
        `cluster_partitions:${partitions}`, `cluster_partitions_led_here:${led}`,
      ];
      ctx.reply.bulk(lines.join('\r\n') + '\r\n');
    },
  }),
  clusterSub({
    name: 'cluster|slots',
    summary: 'Returns the slot ranges of each partition with the node that leads it.',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      const all = shards(ctx).flatMap((shard) => shard.ranges.map((range) => ({ ...range, shard })));
      all.sort((a, b) => a.first - b.first);
      const r = ctx.reply;
      r.array(all.length);
      for (const { first, last, shard } of all) {
        r.array(3);
        r.integer(first);
        r.integer(last);
        r.array(4);
        r.bulk(shard.host);
        r.integer(shard.port);
        r.bulk(clusterNodeId(shard.nodeId));
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
      const all = shards(ctx);
      const r = ctx.reply;
      r.array(all.length);
      for (const shard of all) {
        r.map(2);
        r.bulk('slots');
        r.array(shard.ranges.length * 2);
        for (const { first, last } of shard.ranges) {
          r.integer(first);
          r.integer(last);
        }
        r.bulk('nodes');
        r.array(1);
        r.map(7);
        const fields: [string, string | number][] = [
          ['id', clusterNodeId(shard.nodeId)], ['port', shard.port], ['ip', shard.host], ['endpoint', shard.host],
          ['role', 'master'], ['replication-offset', 0], ['health', 'online'],
        ];
        for (const [name, value] of fields) {
          r.bulk(name);
          if (typeof value === 'number') r.integer(value);
          else r.bulk(value);
        }
      }
    },
  }),
  clusterSub({
    name: 'cluster|nodes',
    summary: 'Returns the nodes in Redis CLUSTER NODES form.',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      const self = ctx.server.config.nodeId;
      const serving = new Map(shards(ctx).map((shard) => [shard.nodeId, shard]));
      const nodes = ctx.server.cluster?.nodes() ?? [self];
      let text = '';
      for (const nodeId of nodes) {
        const shard = serving.get(nodeId);
        const at = shard ?? (nodeId === self ? endpoint(ctx) : ctx.server.cluster?.endpointOf(nodeId));
        const address = at === undefined ? ':0@0' : `${at.host}:${at.port}@${at.port + 10000}`;
        const flags = `${nodeId === self ? 'myself,' : ''}master${at === undefined ? ',noaddr' : ''}`;
        const slots = shard === undefined ? '' : ' ' + shard.ranges.map(({ first, last }) => `${first}-${last}`).join(' ');
        text += `${clusterNodeId(nodeId)} ${address} ${flags} - 0 0 0 connected${slots}\n`;
      }
      ctx.reply.bulk(text);
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

/** CLUSTER ADDNODE / CLUSTER FORGET: a membership change on every partition (or one, with PARTITION p). */
function membershipCommand(name: 'addnode' | 'forget', type: 'addVoter' | 'removeVoter', summary: string): CommandSpec {
  return defineCommand({
    name: `cluster|${name}`,
    summary,
    since: name === 'forget' ? '3.0.0' : '0.1.0',
    group: 'cluster',
    arity: { min: 3, max: 5 },
    flags: ['admin'],
    aclCategories: ['@admin', '@slow', '@dangerous'],
    args: [{ name: 'node-id', type: 'string' }, { name: 'partition', type: 'integer', token: 'PARTITION', optional: true }],
    handler(ctx, argv) {
      const cluster = ctx.server.cluster;
      if (cluster === undefined) return ctx.reply.error('ERR This instance has cluster support disabled');
      const node = argv[2]!;
      const partitions = ctx.server.services.length;
      let only: number[] | undefined;
      if (argv.length > 3) {
        const p = Number(argv[4]);
        if (argv.length !== 5 || argv[3]!.toUpperCase() !== 'PARTITION') return ctx.reply.error('ERR syntax error');
        if (!/^\d+$/.test(argv[4]!) || p >= partitions) return ctx.reply.error(`ERR no partition ${argv[4]} (this cluster has ${partitions})`);
        only = [p];
      }
      const known = cluster.nodes().find((n) => n === node || clusterNodeId(n) === node);
      if (known === undefined) return ctx.reply.error(`ERR Unknown node ${node}`);
      const targets = only ?? Array.from({ length: partitions }, (_, p) => p);
      return cluster.changeMembership({ type, node: known }, targets, ctx.client.forwarded === true).then((error) => {
        if (error === null) ctx.reply.simple('OK');
        else ctx.reply.error(error);
      });
    },
  });
}

subcommands.push(
  membershipCommand('forget', 'removeVoter', 'Removes a node from the voters of every partition (or of PARTITION p), through each leader. Before a node rejoins with an empty data directory.'),
  membershipCommand('addnode', 'addVoter', 'Adds a node (listed in --peers) as a voter of every partition (or of PARTITION p); it catches up from the leaders.'),
);

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
