import t from 'tap';
import { startServer } from '../helpers/server.js';
import type { RawClient } from '../helpers/raw-client.js';
import { sleep } from '../helpers/locks.js';

/** The `name:value` lines of an INFO reply whose names start with prefix, as a map. */
async function infoLines(c: RawClient, section: string, prefix: string): Promise<Map<string, string>> {
  const text = String(await c.call('INFO', section));
  const lines = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':');
    if (line.startsWith(prefix) && at > 0) lines.set(line.slice(0, at), line.slice(at + 1));
  }
  return lines;
}

/** A cmdstat_ value's fields as numbers. */
function fields(value: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pair of (value ?? '').split(',')) {
    const [key, number] = pair.split('=');
    if (key !== undefined && number !== undefined) out[key] = Number(number);
  }
  return out;
}

const CMDSTAT = /^calls=\d+,usec=\d+,usec_per_call=\d+\.\d{2},rejected_calls=\d+,failed_calls=\d+$/;
const PERCENTILES = /^p50=(\d+\.\d{3}),p99=(\d+\.\d{3}),p99\.9=(\d+\.\d{3})$/;

t.test('INFO commandstats counts calls, refusals before running and error replies per command', async (t) => {
  const s = await startServer({ requirepass: 'secret' });
  t.teardown(s.close);
  const c = await s.connect();
  t.match(await c.call('KLOCK', 'r', 'o', 60000), { err: /^NOAUTH/ }, 'refused: not authenticated');
  t.same(await c.call('AUTH', 'secret'), { ok: 'OK' });
  for (let i = 0; i < 3; i++) t.equal(await c.call('KLOCK', 'r', 'o', 60000), 0);
  t.match(await c.call('KLOCK', 'r'), { err: /wrong number of arguments/ }, 'refused: arity');
  t.match(await c.call('KLOCK', 'r', 'o', 'soon'), { err: /^ERR/ }, 'refused: the generic syntax check');
  t.same(await c.call('KLOCK', 'r', 'o', 0), { err: "ERR invalid expire time in 'klock' command" }, 'failed: the handler answered an error');
  t.match(await c.call('NOSUCH', 'x'), { err: /^ERR unknown command 'NOSUCH'/ });
  t.match(await c.call('CLIENT', 'NOSUCH'), { err: /^ERR unknown subcommand/ });
  t.match(await c.call('CLIENT'), { err: /wrong number of arguments for 'client'/ });
  t.match(await c.call('CLIENT', 'LIST'), /^id=/);
  t.match(await c.call('EVAL', "return redis.error_reply('MY boom')", 0), { err: 'MY boom' });

  const stats = await infoLines(c, 'commandstats', 'cmdstat_');
  for (const [name, value] of stats) t.match(value, CMDSTAT, `${name} has Redis's fields`);
  t.match(fields(stats.get('cmdstat_klock')), { calls: 4, rejected_calls: 3, failed_calls: 1 });
  t.ok(fields(stats.get('cmdstat_klock'))['usec']! > 0, 'klock took time');
  t.match(fields(stats.get('cmdstat_auth')), { calls: 1, rejected_calls: 0, failed_calls: 0 });
  t.match(fields(stats.get('cmdstat_client')), { calls: 0, rejected_calls: 1, failed_calls: 0 }, 'a container called alone is refused under its own name');
  t.match(fields(stats.get('cmdstat_client|list')), { calls: 1, failed_calls: 0 }, 'subcommands are counted as container|sub');
  t.match(fields(stats.get('cmdstat_eval')), { calls: 1, failed_calls: 1 });
  t.notOk([...stats.keys()].some((k) => /nosuch/i.test(k)), 'unknown commands have no entry');
  t.notOk(stats.has('cmdstat_get'), 'commands never called are left out');

  const errors = Number(/total_error_replies:(\d+)/.exec(String(await c.call('INFO', 'stats')))?.[1]);
  t.equal(errors, 8, 'total_error_replies counts every error reply');
  t.notMatch(String(await c.call('INFO')), /# Commandstats|# Latencystats/, 'not in the default INFO, as in Redis');
  t.match(String(await c.call('INFO', 'all')), /# Commandstats\r\ncmdstat_/);
  t.match(String(await c.call('INFO', 'everything')), /# Latencystats\r\nlatency_percentiles_usec_/);
});

t.test('INFO latencystats gives p50, p99 and p99.9 in microseconds for each command that ran', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  for (let i = 0; i < 20; i++) await c.call('KLOCK', `r${i}`, 'o', 60000, 'EPHEMERAL');
  await c.call('GET', 'k');
  t.match(await c.call('KLOCK', 'r'), { err: /wrong number/ });
  await c.call('CLIENT', 'SETNAME', 'x');
  const lines = await infoLines(c, 'latencystats', 'latency_percentiles_usec_');
  t.same([...lines.keys()].sort(), ['latency_percentiles_usec_client|setname', 'latency_percentiles_usec_get', 'latency_percentiles_usec_klock'],
    'every command that ran, and only those');
  for (const [name, value] of lines) {
    const m = PERCENTILES.exec(value);
    t.ok(m !== null, `${name}: ${value}`);
    const [p50, p99, p999] = m!.slice(1).map(Number) as [number, number, number];
    t.ok(p50 > 0 && p50 <= p99 && p99 <= p999, `${name}: 0 < p50 <= p99 <= p99.9`);
  }
});

t.test('a command blocked in KLOCK ... WAIT is counted once it is served, without the time it waited', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const holder = await s.connect();
  const waiter = await s.connect();
  t.equal(await holder.call('KLOCK', 'r', 'a', 60000), 0);
  waiter.command('KLOCK', 'r', 'b', 60000, 'WAIT', 5000);
  await sleep(400);
  t.equal(await holder.call('KUNLOCK', 'r', 'a'), 1);
  t.equal(await waiter.reply(), 1, 'the waiter got the lock after about 400 ms');
  const klock = fields((await infoLines(holder, 'commandstats', 'cmdstat_klock')).get('cmdstat_klock'));
  t.equal(klock['calls'], 2);
  t.ok(klock['usec']! < 300_000, `the wait is not counted (usec=${klock['usec']})`);
});

t.test('CONFIG RESETSTAT clears command statistics and INFO stats counters', async (t) => {
  const s = await startServer();
  t.teardown(s.close);
  const c = await s.connect();
  await c.call('KLOCK', 'r', 'o', 60000);
  await c.call('KLOCK', 'r');
  await c.call('NOSUCH');
  t.same(await c.call('CONFIG', 'RESETSTAT'), { ok: 'OK' });
  const stats = await infoLines(c, 'commandstats', 'cmdstat_');
  t.same([...stats.keys()], ['cmdstat_config|resetstat'], 'only RESETSTAT itself, counted once it ran');
  t.same(await infoLines(c, 'latencystats', 'latency_percentiles_usec_klock'), new Map(), 'latency histograms are gone too');
  const info = String(await c.call('INFO', 'stats'));
  t.match(info, /total_error_replies:0\r\n/);
  t.match(info, /total_connections_received:0\r\n/);
  t.equal(await c.call('KGETLOCK', 'r').then((r) => (r as unknown[])[0]), 'o', 'locks are untouched');
});
