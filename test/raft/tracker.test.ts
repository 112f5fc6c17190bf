import t from 'tap';
import { ProgressTracker } from '../../raft/tracker.js';
import { mulberry32 } from '../helpers/random.js';

const CLOCK = { tick: 0, round: 0 };

/** The quorum-th largest of the voters' values, by sorting. */
const reference = (voters: string[], values: Map<string, number>): number =>
  voters.map((id) => values.get(id)!).sort((a, b) => b - a)[Math.floor(voters.length / 2)]!;

t.test('quorumValue is the quorum-th largest voter value, learners left out, whatever the order and ties', async (t) => {
  const rng = mulberry32(7);
  const wrong: string[] = [];
  let checks = 0;
  for (let round = 0; round < 500; round++) {
    const voters = Array.from({ length: 1 + Math.floor(rng() * 7) }, (_, i) => `v${i}`);
    const learners = rng() < 0.5 ? ['l0'] : [];
    const tracker = new ProgressTracker(16, 0);
    tracker.setConf({ voters, learners }, 1, CLOCK);
    const values = new Map(voters.map((id) => [id, Math.floor(rng() * 5)]));
    // Learners get the largest values: counting them would raise the result.
    for (const id of learners) values.set(id, 100);
    // Twice: the working array kept between calls still holds the last call's values.
    for (let again = 0; again < 2; again++) {
      const asked: string[] = [];
      const got = tracker.quorumValue((id, _pr, given: Map<string, number>) => {
        asked.push(id);
        return given.get(id)!;
      }, values);
      checks++;
      if (got !== reference(voters, values) || asked.length !== voters.length) wrong.push(`${JSON.stringify([...values])}: ${got} after asking ${asked.join(',')}`);
    }
    // Fewer voters than last time: the entries past the count must not matter.
    if (voters.length > 1) {
      const fewer = voters.slice(0, -1);
      tracker.setConf({ voters: fewer, learners: [] }, 1, CLOCK);
      const got = tracker.quorumValue((id) => values.get(id)!, null);
      checks++;
      if (got !== reference(fewer, values)) wrong.push(`${JSON.stringify([...values])} shrunk to ${fewer.length}: ${got}`);
    }
  }
  t.ok(checks > 1000, `${checks} checks`);
  t.same(wrong, [], 'every one agrees with sorting');
});
