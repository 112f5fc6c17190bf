import { defineCommand, redisArity, type ArgSpec, type CommandContext, type CommandSpec } from './spec.js';
import type { ReplyWriter } from '../../resp/encoder.js';
import { helpCommand } from './help.js';

/** Finds commands by name, including 'container|sub' names. */
function find(ctx: CommandContext, name: string): CommandSpec | undefined {
  const [base, subname] = name.toLowerCase().split('|', 2);
  const spec = ctx.server.commands().find((c) => c.name === base);
  if (subname === undefined || spec === undefined) return spec;
  return spec.subcommands?.find((s) => s.name === `${base}|${subname}`);
}

function writeInfo(reply: ReplyWriter, spec: CommandSpec): void {
  reply.array(10);
  reply.bulk(spec.name);
  reply.integer(redisArity(spec));
  reply.set(spec.flags.length);
  for (const flag of spec.flags) reply.simple(flag);
  reply.integer(spec.keys?.first ?? 0);
  reply.integer(spec.keys?.last ?? 0);
  reply.integer(spec.keys?.step ?? 0);
  reply.set(spec.aclCategories.length);
  for (const category of spec.aclCategories) reply.simple(category);
  reply.set(0);
  writeKeySpecs(reply, spec);
  const subs = spec.subcommands ?? [];
  reply.array(subs.length);
  for (const sub of subs) writeInfo(reply, sub);
}

function writeKeySpecs(reply: ReplyWriter, spec: CommandSpec): void {
  if (spec.keyCount !== undefined) return writeKeyCountSpec(reply, spec, spec.keyCount.index);
  if (spec.keys === null) return reply.array(0);
  const access = spec.flags.includes('write') ? ['RW', 'UPDATE'] : ['RO', 'ACCESS'];
  reply.array(1);
  writeKeySpecStart(reply, access, spec.keys.first);
  reply.bulk('find_keys');
  reply.map(2);
  reply.bulk('type');
  reply.bulk('range');
  reply.bulk('spec');
  reply.map(3);
  reply.bulk('lastkey');
  reply.integer(spec.keys.last > 0 ? spec.keys.last - spec.keys.first : spec.keys.last);
  reply.bulk('keystep');
  reply.integer(spec.keys.step);
  reply.bulk('limit');
  reply.integer(0);
}

/** The flags and begin_search of a key spec (a map of 3; find_keys comes next). */
function writeKeySpecStart(reply: ReplyWriter, access: readonly string[], index: number): void {
  reply.map(3);
  reply.bulk('flags');
  reply.set(access.length);
  for (const flag of access) reply.simple(flag);
  reply.bulk('begin_search');
  reply.map(2);
  reply.bulk('type');
  reply.bulk('index');
  reply.bulk('spec');
  reply.map(1);
  reply.bulk('index');
  reply.integer(index);
}

/** Keys counted by an argument (EVAL's numkeys): a keynum spec, assuming the worst about access like Redis. */
function writeKeyCountSpec(reply: ReplyWriter, spec: CommandSpec, index: number): void {
  reply.array(1);
  writeKeySpecStart(reply, spec.flags.includes('readonly') ? ['RO', 'ACCESS'] : ['RW', 'ACCESS', 'UPDATE'], index);
  reply.bulk('find_keys');
  reply.map(2);
  reply.bulk('type');
  reply.bulk('keynum');
  reply.bulk('spec');
  reply.map(3);
  reply.bulk('keynumidx');
  reply.integer(0);
  reply.bulk('firstkey');
  reply.integer(1);
  reply.bulk('keystep');
  reply.integer(1);
}

function writeDocs(reply: ReplyWriter, spec: CommandSpec): void {
  const subs = spec.subcommands ?? [];
  const fields = 4 + (spec.complexity !== undefined ? 1 : 0) + (spec.args.length > 0 ? 1 : 0) + (subs.length > 0 ? 1 : 0);
  reply.map(fields);
  reply.bulk('summary');
  reply.bulk(spec.summary);
  reply.bulk('since');
  reply.bulk(spec.since);
  reply.bulk('group');
  reply.bulk(spec.group);
  if (spec.complexity !== undefined) {
    reply.bulk('complexity');
    reply.bulk(spec.complexity);
  }
  reply.bulk('doc_flags');
  reply.set(0);
  if (spec.args.length > 0) {
    reply.bulk('arguments');
    writeArgs(reply, spec.args);
  }
  if (subs.length > 0) {
    reply.bulk('subcommands');
    reply.map(subs.length);
    for (const sub of subs) {
      reply.bulk(sub.name);
      writeDocs(reply, sub);
    }
  }
}

