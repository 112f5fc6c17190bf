// ESLint flat config. The pure layers (resp/, raft/) may not touch the outside
// world: sockets, files, timers, wall clocks and global randomness are injected
// so that the deterministic simulator can run the production code.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const impureModules = [
  'net', 'node:net', 'fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'dgram', 'node:dgram',
  'timers', 'node:timers', 'timers/promises', 'node:timers/promises', 'http', 'node:http',
  'child_process', 'node:child_process', 'crypto', 'node:crypto',
];
const pureMessage = 'resp/ and raft/ are pure: inject time, randomness, disk and network.';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tap/**', 'coverage/**', 'data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['resp/**/*.ts', 'raft/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: impureModules.map((name) => ({ name, message: pureMessage })),
      }],
      'no-restricted-globals': ['error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval',
          'clearImmediate', 'queueMicrotask', 'Date', 'performance', 'process', 'require']
          .map((name) => ({ name, message: pureMessage })),
      ],
      'no-restricted-properties': ['error',
        { object: 'Math', property: 'random', message: pureMessage },
        { object: 'globalThis', property: 'setTimeout', message: pureMessage },
        { object: 'globalThis', property: 'Date', message: pureMessage },
      ],
      'no-restricted-syntax': ['error',
        { selector: "ImportExpression", message: pureMessage },
      ],
    },
  },
);
