import t from 'tap';
import { runScript, type ScriptRun } from '../../src/script/run.js';
import { luaVm, SCRIPT_INSTRUCTIONS_MAX } from '../../src/script/vm.js';
import { formatG17, formatNumberArg, luaNumberToInteger, type ScriptReply } from '../../src/script/reply.js';
import { Rand48 } from '../../src/script/random.js';
import { sha1Hex } from '../../src/script/sha1.js';
import { LockStateMachine } from '../../src/lock/machine.js';
import { partitionOfKey } from '../../src/cluster/slots.js';

function run(body: string, options: Partial<ScriptRun> & { machine?: LockStateMachine } = {}): ScriptReply {
  const machine = options.machine ?? new LockStateMachine();
  return runScript(machine, {
    body, keys: [], args: [], nowMs: 1000, wallClockMs: 1_700_000_000_000, budget: SCRIPT_INSTRUCTIONS_MAX,
    partition: 0, partitions: 1, readOnly: false, ...options,
  });
}

/** Redis's error for a script failing at line 1: the message and the script's position. */
function failed(message: string, body: string, line = 1): ScriptReply {
  return { err: `${message} script: ${sha1Hex(body)}, on @user_script:${line}.` };
}

t.test('Redis replies as Lua values, and Lua values as Redis replies', async (t) => {
  const m = new LockStateMachine();
  m.set('held', 'owner', { mode: 'always', expiry: { kind: 'none' } }, 0);
  const cases: [string, ScriptReply, string[]?][] = [
    ['return redis.call("get", KEYS[1])', 'owner', ['held']],
    ['return redis.call("get", KEYS[1]) == false', 1, ['missing']],
    ['return type(redis.call("get", KEYS[1]))', 'boolean', ['missing']],
    ['return type(redis.call("exists", KEYS[1]))', 'number', ['held']],
    ['return redis.call("exists", KEYS[1]) + 0.5', 1, ['held']],
    ['return tostring(redis.call("pttl", KEYS[1]))', '-1', ['held']],
    ['local r = redis.call("set", KEYS[1], "v") return r.ok', 'OK', ['k']],
    ['local r = redis.call("set", KEYS[1], "v") return r', { ok: 'OK' }, ['k']],
    ['local r = redis.pcall("set", KEYS[1]) return r.err', 'ERR Wrong number of args calling Redis command from script', ['k']],
    ['return redis.call("kgetlock", KEYS[1])', ['owner', 0, -1], ['held']],
    ['return redis.call("kgetlock", KEYS[1]) == false', 1, ['nobody']],
    ['return 42', 42],
    ['return 3.99', 3],
    ['return -3.99', -3],
    ['return 1e300', -9223372036854775808],
    ['return "text"', 'text'],
    ['return true', 1],
    ['return false', null],
    ['return nil', null],
    ['return {1, "two", {3}, false, 5}', [1, 'two', [3], null, 5]],
    ['return {1, nil, 3}', [1]],
    ['return {ok = "FINE"}', { ok: 'FINE' }],
    ['return {err = "MYCODE went wrong"}', { err: 'MYCODE went wrong' }],
    ['return {err = "E", ok = "O"}', { err: 'E' }],
    ['return {double = 1.5}', { double: 1.5 }],
    ['return redis.status_reply("DONE")', { ok: 'DONE' }],
    ['return redis.error_reply("MYERR oops")', { err: 'MYERR oops' }],
    ['return redis.error_reply("oops")', { err: 'ERR oops' }],
    ['return redis.error_reply("-CODE x")', { err: 'CODE x' }],
    ['return redis.sha1hex("")', 'da39a3ee5e6b4b0d3255bfef95601890afd80709'],
    ['return {KEYS[1], KEYS[2], ARGV[1], #ARGV}', ['a', 'b', 'x', 2], ['a', 'b']],
    ['return unpack({7, 8})', 7],
    ['return math.pow(2, 10)', 1024],
    ['return redis.LOG_WARNING', 3],
    ['redis.log(redis.LOG_NOTICE, "kept out of the replies") return 1', 1],
    ['return tostring(5100)', '5100'],
    ['return tostring(10 / 4)', '2.5'],
    ['return tostring({}) == tostring({})', null],
  ];
  for (const [body, expected, keys] of cases) {
    const args = keys !== undefined && keys.length > 1 ? ['x', 'y'] : [];
    t.same(run(body, { machine: m, keys: keys ?? [], args }), expected, body);
  }
});