function writeArgs(reply: ReplyWriter, args: readonly ArgSpec[]): void {
  reply.array(args.length);
  for (const arg of args) {
    const flags = [arg.optional === true ? 'optional' : '', arg.multiple === true ? 'multiple' : ''].filter((f) => f !== '');
    const fields = 3 + (arg.token !== undefined ? 1 : 0) + (flags.length > 0 ? 1 : 0) + (arg.arguments !== undefined ? 1 : 0);
    reply.map(fields);
    reply.bulk('name');
    reply.bulk(arg.name);
    reply.bulk('type');
    reply.bulk(arg.type);
    reply.bulk('display_text');
    reply.bulk(arg.displayText ?? arg.name);
    if (arg.token !== undefined) {
      reply.bulk('token');
      reply.bulk(arg.token);
    }
    if (flags.length > 0) {
      reply.bulk('flags');
      reply.set(flags.length);
      for (const flag of flags) reply.simple(flag);
    }
    if (arg.arguments !== undefined) {
      reply.bulk('arguments');
      writeArgs(reply, arg.arguments);
    }
  }
}

/** A COMMAND subcommand: the fields they all share, plus what differs. */
function sub(spec: Pick<CommandSpec, 'name' | 'summary' | 'since' | 'arity' | 'handler'> & Partial<CommandSpec>): CommandSpec {
  return defineCommand({ group: 'server', flags: ['loading', 'stale'], aclCategories: ['@slow', '@connection'], ...spec });
}

const subcommands: CommandSpec[] = [
  sub({
    name: 'command|count',
    summary: 'Returns the number of commands.',
    since: '2.8.13',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      ctx.reply.integer(ctx.server.commands().length);
    },
  }),
  sub({
    name: 'command|list',
    summary: 'Returns the names of all commands.',
    since: '7.0.0',
    arity: { min: 2, max: 2 },
    handler(ctx) {
      const all = ctx.server.commands();
      ctx.reply.array(all.length);
      for (const spec of all) ctx.reply.bulk(spec.name);
    },
  }),
  sub({
    name: 'command|info',
    summary: 'Returns COMMAND INFO entries for the named commands (all when none are named); nil for unknown names.',
    since: '2.8.13',
    arity: { min: 2, max: Infinity },
    args: [{ name: 'command-name', type: 'string', optional: true, multiple: true }],
    handler(ctx, argv) {
      const names = argv.slice(2);
      if (names.length === 0) return writeAll(ctx);
      ctx.reply.array(names.length);
      for (const name of names) {
        const spec = find(ctx, name);
        if (spec === undefined) ctx.reply.nullArray();
        else writeInfo(ctx.reply, spec);
      }
    },
  }),
  sub({
    name: 'command|docs',
    summary: 'Returns documentation (summary, arguments, ...) for the named commands, or all.',
    since: '7.0.0',
    arity: { min: 2, max: Infinity },
    args: [{ name: 'command-name', type: 'string', optional: true, multiple: true }],
    handler(ctx, argv) {
      const names = argv.slice(2);
      const specs = names.length === 0
        ? ctx.server.commands()
        : names.map((n) => find(ctx, n)).filter((s): s is CommandSpec => s !== undefined);
      ctx.reply.map(specs.length);
      for (const spec of specs) {
        ctx.reply.bulk(spec.name);
        writeDocs(ctx.reply, spec);
      }
    },
  }),
];

function writeAll(ctx: CommandContext): void {
  const all = ctx.server.commands();
  ctx.reply.array(all.length);
  for (const spec of all) writeInfo(ctx.reply, spec);
}

const container = defineCommand({
  name: 'command',
  summary: 'Describes the commands: COMMAND alone lists all; COUNT, LIST, INFO, DOCS.',
  since: '2.8.13',
  group: 'server',
  complexity: 'O(N) where N is the total number of commands',
  arity: { min: 1, max: Infinity },
  flags: ['loading', 'stale'],
  aclCategories: ['@slow', '@connection'],
  handler: writeAll,
});

export default defineCommand({ ...container, subcommands: [...subcommands, helpCommand(container, subcommands)] });
