import t from 'tap';
import { validateConfig, type RaftConfig } from '../../raft/config.js';
import { ErrConfigInvalid } from '../../raft/errors.js';
import { RawNode } from '../../raft/rawnode.js';
import { MemoryStorage } from '../../raft/storage.js';

const base = (): RaftConfig => ({ id: 'a', storage: new MemoryStorage({ voters: ['a'], learners: [] }), rng: () => 0.5 });

t.test('defaults are filled in', async (t) => {
  const c = validateConfig(base());
  t.match(c, {
    electionTicks: 10, heartbeatTicks: 1, preVote: true, checkQuorum: true, leaseDriftTicks: 2, readOnlyOption: 'safe',
    maxSizePerMsg: 1024 * 1024, maxInflightMsgs: 256, snapshotRetryTicks: 50,
  });
});

const invalid: [string, Partial<RaftConfig> & Record<string, unknown>, string][] = [
  ['empty id', { id: '' }, 'id must be a non-empty string'],
  ['missing rng', { rng: undefined }, 'rng must be a function'],
  ['missing storage', { storage: undefined }, 'storage is required'],
  ['election not above heartbeat', { electionTicks: 3, heartbeatTicks: 5 }, 'electionTicks (3) must be greater than heartbeatTicks (5)'],
  ['equal election and heartbeat', { electionTicks: 2, heartbeatTicks: 2, leaseDriftTicks: 0 }, 'electionTicks (2) must be greater than heartbeatTicks (2)'],
  ['zero heartbeat', { heartbeatTicks: 0 }, 'heartbeatTicks (0) must be an integer >= 1'],
  ['fractional election', { electionTicks: 2.5 }, 'electionTicks (2.5) must be an integer >= 1'],
  ['zero inflight', { maxInflightMsgs: 0 }, 'maxInflightMsgs (0) must be an integer >= 1'],
  ['inflight bytes below message size', { maxSizePerMsg: 1000, maxInflightBytes: 999 }, 'maxInflightBytes (999) must be at least maxSizePerMsg (1000)'],
  ['negative drift', { leaseDriftTicks: -1 }, 'leaseDriftTicks (-1) must be an integer >= 0'],
  ['drift as long as the election timeout', { leaseDriftTicks: 10 }, 'leaseDriftTicks (10) must be less than electionTicks (10)'],
  ['unknown read option', { readOnlyOption: 'fast' as 'safe' }, "readOnlyOption (fast) must be 'safe' or 'lease'"],
  ['lease without check quorum', { readOnlyOption: 'lease', checkQuorum: false }, "readOnlyOption 'lease' requires checkQuorum"],
  ['negative applied', { applied: -1 }, 'applied (-1) must be an integer >= 0'],
  ['zero proposal queue', { maxProposalQueue: 0 }, 'maxProposalQueue (0) must be an integer >= 1'],
];

for (const [name, patch, message] of invalid) {
  t.test(`rejects ${name}`, async (t) => {
    let error: unknown;
    try {
      validateConfig({ ...base(), ...patch } as RaftConfig);
    } catch (e) {
      error = e;
    }
    t.ok(error instanceof ErrConfigInvalid, 'ErrConfigInvalid');
    t.equal((error as ErrConfigInvalid).code, 'RAFTLOCK_ERR_RAFT_CONFIG_INVALID');
    t.equal((error as Error).message.slice(0, message.length), message);
  });
}

t.test('applied must lie between the snapshot and the commit index', async (t) => {
  t.throws(() => new RawNode({ ...base(), applied: 5 }), /applied \(5\) must be within \[1, 1\]/);
  t.doesNotThrow(() => new RawNode({ ...base(), applied: 1 }));
});

t.test('an rng outside [0, 1) is caught', async (t) => {
  t.throws(() => new RawNode({ ...base(), rng: () => 1 }), /rng returned 1/);
});
