import t from 'tap';
import { createLogger } from '../../src/server/log.js';
import { ProcessCluster } from '../../bench/lib/cluster.js';
import { agreedLeadership, partitionTags, type Leadership } from '../../bench/lib/leaders.js';
import { startRaftlock } from '../../bench/lib/proc.js';
import { RespClient } from '../../bench/lib/resp-client.js';
import { RawClient } from '../helpers/raw-client.js';
import { sleep } from '../helpers/locks.js';

interface Line {
  level: string;
  time: string;
  node: string;
  msg: string;
  [field: string]: unknown;
}

/** The lines that are not one JSON object with a level label, an ISO time, this node's id and a message. */
function malformed(lines: readonly string[], node: string): string[] {
  return lines.filter((text) => {
    try {
      const line = JSON.parse(text) as Partial<Line>;
      return !['debug', 'info', 'warn', 'error'].includes(line.level!) || line.time !== new Date(line.time!).toISOString() ||
        line.node !== node || typeof line.msg !== 'string' || line.msg === '';
    } catch {
      return true;
    }
  });
}

const parse = (lines: readonly string[]): Line[] => lines.map((l) => JSON.parse(l) as Line);

/** The leader a line announces: this node elected, another seen, or a transfer's target. */
function leaderNamed(line: Line): string | undefined {
  if (line.msg === 'became leader') return line.node;
  if (line.msg === 'new leader') return line['leader'] as string;
  if (line.msg === 'leadership transfer finished') return line['to'] as string;
  return undefined;
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

t.test('createLogger writes one JSON object per line: level label, ISO time, node, msg and the fields', async (t) => {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', nodeId: 'n7', write: (line) => void lines.push(line) });
  log.debug('below the level');
  log.info('snapshot taken', { partition: 2, term: 5, bytes: 10 });
  log.warn('client refused', { token: 2n ** 64n + 1n });
  log.error('replica failed; stopping');
  t.ok(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')), 'one line each');
  t.same(malformed(lines.map((l) => l.trimEnd()), 'n7'), []);
  const [info, warn, error] = parse(lines);
  t.match(info, { level: 'info', node: 'n7', msg: 'snapshot taken', partition: 2, term: 5, bytes: 10 });
  t.match(warn, { level: 'warn', msg: 'client refused', token: '18446744073709551617' }, 'a bigint is written as its decimal digits');
  t.match(error, { level: 'error', msg: 'replica failed; stopping' });
  t.equal(lines.length, 3, 'debug is not written at info');
  const debug: string[] = [];
  createLogger({ level: 'debug', nodeId: 'n1', write: (line) => void debug.push(line) }).debug('peer message dropped', { peer: 'n2' });
  t.match(parse(debug), [{ level: 'debug', msg: 'peer message dropped', peer: 'n2' }]);
  const silent: string[] = [];
  createLogger({ level: 'silent', nodeId: 'n1', write: (line) => void silent.push(line) }).error('nothing');
  t.same(silent, [], '--log-level silent writes nothing');
});

t.test('a 3-node cluster logs elections, leader changes, peer links, snapshots and transfers once each, and nothing per command', async (t) => {
  const ids = ['n1', 'n2', 'n3'];
  // A long election timeout: a busy machine must not cause an election while the test counts lines.
  const cluster = await ProcessCluster.start({
    nodes: 3, partitions: 3, logLines: 100_000, args: ['--snapshot-min-entries', '1500', '--election-timeout-ms', '1000'],
  });
  t.teardown(() => cluster.close());
  const lines = (id: string, from = 0): Line[] => parse(cluster.node(id).log.slice(from));
  const marks = (): Map<string, number> => new Map(ids.map((id) => [id, cluster.node(id).log.length]));
  const quiet = async (): Promise<void> => {
    let before = '';
    await until('the logs to go quiet', 10_000, async () => {
      const now = ids.map((id) => cluster.node(id).log.length).join();
      if (now === before) return true;
      before = now;
      await sleep(500);
      return undefined;
    });
  };

  // Each partition settles on its preferred leader: p0 on n1, p1 on n2, p2 on n3.
  const settled = await until<Leadership>('the preferred leaders', 60_000, async () => {
    const leadership = await agreedLeadership(cluster);
    return leadership?.leaders.join() === 'n1,n2,n3' ? leadership : undefined;
  });
  await quiet();
  for (const id of ids) t.same(malformed(cluster.node(id).log, id), [], `${id}: every line is JSON with level, time, node and msg`);
  for (let p = 0; p < 3; p++) {
    const leader = settled.leaders[p]!;
    const term = settled.terms[p]!;
    t.ok(lines(leader).some((l) => l.msg === 'became leader' && l['partition'] === p && l['term'] === term), `${leader} logs that it became leader of partition ${p} in term ${term}`);
    for (const id of ids) {
      const named = lines(id).filter((l) => l['partition'] === p && l['term'] === term && leaderNamed(l) !== undefined);
      t.same(named.map(leaderNamed), [leader], `${id} logs partition ${p}'s leader in term ${term} once`);
    }
  }

  const beforeCommands = marks();
  const client = await RespClient.connect(cluster.node('n1').port);
  t.teardown(() => client.close());
  const klock = (key: string): Promise<unknown> => new Promise((resolve) => client.send(['KLOCK', key, 'o', 60_000], resolve));
  const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => klock(`command-${i}`)));
  t.ok(replies.every((r) => r === 0), '1000 KLOCKs granted (a third led here, the rest forwarded)');
  await sleep(500);
  for (const id of ids) t.same(lines(id, beforeCommands.get(id)), [], `${id}: 1000 commands add no log line`);

  // Kill n3, the leader of partition 2: each survivor logs the new leader once, the lost link once
  // with its reason, and its failed reconnects once (then at debug).
  const beforeKill = marks();
  await cluster.kill('n3');
  const elected = await until<Leadership>('a new leader of partition 2', 30_000, async () => {
    const leadership = await agreedLeadership(cluster);
    return leadership !== null && leadership.terms[2]! > settled.terms[2]! ? leadership : undefined;
  });
  const newLeader = elected.leaders[2]!;
  await sleep(3000); // several reconnect attempts
  for (const id of ['n1', 'n2']) {
    const since = lines(id, beforeKill.get(id));
    const named = since.filter((l) => leaderNamed(l) !== undefined);
    t.same(named.map((l) => [l['partition'], leaderNamed(l), l['term']]), [[2, newLeader, elected.terms[2]]], `${id}: partition 2's new leader, once`);
    t.match(since.filter((l) => l.msg === 'peer disconnected'), [{ level: 'info', peer: 'n3', reason: /\w/ }], `${id}: the lost link, once, with its reason`);
    t.equal(since.filter((l) => l.msg === 'peer disconnected').length, 1);
    const unreachable = since.filter((l) => l.msg === 'cannot connect to peer');
    t.match(unreachable, [{ level: 'info', peer: 'n3', reason: /ECONNREFUSED/ }], `${id}: a peer that stays down is logged once, not per reconnect attempt`);
    t.equal(unreachable.length, 1);
  }
  t.match(lines(newLeader, beforeKill.get(newLeader)).filter((l) => l.msg === 'campaigning for leadership'),
    [{ partition: 2, term: Number, reason: 'election timeout', previousLeader: 'n3' }], `${newLeader} says why it campaigned`);

  // Enough writes to partition 2 that its leader snapshots and drops the log n3 is missing.
  const tags = await partitionTags(cluster.node('n1').port, 3, 'log-test-');
  const writes = await Promise.all(Array.from({ length: 2500 }, (_, i) => klock(`{${tags[2]}}:${i}`)));
  t.ok(writes.every((r) => r === 0), '2500 KLOCKs on partition 2 granted');
  const taken = await until('a snapshot of partition 2', 20_000, () => lines(newLeader).find((l) => l.msg === 'snapshot taken' && l['partition'] === 2));
  t.match(taken, { level: 'info', term: elected.terms[2], index: Number, bytes: Number, durationMs: Number });
  t.ok((taken['index'] as number) >= 1500 && (taken['bytes'] as number) > 0, `snapshot at index ${taken['index']}, ${taken['bytes']} bytes`);

  const beforeRestart = marks();
  await cluster.startNode('n3');
  const installed = await until('n3 to install the snapshot', 30_000, () => lines('n3').find((l) => l.msg === 'snapshot installed from the leader'));
  t.match(installed, { level: 'info', partition: 2, term: Number, leader: newLeader, bytes: Number, durationMs: Number });
  t.ok((installed['index'] as number) >= (taken['index'] as number), 'the leader\'s snapshot (or a later one)');
  for (const id of ['n1', 'n2']) {
    const connected = (): Line[] => lines(id, beforeRestart.get(id)).filter((l) => l.msg === 'peer connected');
    // n1 and n2 dial n3, each after its own backoff.
    await until(`${id} to reconnect to n3`, 10_000, () => (connected().length > 0 ? true : undefined));
    t.match(connected(), [{ level: 'info', peer: 'n3', outbound: true }], `${id}: the link back to n3, once`);
    t.equal(connected().length, 1);
  }

  // Once n3 has caught up, partition 2 goes back to it: a leadership transfer, logged on both ends.
  await until('n3 to lead partition 2 again', 30_000, () => lines('n3').find((l) => l.msg === 'became leader' && l['partition'] === 2));
  await sleep(500);
  const handover = lines(newLeader, beforeRestart.get(newLeader)).filter((l) => l['partition'] === 2);
  t.match(handover, [
    { msg: 'leadership transfer started', to: 'n3', reason: 'the preferred leader is back' },
    { msg: 'stepped down', reason: 'leadership transfer to n3' },
    { msg: 'leadership transfer finished', to: 'n3' },
  ], `${newLeader}: the transfer started, stepped down and finished`);
  t.equal(handover.length, 3);
  t.match(lines('n3').filter((l) => l['partition'] === 2 && l.msg === 'campaigning for leadership').at(-1),
    { reason: `leadership transfer from ${newLeader}` }, 'n3 campaigned because of the transfer');
});

