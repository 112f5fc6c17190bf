import { pathToFileURL } from 'node:url';
import { COMMANDS } from './table.js';
import { redisArity, type ArgSpec, type CommandSpec } from './spec.js';

/** Renders an argument list in Redis's documentation syntax. */
export function renderArgs(args: readonly ArgSpec[]): string {
  return args.map(renderArg).join(' ');
}

function renderArg(arg: ArgSpec): string {
  let body: string;
  if (arg.type === 'oneof') body = (arg.arguments ?? []).map(renderArg).join(' | ');
  else if (arg.type === 'block') body = renderArgs(arg.arguments ?? []);
  else if (arg.type === 'pure-token') body = arg.token ?? arg.name;
  else body = arg.token !== undefined ? `${arg.token} ${arg.displayText ?? arg.name}` : (arg.displayText ?? arg.name);
  if (arg.multiple === true) body = `${body} [${body} ...]`;
  if (arg.optional === true) return `[${body}]`;
  return arg.type === 'oneof' ? `<${body}>` : body;
}

function usage(spec: CommandSpec): string {
  const words = spec.name.split('|').map((w) => w.toUpperCase()).join(' ');
  return `${words} ${renderArgs(spec.args)}`.trim();
}

function section(spec: CommandSpec): string[] {
  const lines = [
    `### ${spec.name.split('|').map((w) => w.toUpperCase()).join(' ')}`,
    '',
    '```',
    usage(spec),
    '```',
    '',
    spec.summary,
    '',
    `- group: ${spec.group}; since: ${spec.since}; arity: ${redisArity(spec)}` +
      (spec.complexity !== undefined ? `; complexity: ${spec.complexity}` : ''),
    `- flags: ${spec.flags.length > 0 ? spec.flags.join(', ') : '(none)'}`,
    '',
  ];
  for (const sub of spec.subcommands ?? []) lines.push(...section(sub));
  return lines;
}

/** docs/commands.md, generated from the command table (`npm run docs`). */
export function renderCommandDocs(): string {
  const lines = [
    '# raftlock commands',
    '',
    'Generated from the command table in `src/commands/` by `npm run docs`; a test fails when this',
    'file is out of date. Names are case-insensitive. Redis commands behave as in Redis 7.2 on the',
    'PERSISTENT lock table (a key is a lock whose value is its owner).',
    '',
  ];
  const groups = ['lock', 'string', 'generic', 'scripting', 'connection', 'server', 'cluster'] as const;
  for (const group of groups) {
    lines.push(`## ${group}`, '');
    for (const spec of COMMANDS.filter((c) => c.group === group)) lines.push(...section(spec));
  }
  return lines.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(renderCommandDocs());
}
