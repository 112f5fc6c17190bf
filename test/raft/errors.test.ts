import t from 'tap';
import { readFileSync } from 'node:fs';
import * as errors from '../../raft/errors.js';

const source = readFileSync(new URL('../../raft/errors.ts', import.meta.url), 'utf8');
const readme = readFileSync(new URL('../../raft/README.md', import.meta.url), 'utf8');

t.test('every raft error code is documented in raft/README.md', async (t) => {
  const codes = [...source.matchAll(/'(RAFTLOCK_ERR_[A-Z_]+)'/g)].map((m) => m[1]!);
  t.ok(codes.length >= 10);
  for (const code of codes) t.ok(readme.includes(`\`${code}\``), code);
});

t.test('errors are RaftErrors with a name, a code and a message', async (t) => {
  const samples: errors.RaftError[] = [
    new errors.ErrSnapshotTemporarilyUnavailable(),
    new errors.ErrProposalDropped('not-leader', 'leader is n2'),
    new errors.ErrReadIndexDropped('no leader known'),
    new errors.ErrTransferInvalid('n9 is not a voter'),
    new errors.ErrUsage('ready() twice'),
    new errors.RaftInvariantError('bad'),
  ];
  for (const e of samples) {
    t.ok(e instanceof errors.RaftError && e instanceof Error);
    t.equal(e.name, e.constructor.name);
    t.match(e.code, /^RAFTLOCK_ERR_RAFT_/);
  }
  t.equal(samples[1]!.message, 'proposal dropped (not-leader): leader is n2');
  t.throws(() => errors.assert(false, () => 'lazy detail'), { message: 'raft invariant violated: lazy detail' });
});

t.test('the raft/ barrel exports the public API', async (t) => {
  const api = await import('../../raft/index.js');
  for (const name of [
    'RawNode', 'MemoryStorage', 'bootstrapState', 'BOOTSTRAP_INDEX', 'BOOTSTRAP_TERM', 'validateConfig', 'encodeConfChange',
    'decodeConfChange', 'entryBytes', 'ENTRY_OVERHEAD_BYTES', 'ErrCompacted', 'ErrUnavailable', 'ErrProposalDropped',
    'ErrReadIndexDropped', 'ErrTransferInvalid', 'ErrConfigInvalid', 'ErrUsage', 'RaftInvariantError', 'RaftError',
  ]) {
    t.ok(name in api, name);
  }
});
