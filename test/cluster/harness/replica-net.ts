import type { Message } from '../../../raft/types.js';
import type { Replica } from '../../../src/cluster/replica.js';

/**
 * Replicas of one group wired together in memory, driven by hand: messages
 * wait in an inbox until deliver(); tickAll() advances the shared clock by
 * one tick, ticks every node that is up and delivers. Nodes in `down` neither
 * tick nor send nor receive.
 */
export class ReplicaNet<N extends { replica: Replica }> {
  readonly nodes = new Map<string, N>();
  readonly down = new Set<string>();
  private readonly inbox: Message[] = [];

  constructor(public now: number, private readonly tickMs = 10) {}

  readonly clock = (): number => this.now;

  readonly send = (messages: Message[]): void => {
    this.inbox.push(...messages);
  };

  readonly deliver = (): void => {
    for (const m of this.inbox.splice(0)) if (!this.down.has(m.to) && !this.down.has(m.from)) this.nodes.get(m.to)!.replica.step(m);
  };

  readonly tickAll = (): void => {
    this.now += this.tickMs;
    for (const [id, n] of this.nodes) if (!this.down.has(id)) n.replica.tick();
    this.deliver();
  };
}
