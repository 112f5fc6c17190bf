import t from 'tap';
import { Completion, type CommandContext } from '../../src/commands/spec.js';
import { respond } from '../../src/commands/respond.js';
import { ReplyWriter } from '../../resp/encoder.js';

/** complete() is protected: a command's own subclass calls it once its reply is written. */
class Done extends Completion {
  finish(): void {
    this.complete();
  }
}

t.test('a Completion runs its listeners once, in order, when completed; at once when it already is', async (t) => {
  const c = new Done();
  const heard: string[] = [];
  c.onComplete(() => heard.push('first'));
  c.onComplete(() => heard.push('second'));
  c.onComplete(() => heard.push('third'));
  t.same(heard, [], 'nothing before complete()');
  c.finish();
  t.same(heard, ['first', 'second', 'third'], 'synchronously, in the order added');
  c.finish();
  t.same(heard, ['first', 'second', 'third'], 'a second complete() runs nothing');
  c.onComplete(() => heard.push('late'));
  t.same(heard, ['first', 'second', 'third', 'late'], 'a listener added after completion runs at once');
});

t.test('a Completion can be awaited and chained like a promise', async (t) => {
  const c = new Done();
  let settled = false;
  const chained = c.then(() => {
    settled = true;
    return 42;
  });
  await Promise.resolve();
  t.equal(settled, false, 'not before complete()');
  setImmediate(() => c.finish());
  await c;
  t.equal(await chained, 42, 'then() returns a promise of its callback\'s value');
  t.equal(settled, true);
});

t.test('respond() of a later result: the reply is written and the Completion completes in one step', async (t) => {
  const ctx = (): CommandContext => ({ reply: new ReplyWriter(2) }) as unknown as CommandContext;
  const ok = ctx();
  let resolve!: (value: number) => void;
  const later = respond(ok, new Promise<number>((r) => (resolve = r)), (c, n) => c.reply.integer(n));
  t.ok(later instanceof Completion, 'a Completion, not a promise');
  const written: string[] = [];
  (later as Completion).onComplete(() => written.push(ok.reply.take()));
  resolve(7);
  await new Promise((r) => setImmediate(r));
  t.same(written, [':7\r\n'], 'complete once the reply is in the writer');

  const refused = ctx();
  const failed = respond(refused, Promise.reject(Object.assign(new Error('x'), { code: 'RAFTLOCK_ERR_NOT_LEADER' })), () => t.fail('not written'));
  await failed;
  t.equal(refused.reply.take(), '-TRYAGAIN no leader for this partition right now; retry\r\n', 'a failed write answers with its error');

  const broken = ctx();
  await respond(broken, Promise.resolve(1), () => {
    throw new Error('cannot encode');
  });
  t.equal(broken.reply.take(), '-ERR cannot encode\r\n', 'a writer that throws still leaves exactly one reply');

  const now = ctx();
  t.equal(respond(now, 5, (c, n) => c.reply.integer(n)), undefined, 'a result ready now is written now');
  t.equal(now.reply.take(), ':5\r\n');
});
