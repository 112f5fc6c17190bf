import { defineCommand, type CommandSpec } from './spec.js';
import { helpCommand } from './help.js';
import { scriptCacheOf, LOADED_SCRIPTS_MAX } from '../script/cache.js';
import { compileScript } from '../script/run.js';

function sub(spec: Pick<CommandSpec, 'name' | 'summary' | 'since' | 'arity' | 'handler'> & Partial<CommandSpec>): CommandSpec {
  return defineCommand({ group: 'scripting', flags: ['noscript'], aclCategories: ['@slow', '@scripting'], ...spec });
}

const subcommands: CommandSpec[] = [
  sub({
    name: 'script|load',
    summary: "Compiles a script and adds it to this node's script cache (until SCRIPT FLUSH); replies with its SHA1 for EVALSHA.",
    since: '2.6.0',
    arity: { min: 3, max: 3 },
    flags: ['noscript', 'stale'],
    args: [{ name: 'script', type: 'string' }],
    handler(ctx, argv) {
      const compileError = compileScript(argv[2]!);
      if (compileError !== null) return ctx.reply.error(compileError);
      const sha1 = scriptCacheOf(ctx.server).load(argv[2]!);
      if (sha1 === null) return ctx.reply.error(`ERR too many scripts loaded (${LOADED_SCRIPTS_MAX}); SCRIPT FLUSH first`);
      ctx.reply.bulk(sha1);
    },
  }),
  sub({
    name: 'script|exists',
    summary: "Tells for each SHA1 whether this node's script cache has the script (1) or not (0).",
    since: '2.6.0',
    arity: { min: 3, max: Infinity },
    args: [{ name: 'sha1', type: 'string', multiple: true }],
    handler(ctx, argv) {
      const cache = scriptCacheOf(ctx.server);
      ctx.reply.array(argv.length - 2);
      for (let i = 2; i < argv.length; i++) ctx.reply.integer(cache.has(argv[i]!) ? 1 : 0);
    },
  }),
  sub({
    name: 'script|flush',
    summary: "Empties this node's script cache (ASYNC and SYNC do the same).",
    since: '2.6.0',
    arity: { min: 2, max: 3 },
    args: [{
      name: 'flush-type', type: 'oneof', optional: true, arguments: [
        { name: 'async', type: 'pure-token', token: 'ASYNC' },
        { name: 'sync', type: 'pure-token', token: 'SYNC' },
      ],
    }],
    handler(ctx, argv) {
      const mode = argv[2]?.toUpperCase();
      if (mode !== undefined && mode !== 'ASYNC' && mode !== 'SYNC') return ctx.reply.error('ERR SCRIPT FLUSH only support SYNC|ASYNC option');
      scriptCacheOf(ctx.server).flush();
      ctx.reply.simple('OK');
    },
  }),
  sub({
    name: 'script|kill',
    summary: 'Replies NOTBUSY: a script never runs past its instruction budget, so there is none to kill.',
    since: '2.6.0',
    arity: { min: 2, max: 2 },
    flags: ['noscript', 'allow_busy'],
    handler(ctx) {
      ctx.reply.error('NOTBUSY No scripts in execution right now.');
    },
  }),
];

const container = defineCommand({
  name: 'script',
  summary: "Manages this node's script cache: LOAD, EXISTS, FLUSH, KILL.",
  since: '2.6.0',
  group: 'scripting',
  arity: { min: 2, max: Infinity },
  flags: [],
  aclCategories: ['@slow', '@scripting'],
});

export default defineCommand({ ...container, subcommands: [...subcommands, helpCommand(container, subcommands)] });
