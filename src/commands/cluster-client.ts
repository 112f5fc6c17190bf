import { defineCommand, type CommandSpec } from './spec.js';

/**
 * READONLY, READWRITE and ASKING: cluster clients send them to steer reads to
 * replicas or follow a migration. raftlock serves every command from the
 * partition leader (reads included, to stay linearizable) and never migrates
 * slots, so each simply acknowledges.
 */
function acknowledge(name: string, summary: string): CommandSpec {
  return defineCommand({
    name,
    summary,
    since: '3.0.0',
    group: 'cluster',
    complexity: 'O(1)',
    arity: { min: 1, max: 1 },
    flags: ['fast', 'loading', 'stale'],
    aclCategories: ['@fast', '@connection'],
    handler(ctx) {
      ctx.reply.simple('OK');
    },
  });
}

export const readonlyCommand = acknowledge('readonly', 'Accepted for cluster clients; reads are always served by the partition leader.');
export const readwriteCommand = acknowledge('readwrite', 'Accepted for cluster clients (the default mode).');
export const askingCommand = acknowledge('asking', 'Accepted for cluster clients; raftlock never migrates slots, so it never answers ASK.');