t.test('numbers passed to redis.call are formatted as Redis formats them', async (t) => {
  const m = new LockStateMachine();
  const stored = (value: string): ScriptReply => run(`redis.call("set", KEYS[1], ${value}) return redis.call("get", KEYS[1])`, { machine: m, keys: ['n'] });
  t.equal(stored('5100.0'), '5100');
  t.equal(stored('5100'), '5100');
  t.equal(stored('-0.0'), '0');
  t.equal(stored('0.1'), '0.10000000000000001');
  t.equal(stored('1/3'), '0.33333333333333331');
  t.equal(stored('2^63'), '9.2233720368547758e+18');
  t.equal(stored('2^62'), '4611686018427387904');
  t.equal(stored('1e-5'), '1.0000000000000001e-05');
  t.equal(stored('tonumber("1700000000000") + 0.0'), '1700000000000');
  t.equal(formatNumberArg(-42), '-42');
  t.equal(formatG17(1.5), '1.5');
  t.equal(formatG17(Infinity), 'inf');
  t.equal(formatG17(-Infinity), '-inf');
  t.equal(formatG17(NaN), '-nan');
  t.equal(formatG17(123456789012345680000), '1.2345678901234568e+20');
  t.equal(luaNumberToInteger(-0.5), 0);
  t.equal(luaNumberToInteger(NaN), -9223372036854775808);
});

t.test('a command name may come from a variable, in any case', async (t) => {
  const m = new LockStateMachine();
  t.same(run('local cmd = ARGV[1] return redis.call(cmd, KEYS[1], "v")', { machine: m, keys: ['k'], args: ['SeT'] }), { ok: 'OK' });
  t.equal(run('local c = "GET" return redis.call(c, KEYS[1])', { machine: m, keys: ['k'] }), 'v');
});

t.test('redis.call raises a failed command\'s error; redis.pcall returns it', async (t) => {
  const raise = 'redis.call("set", KEYS[1], "v", "EX", "soon") return "not reached"';
  t.same(run(raise, { keys: ['k'] }), failed('ERR value is not an integer or out of range', raise));
  const caught = 'local r = redis.pcall("set", KEYS[1], "v", "EX", "soon") return {type(r), r.err}';
  t.same(run(caught, { keys: ['k'] }), ['table', 'ERR value is not an integer or out of range']);
  const lua = 'local ok, e = pcall(redis.call, "set", KEYS[1], "v", "NX", "XX") return e.err';
  t.equal(run(lua, { keys: ['k'] }), 'ERR syntax error', 'a Lua pcall catches the error table');
  const secondLine = 'local x = 1\nreturn redis.call("nosuch")';
  t.same(run(secondLine), failed('ERR Unknown Redis command called from script', secondLine, 2));
});

t.test('Redis\'s error texts for bad calls', async (t) => {
  const cases: [string, string][] = [
    ['return redis.call("nosuch", "x")', 'ERR Unknown Redis command called from script'],
    ['return redis.call("get")', 'ERR Wrong number of args calling Redis command from script'],
    ['return redis.call("eval", "return 1", "0")', 'ERR This Redis command is not allowed from script'],
    ['return redis.call("client")', 'ERR Wrong number of args calling Redis command from script'],
    ['return redis.call()', 'ERR Please specify at least one argument for this redis lib call'],
    ['return redis.call("get", {})', 'ERR Lua redis lib command arguments must be strings or integers'],
    ['return redis.call("get", nil)', 'ERR Lua redis lib command arguments must be strings or integers'],
    ['return redis.call("klock", "r", "o", 0)', "ERR invalid expire time in 'klock' command"],
    ['return redis.call("kextend", "r", "o", 2^31)', "ERR invalid expire time in 'kextend' command"],
    ['return redis.call("set", "k", "v", "PX", 0)', "ERR invalid expire time in 'set' command"],
    ['return redis.call("expire", "k", 2^62)', "ERR invalid expire time in 'expire' command"],
    ['return redis.call("klock", "r", "o", 1000, "EPHEMERAL")', "ERR EPHEMERAL locks live in the leader's memory only and cannot be used from scripts, which every replica runs"],
    ['return redis.call("kgetlock", "r", "EPHEMERAL")', "ERR EPHEMERAL locks live in the leader's memory only and cannot be used from scripts, which every replica runs"],
  ];
  for (const [body, message] of cases) t.same(run(body), failed(message, body), body);
  t.same(run('return 1 +'), { err: "ERR Error compiling script (new function): user_script:1: unexpected symbol near <eof>" });
  t.equal(luaVm().compile('return 1 +'), "ERR Error compiling script (new function): user_script:1: unexpected symbol near <eof>");
  t.equal(luaVm().compile('return 1'), null);
});

