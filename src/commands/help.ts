import { defineCommand, type CommandSpec } from './spec.js';

/** CONTAINER HELP, listing the subcommands from their specs. */
export function helpCommand(container: CommandSpec, subcommands: readonly CommandSpec[]): CommandSpec {
  const upper = container.name.toUpperCase();
  return defineCommand({
    name: `${container.name}|help`,
    summary: 'Shows helpful text about the different subcommands.',
    since: container.since,
    group: container.group,
    arity: { min: 2, max: 2 },
    flags: ['loading', 'stale'],
    aclCategories: ['@slow'],
    handler(ctx) {
      const lines = [`${upper} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:`];
      for (const spec of subcommands) {
        lines.push(spec.name.split('|')[1]!.toUpperCase());
        lines.push(`    ${spec.summary}`);
      }
      lines.push('HELP', '    Print this help.');
      ctx.reply.array(lines.length);
      for (const line of lines) ctx.reply.simple(line);
    },
  });
}
