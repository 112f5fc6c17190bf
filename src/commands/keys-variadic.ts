import { defineCommand, type CommandSpec } from './spec.js';
import { respond } from './respond.js';
import { serviceForKeys } from './partition.js';

/** DEL and UNLINK: both release the keys at once (there is no lazy freeing to defer). */
export function deleteCommand(name: 'del' | 'unlink', summary: string, since: string): CommandSpec {
  return defineCommand({
    name,
    summary,
    since,
    group: 'generic',
    complexity: 'O(N) where N is the number of keys',
    arity: { min: 2, max: Infinity },
    flags: ['write'],
    aclCategories: ['@keyspace', '@write', name === 'del' ? '@slow' : '@fast'],
    keys: { first: 1, last: -1, step: 1 },
    args: [{ name: 'key', type: 'key', multiple: true }],
    handler(ctx, argv) {
      const service = serviceForKeys(ctx, argv.slice(1));
      if (service === undefined) return;
      return respond(ctx, service.write({ kind: 'del', keys: argv.slice(1) }), (c, n) => c.reply.integer(n as number));
    },
  });
}