t.test('runtime errors carry the script and line, as Redis 7 reports them', async (t) => {
  const cases: [string, string, number?][] = [
    ['x = 1', 'ERR user_script:1: Attempt to modify a readonly table'],
    ['return undefined_name', "ERR user_script:1: Script attempted to access nonexistent global variable 'undefined_name'"],
    ['string.foo = 1', 'ERR user_script:1: Attempt to modify a readonly table'],
    ['redis.call = nil', 'ERR user_script:1: Attempt to modify a readonly table'],
    ['rawset(math, "pi", 3)', 'ERR user_script:1: Attempt to modify a readonly table'],
    ['rawset(_G, "x", 3)', 'ERR user_script:1: Attempt to modify a readonly table'],
    ['setmetatable(string, nil)', 'ERR user_script:1: cannot change a protected metatable'],
    ['\nlocal f = nil\nf()', "ERR user_script:3: attempt to call a nil value (local 'f')", 3],
    ['error("boom")', 'ERR user_script:1: boom'],
    ['error({err = "CUSTOM failure"})', 'CUSTOM failure'],
    ['return os.time()', "ERR user_script:1: Script attempted to access nonexistent global variable 'os'"],
    ['return io', "ERR user_script:1: Script attempted to access nonexistent global variable 'io'"],
    ['return loadstring', "ERR user_script:1: Script attempted to access nonexistent global variable 'loadstring'"],
    ['return coroutine', "ERR user_script:1: Script attempted to access nonexistent global variable 'coroutine'"],
    ['return redis.log(1)', 'ERR redis.log() requires two arguments or more.'],
    ['return redis.log("x", "y")', 'ERR First argument must be a number'],
    ['return redis.log(9, "y")', 'ERR Invalid debug level.'],
    ['return redis.sha1hex()', 'ERR wrong number of arguments'],
    ['return redis.error_reply()', 'ERR wrong number or type of arguments'],
    ['return redis.status_reply({})', 'ERR wrong number or type of arguments'],
  ];
  for (const [body, message, line] of cases) t.same(run(body), failed(message, body, line), body);
  t.match(JSON.stringify(run('local t = {} t[1] = t return t')), /\[\[\[.*\{"err":"ERR reached lua stack limit"\}\]\]\]/, 'a table containing itself ends in an error element');
  t.same(run('return string.rep("x", 2^40)'), { err: 'ERR resulting string too large' }, 'string.rep is bounded');
  t.equal(run('return ("ab"):rep(3, "-")'), 'ab-ab-ab');
  t.equal(run('local s = "abc" return s:upper()'), 'ABC', 'string methods work');
  t.same(run('return getmetatable("")'), null, 'the string metatable is hidden');
});

t.test('nothing a script does survives into the next run', async (t) => {
  t.equal(run('local x = 5 return x'), 5);
  t.same(run('KEYS[5] = "mine" return KEYS[5]', { keys: ['a'] }), 'mine', 'KEYS is the script\'s own table');
  t.same(run('return KEYS[5]', { keys: ['a'] }), null);
  t.same(run('return {pcall(function() string.len = nil end)}'), [null, 'user_script:1: Attempt to modify a readonly table']);
  t.equal(run('return string.len("abc")'), 3);
});

t.test('math.random is Redis\'s: reseeded for every script, the same on every replica', async (t) => {
  const first = run('return tostring(math.random())');
  t.equal(first, '0.17082803611217', 'the first number Redis gives');
  t.equal(run('return tostring(math.random())'), first, 'every run starts over');
  const draws = 'local d = {} for i = 1, 50 do d[#d + 1] = math.random(10) d[#d + 1] = math.random(5, 7) end return d';
  const sequence = run(draws) as number[];
  t.same(run(draws), sequence, 'the same draws on every run');
  t.ok(sequence.every((n, i) => (i % 2 === 0 ? n >= 1 && n <= 10 : n >= 5 && n <= 7)), 'within the asked ranges');
  t.equal(run('return math.random(1)'), 1);
  t.equal(run('math.randomseed(42) return tostring(math.random())'), run('math.randomseed(42) return tostring(math.random())'));
  t.same(run('return math.random(0)'), failed("ERR user_script:1: bad argument #1 to 'random' (interval is empty)", 'return math.random(0)'));
  const r = new Rand48();
  const a = r.nextUnit();
  t.not(r.nextUnit(), a);
  r.seed(0);
  t.equal(r.nextUnit(), a, 'seed 0 starts the same sequence');
});

