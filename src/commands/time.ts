import { defineCommand } from './spec.js';

export default defineCommand({
  name: 'time',
  summary: 'Returns the server wall-clock time as [unix seconds, microseconds]. Lock leases never depend on it.',
  since: '2.6.0',
  group: 'server',
  complexity: 'O(1)',
  arity: { min: 1, max: 1 },
  flags: ['loading', 'stale', 'fast'],
  aclCategories: ['@fast'],
  handler(ctx) {
    const nowMs = ctx.server.wallClockMs();
    const seconds = Math.floor(nowMs / 1000);
    const micros = Math.floor((nowMs - seconds * 1000) * 1000);
    ctx.reply.array(2);
    ctx.reply.bulk(String(seconds));
    ctx.reply.bulk(String(micros));
  },
});
