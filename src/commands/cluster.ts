import { defineCommand, type CommandSpec } from './spec.js';
import { helpCommand } from './help.js';
import { keySlot } from '../cluster/slots.js';

const subcommands: CommandSpec[] = [
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
  summary: 'Cluster commands: KEYSLOT.',
  since: '3.0.0',
  group: 'cluster',
  arity: { min: 2, max: Infinity },
  flags: [],
  aclCategories: ['@slow'],
});

export default defineCommand({ ...container, subcommands: [...subcommands, helpCommand(container, subcommands)] });
