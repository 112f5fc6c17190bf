/** Lets pending I/O callbacks and promise continuations run. */
export const settle = (): Promise<unknown> => new Promise((r) => setImmediate(r));

/**
 * Runs step() and lets the event loop turn until cond() holds; throws after
 * `rounds` rounds. For driving replicas by hand (ticks, message delivery).
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, step: () => void, what: string, rounds = 2000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (await cond()) return;
    step();
    await settle();
  }
  throw new Error(`timed out waiting for ${what}`);
}
