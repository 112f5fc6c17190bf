import { defineCommand, type CommandContext } from './spec.js';
import { checkPassword, refuseCredentials, validClientName } from './auth-common.js';
import { parseInteger } from './syntax.js';
import { REDIS_COMPAT_VERSION } from './version.js';

const NOAUTH_HELLO = 'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time';

export default defineCommand({
  name: 'hello',
  summary: 'Handshakes with the server: selects RESP2 or RESP3, optionally authenticates and names the connection.',
  since: '6.0.0',
  group: 'connection',
  complexity: 'O(1)',
  arity: { min: 1, max: 7 },
  flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'],
  aclCategories: ['@fast', '@connection'],
  args: [{
    name: 'arguments', type: 'block', optional: true, arguments: [
      { name: 'protover', type: 'integer' },
      {
        name: 'username-password', type: 'block', token: 'AUTH', optional: true, arguments: [
          { name: 'username', type: 'string' },
          { name: 'password', type: 'string' },
        ],
      },
      { name: 'clientname', type: 'string', token: 'SETNAME', optional: true },
    ],
  }],
  handler(ctx, argv) {
    let proto = ctx.client.proto;
    if (argv.length >= 2) {
      const version = parseInteger(argv[1]!);
      if (version === null) return ctx.reply.error('ERR Protocol version is not an integer or out of range');
      if (version !== 2 && version !== 3) return ctx.reply.error('NOPROTO unsupported protocol version');
      proto = version;
    }
    const options = helloOptions(argv);
    if (typeof options === 'string') return ctx.reply.error(options);
    if (options.auth !== undefined) {
      if (!checkPassword(ctx, options.auth[0], options.auth[1])) return refuseCredentials(ctx, options.auth[0]);
      ctx.client.authenticated = true;
    }
    if (!ctx.client.authenticated) return ctx.reply.error(NOAUTH_HELLO);
    if (options.name !== undefined) {
      if (!validClientName(options.name)) return ctx.reply.error('ERR Client names cannot contain spaces, newlines or special characters.');
      ctx.client.name = options.name;
    }
    ctx.client.proto = proto;
    ctx.reply.proto = proto;
    writeHello(ctx);
  },
});

function helloOptions(argv: readonly string[]): { auth?: [string, string]; name?: string } | string {
  const out: { auth?: [string, string]; name?: string } = {};
  for (let j = 2; j < argv.length; j++) {
    const more = argv.length - 1 - j;
    const option = argv[j]!.toUpperCase();
    if (option === 'AUTH' && more >= 2) {
      out.auth = [argv[j + 1]!, argv[j + 2]!];
      j += 2;
    } else if (option === 'SETNAME' && more >= 1) {
      out.name = argv[j + 1]!;
      j += 1;
    } else {
      return `ERR Syntax error in HELLO option '${argv[j]!}'`;
    }
  }
  return out;
}

function writeHello(ctx: CommandContext): void {
  const reply = ctx.reply;
  reply.map(7);
  reply.bulk('server');
  reply.bulk('raftlock');
  reply.bulk('version');
  reply.bulk(REDIS_COMPAT_VERSION);
  reply.bulk('proto');
  reply.integer(ctx.client.proto);
  reply.bulk('id');
  reply.integer(ctx.client.id);
  reply.bulk('mode');
  reply.bulk('standalone');
  reply.bulk('role');
  reply.bulk('master');
  reply.bulk('modules');
  reply.array(0);
}