t.test('a runaway script is stopped by its instruction budget, even inside pcall', async (t) => {
  const loop = 'local i = 0 while true do i = i + 1 end';
  const budgetError = (body: string, budget: number): ScriptReply =>
    failed(`ERR Script exceeded its budget of ${budget} Lua instructions and was stopped (writes it made stay applied)`, body);
  t.same(run(loop, { budget: 50_000 }), budgetError(loop, 50_000));
  const nested = 'while true do pcall(function() while true do end end) end';
  t.same(run(nested, { budget: 50_000 }), budgetError(nested, 50_000));
  const handler = 'while true do xpcall(function() while true do end end, function() while true do end end) end';
  t.same(run(handler, { budget: 50_000 }), budgetError(handler, 50_000));
  const erroring = 'xpcall(function() error("x") end, function() while true do end end) return "done"';
  t.same(run(erroring, { budget: 50_000 }), budgetError(erroring, 50_000), 'a message handler that loops');
  const m = new LockStateMachine();
  const partial = 'redis.call("set", KEYS[1], "v") while true do end';
  t.same(run(partial, { machine: m, keys: ['k'], budget: 20_000 }), budgetError(partial, 20_000));
  t.equal(m.get('k', 1000), 'v', 'writes before the stop stay, as in Redis');
  t.equal(run('local n = 0 for i = 1, 1000 do n = n + i end return n', { budget: 20_000 }), 500500, 'a bounded loop within budget');
});

t.test('scripts touch only their own partition, and EVAL_RO only reads', async (t) => {
  const partitions = 4;
  const key = 'lock:x';
  const partition = partitionOfKey(key, partitions);
  const other = ['a', 'b', 'c', 'd', 'e', 'f'].find((k) => partitionOfKey(k, partitions) !== partition)!;
  const body = 'return redis.call("get", ARGV[1])';
  t.equal(run(body, { args: [key], partition, partitions }), null, 'a key of the partition');
  t.same(run(body, { args: [other], partition, partitions }), failed('ERR Script attempted to access a non local key in a cluster node', body));
  const write = 'return redis.call("del", KEYS[1])';
  t.same(run(write, { keys: ['k'], readOnly: true }), failed('ERR Write commands are not allowed from read-only scripts.', write));
  t.equal(run('return redis.call("exists", KEYS[1])', { keys: ['k'], readOnly: true }), 0);
});

t.test('every command a script may call runs against the lock table', async (t) => {
  const m = new LockStateMachine();
  const cases: [string, ScriptReply][] = [
    ['return redis.call("set", "k", "v", "NX", "PX", 5000)', { ok: 'OK' }],
    ['return redis.call("set", "k", "w", "NX")', null],
    ['return redis.call("set", "k", "w", "XX", "GET", "KEEPTTL")', 'v'],
    ['return redis.call("pttl", "k")', 5000],
    ['return redis.call("ttl", "k")', 5],
    ['return redis.call("set", "t", "v", "EXAT", 1700000000 + 60)', { ok: 'OK' }],
    ['return redis.call("pttl", "t")', 60_000],
    ['return redis.call("set", "t", "v", "PXAT", 1)', { ok: 'OK' }],
    ['return redis.call("exists", "t", "k", "k")', 2],
    ['return redis.call("expire", "k", 100, "GT")', 1],
    ['return redis.call("pexpire", "k", 100, "GT")', 0],
    ['return redis.call("persist", "k")', 1],
    ['return redis.call("ttl", "k")', -1],
    ['return redis.call("unlink", "k", "nope")', 1],
    ['return redis.call("del", "k")', 0],
    ['return redis.call("klock", "r", "me", 1000, "WAIT", 5000)', 0],
    ['return redis.call("klock", "r", "you", 1000)', null],
    ['return redis.call("kextend", "r", "me", 3000, "PERSISTENT")', 0],
    ['return redis.call("kgetlock", "r")', ['me', 0, 3000]],
    ['return redis.call("kunlock", "r", "you")', 0],
    ['return redis.call("kunlock", "r", "me")', 1],
    ['return redis.call("kextend", "r", "me", 3000)', null],
    ['return redis.call("klock", "r", "you", 1000)', 1],
    ['return redis.call("get", "r")', 'you'],
  ];
  for (const [body, expected] of cases) t.same(run(body, { machine: m }), expected, body);
});
