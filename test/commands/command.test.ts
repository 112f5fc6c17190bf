import t from 'tap';
import { readFileSync } from 'node:fs';
import { startServer } from '../helpers/server.js';
import { COMMANDS, buildTable } from '../../src/commands/table.js';
import { renderCommandDocs } from '../../src/commands/gen-docs.js';
import { defineCommand } from '../../src/commands/spec.js';

t.test('COMMAND COUNT, INFO and DOCS come from the table', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  t.equal(await c.call('COMMAND', 'COUNT'), COMMANDS.length);
  const all = (await c.call('COMMAND')) as unknown[][];
  t.equal(all.length, COMMANDS.length);
  const [klock] = (await c.call('COMMAND', 'INFO', 'klock')) as unknown[][];
  t.match(klock, ['klock', -4, [{ ok: 'write' }, { ok: 'denyoom' }, { ok: 'fast' }, { ok: 'blocking' }], 1, 1, 1]);
  t.same(await c.call('COMMAND', 'INFO', 'nosuch'), [null]);
  const [get] = (await c.call('COMMAND', 'INFO', 'get')) as unknown[][];
  t.match(get, ['get', 2, [{ ok: 'readonly' }, { ok: 'fast' }], 1, 1, 1]);
  const docs = (await c.call('COMMAND', 'DOCS', 'set')) as unknown[];
  t.equal(docs[0], 'set');
  t.match(docs[1], ['summary', String, 'since', '1.0.0', 'group', 'string']);
  const every = (await c.call('COMMAND', 'DOCS')) as unknown[];
  t.equal(every.length, COMMANDS.length * 2, 'DOCS for every command');
  const list = (await c.call('COMMAND', 'LIST')) as string[];
  t.ok(list.includes('kgetlock'));
  const [sub] = (await c.call('COMMAND', 'INFO', 'client|setname')) as unknown[][];
  t.match(sub, ['client|setname', 3]);
});

t.test('the command table is checked when it loads', async (t) => {
  const ok = defineCommand({ name: 'x', summary: '', since: '0', group: 'server', arity: { min: 1, max: 1 }, handler: () => undefined });
  t.throws(() => buildTable([ok, ok]), /duplicate command 'x'/);
  t.throws(() => buildTable([{ ...ok, name: 'X' }]), /bad command name/);
  t.throws(() => buildTable([{ ...ok, arity: { min: 0, max: 1 } }]), /bad arity/);
  t.throws(() => buildTable([{ ...ok, handler: undefined }]), /no handler/);
  t.throws(() => buildTable([{ ...ok, parse: true, args: [{ name: 'o', type: 'string', optional: true }] }]), /has no token/);
});

t.test('docs/commands.md is current (regenerate with npm run docs)', async (t) => {
  const onDisk = readFileSync(new URL('../../docs/commands.md', import.meta.url), 'utf8');
  t.equal(onDisk, renderCommandDocs(), 'docs/commands.md matches the command table');
});
