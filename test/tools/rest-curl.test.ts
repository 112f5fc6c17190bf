// The REST examples of the lock service this server replaces, run with curl unchanged but for the
// scheme (http) and the port this test's server listens on.
import t from 'tap';
import { freePort, runCommand, startRaftlock, toolProblems } from '../../bench/lib/proc.js';

const EXAMPLES = [
  `curl --location 'http://localhost:8083/v1/locks/try-lock' \\
    --header 'Content-Type: application/json' \\
    --data '{"resource":"locks/tasks/123", "owner":"e5943062358144b4b0bbff8868f7063d", "expiresMs":10000, "durability":0 }'`,
  `curl --location 'http://localhost:8083/v1/locks/try-extend' \\
--header 'Content-Type: application/json' \\
--data '{"resource": "locks/tasks/123", "owner": "e5943062358144b4b0bbff8868f7063d", "expiresMs": 60000, "durability": 0}'`,
  `curl --location 'http://localhost:8083/v1/locks/get-info' \\
--header 'Content-Type: application/json' \\
--data '{"resource": "locks/tasks/123", "durability": 0}'`,
  `curl --location 'http://localhost:8083/v1/locks/try-unlock' \\
--header 'Content-Type: application/json' \\
--data '{"resource": "locks/tasks/123", "owner": "e5943062358144b4b0bbff8868f7063d", "durability": 1}'`,
];

t.test("the lock service's curl examples, against the REST API", async (t) => {
  const problems = toolProblems({ commands: ['curl', 'bash'] });
  if (problems.length > 0) {
    t.fail(`missing: ${problems.join('; ')}. bash .ci/run installs what test:tools needs`);
    return;
  }
  const httpPort = await freePort();
  const server = await startRaftlock({ extraArgs: ['--http-port', String(httpPort)] });
  t.teardown(() => server.stop());
  const replies: Record<string, unknown>[] = [];
  for (const example of EXAMPLES) {
    const result = await runCommand('bash', ['-c', example.replace(':8083/', `:${httpPort}/`)], { timeoutMs: 30_000 });
    t.equal(result.code, 0, `curl exited 0 (${result.stderr.trim()})`);
    replies.push(JSON.parse(result.stdout) as Record<string, unknown>);
  }
  t.same(replies[0], { type: 0, fencingToken: replies[0]!.fencingToken }, 'try-lock: Locked (0) with a token');
  t.type(replies[0]!.fencingToken, 'number');
  t.same(replies[1], { type: 2, fencingToken: replies[0]!.fencingToken }, 'try-extend: Extended (2), same token');
  t.match(replies[2], { type: 4, owner: 'e5943062358144b4b0bbff8868f7063d', fencingToken: replies[0]!.fencingToken }, 'get-info: Got (4) with the owner and token');
  t.ok((replies[2]!.remainingMs as number) > 50_000, 'and the extended lease');
  t.same(replies[3], { type: 102 }, 'try-unlock of the PERSISTENT lock (the example locked an EPHEMERAL one): LockDoesNotExist (102)');
});
