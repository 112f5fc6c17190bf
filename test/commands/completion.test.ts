import t from 'tap';
import { Completion } from '../../src/commands/spec.js';

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
