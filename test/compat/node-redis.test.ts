import t from 'tap';
import { createClient } from 'redis';
import { ephemeralTokenBase, startServer } from '../helpers/server.js';

for (const RESP of [2, 3] as const) {
  t.test(`node-redis with RESP${RESP}: connects and runs locks and the string subset`, async (t) => {
    const s = await startServer();
    t.teardown(s.close);
    const client = createClient({ socket: { port: s.port, host: '127.0.0.1', reconnectStrategy: false }, RESP });
    client.on('error', () => undefined);
    await client.connect();
    t.teardown(() => client.destroy());
    t.equal(client.isReady, true);
    t.match(await client.sendCommand(['CLIENT', 'INFO']), new RegExp(`resp=${RESP}`));
    t.equal(await client.sendCommand(['KLOCK', 'r', 'a', '30000']), 0);
    t.equal(await client.sendCommand(['KLOCK', 'r', 'b', '30000']), null);
    t.match(await client.sendCommand(['KGETLOCK', 'r']), ['a', 0, Number]);
    t.equal(await client.sendCommand(['KUNLOCK', 'r', 'a']), 1);
    t.equal(await client.sendCommand(['KLOCK', 'r', 'b', '30000', 'EPHEMERAL', 'WAIT', '100']), ephemeralTokenBase(s.server));
    t.equal(await client.set('k', 'v', { condition: 'NX', expiration: { type: 'PX', value: 30000 } }), 'OK');
    t.equal(await client.set('k', 'w', { condition: 'NX' }), null);
    t.equal(await client.get('k'), 'v');
    t.equal(await client.exists('k'), 1);
    t.ok((await client.pTTL('k')) > 29000);
    t.equal(await client.expire('k', 5), 1);
    t.equal(await client.ttl('k'), 5);
    t.equal(await client.persist('k'), 1);
    t.equal(await client.del('k'), 1);
    t.equal(await client.dbSize(), 0);
    t.equal(await client.ping(), 'PONG');
    await t.rejects(client.sendCommand(['KLOCK', 'r', 'x', '0']), /invalid expire time in 'klock' command/);
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => client.sendCommand(['KLOCK', `m${i}`, 'o', '1000'])));
    t.same(replies, Array(50).fill(0), 'auto-pipelined commands');
  });
}
