import t from 'tap';
import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

const impure: [string, string][] = [
  ['sockets', "import net from 'node:net';\nexport const x = net;\n"],
  ['files', "import { readFileSync } from 'fs';\nexport const x = readFileSync;\n"],
  ['timers', 'export const x = setTimeout(() => undefined, 1);\n'],
  ['wall clock', 'export const x = Date.now();\n'],
  ['global randomness', 'export const x = Math.random();\n'],
  ['process', 'export const x = process.hrtime();\n'],
];

t.test('resp/ and raft/ reject I/O, timers, clocks and randomness', async (t) => {
  const eslint = new ESLint({ cwd: root });
  for (const dir of ['resp', 'raft']) {
    for (const [what, code] of impure) {
      const [result] = await eslint.lintText(code, { filePath: `${root}/${dir}/probe.ts` });
      const purity = result!.messages.filter((m) => /pure/.test(m.message));
      t.ok(purity.length > 0, `${dir}/: ${what} is rejected`);
    }
  }
  const [allowed] = await eslint.lintText('export const x = Date.now();\n', { filePath: `${root}/src/server/probe.ts` });
  t.equal(allowed!.messages.filter((m) => /pure/.test(m.message)).length, 0, 'src/server may read the clock');
});
