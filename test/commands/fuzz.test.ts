import t from 'tap';
import { ReplyWriter } from '../../resp/encoder.js';
import { dispatch } from '../../src/commands/dispatch.js';
import { COMMANDS } from '../../src/commands/table.js';
import type { ClientState, CommandContext, ServerInfo } from '../../src/commands/spec.js';
import { LockService } from '../../src/lock/service.js';
import { DEFAULT_CONFIG } from '../../src/server/config.js';
import { parseReply } from '../helpers/resp-reply.js';
import { mulberry32 } from '../helpers/random.js';
import { CommandStatsTable } from '../../src/stats/command-stats.js';
import { Slowlog } from '../../src/stats/slowlog.js';

const WORDS = [
  '0', '1', '-1', '2', '3', '100', '30000', '2147483647', '2147483648', '9223372036854775807', '9223372036854775808',
  '-9223372036854775808', '1.5', '', ' ', 'abc', 'r', 'owner', 'NX', 'XX', 'GT', 'LT', 'PX', 'EX', 'EXAT', 'PXAT',
  'KEEPTTL', 'GET', 'WAIT', 'PERSISTENT', 'EPHEMERAL', 'AUTH', 'default', 'SETNAME', 'LIB-NAME', 'LIB-VER', 'ID',
  'TYPE', 'normal', 'COUNT', 'INFO', 'DOCS', 'LIST', 'HELP', 'all', '*', 'save', 'k\r\nx', '\x00\xff',
];

t.test('random argument lists never throw and always produce exactly one reply', async (t) => {
  const seed = Number(process.env['FUZZ_SEED'] ?? 20261123);
  const random = mulberry32(seed);
  let now = 0;
  const service = new LockService({ clock: () => now });
  const clients: ClientState[] = [];
  const server: ServerInfo = {
    services: [service],
    serviceFor: () => service,
    partitionOf: () => 0,
    clockMs: () => now,
    config: { ...DEFAULT_CONFIG, requirepass: undefined },
    stats: {
      connectionsReceived: 0, commandsProcessed: 0, rejectedConnections: 0, protocolErrors: 0, netInputBytes: 0, netOutputBytes: 0, readsProcessed: 0, writesProcessed: 0,
      totalErrorReplies: 0, queryBufferLimitDisconnections: 0, outputBufferLimitDisconnections: 0,
    },
    commandStats: new CommandStatsTable(COMMANDS),
    slowlog: new Slowlog(),
    startedAtWallMs: 0,
    version: 'test',
    clients: () => clients,
    commands: () => COMMANDS,
    blockedClients: () => 0,
    wallClockMs: () => 1_700_000_000_000 + now,
  };
  const reply = new ReplyWriter(2);
  const client: ClientState = {
    id: 1, name: '', libName: '', libVer: '', proto: 2, authenticated: true, db: 0, addr: 'a', laddr: 'b',
    createdAtMs: 0, lastCommand: '', closeAfterReply: false, blocked: false, lastActiveMs: 0,
    bufferSizes: () => ({ query: 0, output: 0 }), onClose: new Set(),
  };
  clients.push(client);
  const ctx: CommandContext = { reply, client, server };
  const names = COMMANDS.flatMap((c) => [c.name, ...(c.subcommands ?? []).map((s) => s.name.replace('|', ' '))]);
  let failures = 0;
  for (let i = 0; i < 20_000 && failures < 5; i++) {
    now += Math.floor(random() * 50);
    const argv = names[Math.floor(random() * names.length)]!.split(' ');
    if (argv[0] === 'quit' || argv[0] === 'reset' || argv[0] === 'hello') argv[0] = 'ping';
    const extra = Math.floor(random() * 6);
    for (let j = 0; j < extra; j++) argv.push(WORDS[Math.floor(random() * WORDS.length)]!);
    let pending: ReturnType<typeof dispatch>;
    try {
      pending = dispatch(ctx, argv);
    } catch (error) {
      failures += 1;
      t.fail(`threw on ${JSON.stringify(argv)} (seed ${seed}): ${String(error)}`);
      continue;
    }
    if (pending !== undefined) {
      // A WAIT that queued: let it time out so exactly one reply follows.
      now += 3_000_000_000;
      service.runTimers();
      await pending;
    }
    const out = Buffer.from(reply.take(), 'latin1');
    const parsed = parseReply(out);
    if (parsed === undefined || parsed[1] !== out.length) {
      failures += 1;
      t.fail(`not exactly one reply for ${JSON.stringify(argv)} (seed ${seed}): ${JSON.stringify(out.toString('latin1'))}`);
    }
  }
  t.equal(failures, 0, `20000 random commands (seed ${seed})`);
});
