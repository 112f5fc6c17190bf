import { defineCommand } from './spec.js';

export default defineCommand({
  name: 'reset',
  summary: 'Resets the connection: RESP2, no name, database 0, deauthenticated when a password is required.',
  since: '6.2.0',
  group: 'connection',
  complexity: 'O(1)',
  arity: { min: 1, max: 1 },
  flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'],
  aclCategories: ['@fast', '@connection'],
  handler(ctx) {
    const client = ctx.client;
    client.name = '';
    client.db = 0;
    client.proto = 2;
    ctx.reply.proto = 2;
    client.authenticated = ctx.server.config.requirepass === undefined;
    ctx.reply.simple('RESET');
  },
});