t.test('a refused client is logged once, with the reason, and never with its password', async (t) => {
  const server = await startRaftlock({ password: 'open-sesame', extraArgs: ['--maxclients', '2'] });
  t.teardown(() => server.stop());
  await sleep(200); // the readiness PING's connection is gone
  const logged = (): Line[] => parse(server.stderr.trim().split('\n'));
  const refused = (): Line[] => logged().filter((l) => l.msg === 'client refused');

  const client = async (): Promise<{ raw: RawClient; addr: string }> => {
    const raw = await RawClient.connect(server.port);
    t.teardown(() => raw.close());
    return { raw, addr: `127.0.0.1:${raw.socket.localPort}` };
  };
  const { raw: guesser, addr: guesserAddr } = await client();
  for (const args of [['AUTH', 'wrong-1'], ['AUTH', 'default', 'wrong-2'], ['HELLO', '3', 'AUTH', 'default', 'wrong-3']]) {
    t.match(await guesser.call(...args), { err: /^WRONGPASS/ });
  }
  const { raw: stranger, addr: strangerAddr } = await client();
  t.match(await stranger.call('AUTH', 'mallory', 'wrong-4'), { err: /^WRONGPASS/ });
  await sleep(200);
  t.match(refused(), [
    { level: 'warn', client: Number, addr: guesserAddr, reason: 'wrong password' },
    { level: 'warn', client: Number, addr: strangerAddr, reason: 'unknown user' },
  ], 'one line per client, however often it retries');
  t.equal(refused().length, 2);

  const { raw: third, addr: thirdAddr } = await client();
  t.same(await third.reply(), { err: 'ERR max number of clients reached' });
  await third.closed;
  await sleep(200);
  t.match(refused().slice(2), [{ level: 'warn', addr: thirdAddr, reason: 'max number of clients reached' }]);

  stranger.close();
  await sleep(200);
  const { raw: garbled, addr: garbledAddr } = await client();
  garbled.send('SET "a b\r\n');
  t.match(await garbled.reply(), { err: /Protocol error/ });
  await garbled.closed;
  await sleep(200);
  t.match(logged().filter((l) => l.msg === 'closing client'), [{ level: 'info', addr: garbledAddr, reason: 'protocol error: unbalanced quotes in request' }]);

  t.equal(await server.stop().then((s) => s.code), 0);
  t.notMatch(server.stderr, /wrong-\d|open-sesame/, 'no password is logged');
  t.same(malformed(server.stderr.trim().split('\n'), 'n1'), [], 'every line is JSON with level, time, node and msg');
  t.match(logged().at(-1), { msg: 'shut down cleanly' }, 'the line written just before exit is not lost');
});
