import Benchmark from 'benchmark';
import { pathToFileURL } from 'node:url';
import { LockStateMachine } from '../src/lock/machine.js';
import { noopOutcome, type LockOp } from '../src/lock/commands.js';

export interface MicroResult {
  name: string;
  opsPerSec: number;
  rme: number;
}

/** Micro-benchmarks of the lock state machine (no sockets): the cost of a command's apply step. */
export function run(): Promise<MicroResult[]> {
  const keys = Array.from({ length: 100_000 }, (_, i) => `lock:${i}`);
  let now = 0;
  let i = 0;
  const machine = new LockStateMachine();
  const held = new LockStateMachine();
  for (const key of keys) held.lock('persistent', key, 'holder', 1e12, 0);
  const contended: LockOp[] = keys.map((resource) => ({ kind: 'lock', durability: 'persistent', resource, owner: 'other', ttlMs: 30_000 }));
  const suite = new Benchmark.Suite('lock state machine');
  suite
    .add('KLOCK EPHEMERAL, 100k random resources, 30 s lease', () => {
      machine.lock('ephemeral', keys[(i = (i * 48271 + 1) % 100_000)]!, 'o', 30_000, now++);
    })
    .add('SET NX PX, 100k random keys', () => {
      machine.set(keys[(i = (i * 48271 + 1) % 100_000)]!, 'v', { mode: 'nx', expiry: { kind: 'ttl', ttlMs: 30_000 } }, now++);
    })
    .add('KLOCK + KUNLOCK one resource', () => {
      machine.lock('persistent', 'hot', 'o', 30_000, now);
      machine.unlock('persistent', 'hot', 'o', now++);
    })
    .add('KGETLOCK held resource', () => {
      machine.info('ephemeral', keys[(i = (i * 48271 + 1) % 100_000)]!, now);
    })
    .add('KLOCK PERSISTENT held by another: no-op check, 100k keys', () => {
      noopOutcome(held, contended[(i = (i * 48271 + 1) % 100_000)]!, 1);
    });
  return new Promise((resolve) => {
    const results: MicroResult[] = [];
    suite.on('cycle', (event: Benchmark.Event) => {
      const b = event.target as unknown as Benchmark & { name: string };
      results.push({ name: b.name, opsPerSec: b.hz, rme: b.stats.rme });
      console.log(String(event.target));
    });
    suite.on('complete', () => resolve(results));
    suite.run({ async: false });
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void run();
}
