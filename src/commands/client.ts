import { defineCommand, type ClientState, type CommandContext, type CommandSpec } from './spec.js';
import { validClientName } from './auth-common.js';
import { helpCommand } from './help.js';

function sub(spec: Omit<CommandSpec, 'group' | 'since' | 'flags' | 'aclCategories' | 'keys' | 'parse' | 'args'> & Partial<CommandSpec>): CommandSpec {
  return defineCommand({
    group: 'connection',
    since: '2.4.0',
    flags: ['noscript', 'loading', 'stale'],
    aclCategories: ['@slow', '@connection'],
    ...spec,
  });
}

const subcommands: CommandSpec[] = [
  sub({
    name: 'client|setname',
    summary: 'Sets the connection name (printable ASCII without spaces; empty clears it).',
    arity: { min: 3, max: 3 },
    args: [{ name: 'connection-name', type: 'string' }],
    handler(ctx, argv) {
      if (!validClientName(argv[2]!)) return ctx.reply.error('ERR Client names cannot contain spaces, newlines or special characters.');
      ctx.client.name = argv[2]!;
      ctx.reply.simple('OK');
    },
  }),
  sub({
    name: 'client|getname',
    summary: 'Returns the connection name, or nil.',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      ctx.reply.bulkOrNull(ctx.client.name === '' ? null : ctx.client.name);
    },
  }),
  sub({
    name: 'client|setinfo',
    summary: 'Records the client library name or version (LIB-NAME, LIB-VER).',
    since: '7.2.0',
    arity: { min: 4, max: 4 },
    args: [{
      name: 'attr', type: 'oneof', arguments: [
        { name: 'libname', type: 'string', token: 'LIB-NAME' },
        { name: 'libver', type: 'string', token: 'LIB-VER' },
      ],
    }],
    handler(ctx, argv) {
      const attr = argv[2]!.toLowerCase();
      if (attr !== 'lib-name' && attr !== 'lib-ver') return ctx.reply.error(`ERR Unrecognized option '${argv[2]!}'`);
      if (!validClientName(argv[3]!)) return ctx.reply.error(`ERR ${attr} cannot contain spaces, newlines or special characters.`);
      if (attr === 'lib-name') ctx.client.libName = argv[3]!;
      else ctx.client.libVer = argv[3]!;
      ctx.reply.simple('OK');
    },
  }),
  sub({
    name: 'client|id',
    summary: 'Returns the connection id.',
    since: '5.0.0',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      ctx.reply.integer(ctx.client.id);
    },
  }),
  sub({
    name: 'client|info',
    summary: 'Describes this connection in CLIENT LIST format.',
    since: '6.2.0',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      ctx.reply.verbatim('txt', clientLine(ctx, ctx.client) + '\n');
    },
  }),
  sub({
    name: 'client|list',
    summary: 'Describes every connection, one line each.',
    arity: { min: 2, max: Infinity },
    args: [
      { name: 'normal', type: 'pure-token', token: 'TYPE', optional: true, displayText: 'normal' },
      { name: 'client-id', type: 'integer', token: 'ID', optional: true, multiple: true },
    ],
    handler(ctx, argv) {
      const filter = listFilter(argv);
      if (typeof filter === 'string') return ctx.reply.error(filter);
      let text = '';
      for (const client of ctx.server.clients()) {
        if (filter === null || filter.has(client.id)) text += clientLine(ctx, client) + '\n';
      }
      ctx.reply.verbatim('txt', text);
    },
  }),
];

/** CLIENT LIST [TYPE normal] [ID id ...]: the id set to keep, null for all, or an error. */
function listFilter(argv: readonly string[]): Set<number> | null | string {
  if (argv.length === 2) return null;
  const option = argv[2]!.toUpperCase();
  if (option === 'TYPE' && argv.length === 4) {
    const type = argv[3]!.toLowerCase();
    if (type === 'normal') return null;
    if (['master', 'replica', 'pubsub'].includes(type)) return new Set();
    return `ERR Unknown client type '${argv[3]!}'`;
  }
  if (option === 'ID' && argv.length >= 4) {
    const ids = new Set<number>();
    for (const text of argv.slice(3)) {
      const id = Number(text);
      if (!Number.isSafeInteger(id) || id <= 0) return 'ERR Invalid client ID';
      ids.add(id);
    }
    return ids;
  }
  return 'ERR syntax error';
}

function clientLine(ctx: CommandContext, client: ClientState): string {
  const nowMs = ctx.server.clockMs();
  const sizes = client.bufferSizes();
  const age = Math.floor((ctx.server.wallClockMs() - client.createdAtMs) / 1000);
  const idle = Math.floor((nowMs - client.lastActiveMs) / 1000);
  return `id=${client.id} addr=${client.addr} laddr=${client.laddr} fd=-1 name=${client.name} age=${age} idle=${idle} ` +
    `flags=${client.blocked ? 'b' : 'N'} db=${client.db} sub=0 psub=0 ssub=0 multi=-1 qbuf=${sizes.query} ` +
    `obl=0 oll=0 omem=${sizes.output} events=r cmd=${client.lastCommand} user=default redir=-1 resp=${client.proto} ` +
    `lib-name=${client.libName} lib-ver=${client.libVer}`;
}

const container = defineCommand({
  name: 'client',
  summary: 'Connection commands: SETNAME, GETNAME, SETINFO, ID, INFO, LIST.',
  since: '2.4.0',
  group: 'connection',
  arity: { min: 2, max: Infinity },
  flags: [],
  aclCategories: ['@slow'],
});

export default defineCommand({ ...container, subcommands: [...subcommands, helpCommand(container, subcommands)] });
