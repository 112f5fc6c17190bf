import { defineCommand } from './spec.js';
import { checkPassword, refuseCredentials } from './auth-common.js';

const NO_PASSWORD = 'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?';

export default defineCommand({
  name: 'auth',
  summary: 'Authenticates the connection (with --requirepass); the only user is "default".',
  since: '1.0.0',
  group: 'connection',
  complexity: 'O(N) where N is the number of passwords defined for the user',
  arity: { min: 2, max: 3 },
  flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'],
  aclCategories: ['@fast', '@connection'],
  args: [
    { name: 'username', type: 'string', optional: true },
    { name: 'password', type: 'string' },
  ],
  handler(ctx, argv) {
    if (argv.length === 2 && ctx.server.config.requirepass === undefined) return ctx.reply.error(NO_PASSWORD);
    const username = argv.length === 3 ? argv[1]! : 'default';
    const password = argv[argv.length - 1]!;
    if (!checkPassword(ctx, username, password)) return refuseCredentials(ctx, username);
    ctx.client.authenticated = true;
    ctx.reply.simple('OK');
  },
});
