import t from 'tap';
import RedisParser from 'redis-parser';
import { ProtocolError, RequestDecoder } from '../../resp/decoder.js';
import { mulberry32 } from '../helpers/random.js';

type Rng = () => number;
const int = (rng: Rng, min: number, max: number): number => min + Math.floor(rng() * (max - min + 1));

/** Bytes that matter to the protocol show up far more often than chance would have them. */
const INTERESTING = Buffer.from('\r\n*$-0123456789 "\'\\x\t\v\0\xff', 'latin1');

function randomBytes(rng: Rng, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) {
    out[i] = rng() < 0.3 ? INTERESTING[int(rng, 0, INTERESTING.length - 1)]! : int(rng, 0, 255);
  }
  return out;
}

function randomArg(rng: Rng, big: boolean): Buffer {
  return randomBytes(rng, big ? int(rng, 1000, 100_000) : int(rng, 0, 300));
}

/** A valid RESP2 multibulk request stream, the commands in it and each command's size in bytes. */
function randomStream(rng: Rng): { bytes: Buffer; commands: string[][]; sizes: number[] } {
  const parts: Buffer[] = [];
  const commands: string[][] = [];
  const sizes: number[] = [];
  const withBig = rng() < 0.05;
  for (let c = int(rng, 1, 12); c > 0; c--) {
    const args = Array.from({ length: int(rng, 1, 20) }, () => randomArg(rng, withBig && rng() < 0.1));
    const command: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
    for (const arg of args) command.push(Buffer.from(`$${arg.length}\r\n`), arg, Buffer.from('\r\n'));
    parts.push(...command);
    sizes.push(command.reduce((sum, part) => sum + part.length, 0));
    commands.push(args.map((arg) => arg.latin1Slice()));
  }
  return { bytes: Buffer.concat(parts), commands, sizes };
}

/** Cuts bytes into chunks: mostly tiny ones, some single bytes, sometimes large ones. */
function randomChunks(rng: Rng, bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const roll = rng();
    const size = roll < 0.2 ? 1 : roll < 0.8 ? int(rng, 1, 64) : int(rng, 1, 70_000);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

interface Outcome {
  commands: string[][];
  end: 'waiting' | string;
}

/**
 * Runs our decoder over chunks the way a connection does: drain next() after
 * every push. Checks bufferedBytes after each drain: against the exact count
 * when command sizes are known, else that it stays within what was pushed.
 */
function runDecoder(chunks: Buffer[], sizes?: number[]): Outcome {
  const decoder = new RequestDecoder();
  const commands: string[][] = [];
  let pushed = 0;
  const checkBuffered = (): void => {
    const expected = sizes === undefined ? undefined : pushed - sizes.slice(0, commands.length).reduce((a, b) => a + b, 0);
    const buffered = decoder.bufferedBytes;
    if (expected !== undefined ? buffered !== expected : buffered < 0 || buffered > pushed) {
      throw new Error(`bufferedBytes is ${buffered}, expected ${expected ?? `0..${pushed}`}`);
    }
  };
  for (const chunk of chunks) {
    decoder.push(chunk);
    pushed += chunk.length;
    checkBuffered();
    for (let steps = 0; ; steps++) {
      if (steps > chunk.length + 1) throw new Error('next() keeps returning commands without consuming bytes');
      const result = decoder.next();
      if (result === null) {
        checkBuffered();
        break;
      }
      if (result instanceof ProtocolError) {
        if (decoder.next() !== result) throw new Error('a dead decoder must keep returning its error');
        return { commands, end: result.message };
      }
      commands.push(result);
    }
  }
  return { commands, end: 'waiting' };
}

function runRedisParser(chunks: Buffer[]): string[][] {
  const commands: string[][] = [];
  const parser = new RedisParser({
    returnBuffers: true,
    returnReply: (reply) => commands.push((reply as Buffer[]).map((arg) => arg.latin1Slice())),
    returnError: (error) => {
      throw error;
    },
  });
  for (const chunk of chunks) parser.execute(chunk);
  return commands;
}

function sameCommands(a: string[][], b: string[][]): boolean {
  return a.length === b.length && a.every((args, i) => args.length === b[i]!.length && args.every((arg, j) => arg === b[i]![j]));
}

const BASE_SEED = Number(process.env.RESP_FUZZ_SEED ?? 0x5eed);

t.test('decodes random valid streams exactly as redis-parser does, however they are chunked', async (t) => {
  const streams = 2000;
  let failures = 0;
  for (let i = 0; i < streams && failures < 3; i++) {
    const seed = BASE_SEED + i;
    const rng = mulberry32(seed);
    const { bytes, commands, sizes } = randomStream(rng);
    const chunks = randomChunks(rng, bytes);
    let ours: Outcome;
    try {
      ours = runDecoder(chunks, sizes);
    } catch (error) {
      failures++;
      t.fail(`${String(error)}; reproduce with RESP_FUZZ_SEED=${seed}`);
      continue;
    }
    const reference = runRedisParser(chunks);
    if (!sameCommands(ours.commands, reference) || ours.end !== 'waiting' || !sameCommands(reference, commands)) {
      failures++;
      t.fail(`stream differs from redis-parser; reproduce with RESP_FUZZ_SEED=${seed}`, {
        ours: ours.commands.length, reference: reference.length, generated: commands.length, end: ours.end,
      });
    }
  }
  t.equal(failures, 0, `${streams} streams from seed ${BASE_SEED}`);
});

/** Random garbage: protocol-looking bytes, or a valid stream with bytes flipped, inserted and deleted. */
function randomGarbage(rng: Rng): Buffer {
  if (rng() < 0.4) return randomBytes(rng, int(rng, 0, 3000));
  const bytes = [...randomStream(rng).bytes.subarray(0, 20_000)];
  for (let m = int(rng, 1, 8); m > 0; m--) {
    const at = int(rng, 0, bytes.length);
    const roll = rng();
    const byte = randomBytes(rng, 1)[0]!;
    if (roll < 0.4) bytes[at] = byte;
    else if (roll < 0.7) bytes.splice(at, 0, byte);
    else bytes.splice(at, 1);
  }
  return Buffer.from(bytes);
}

t.test('garbage never throws, ends waiting or in a protocol error, and chunking does not change the outcome', async (t) => {
  const runs = 1500;
  let failures = 0;
  let errors = 0;
  for (let i = 0; i < runs && failures < 3; i++) {
    const seed = BASE_SEED + 1_000_000 + i;
    const rng = mulberry32(seed);
    const bytes = randomGarbage(rng);
    try {
      const whole = runDecoder([bytes]);
      const chunked = runDecoder(randomChunks(rng, bytes));
      if (whole.end !== 'waiting') errors++;
      if (!sameCommands(whole.commands, chunked.commands) || whole.end !== chunked.end) {
        failures++;
        t.fail(`outcome depends on chunking; reproduce with RESP_FUZZ_SEED=${seed - 1_000_000}`, {
          whole: whole.end, chunked: chunked.end,
        });
      }
    } catch (error) {
      failures++;
      t.fail(`decoder threw ${String(error)}; reproduce with RESP_FUZZ_SEED=${seed - 1_000_000}`);
    }
  }
  t.equal(failures, 0, `${runs} garbage streams from seed ${BASE_SEED}`);
  t.ok(errors > runs / 10, `garbage reached protocol errors (${errors} of ${runs})`);
});

t.test('random inline lines are split the same way whatever the chunking', async (t) => {
  let failures = 0;
  for (let i = 0; i < 1000 && failures < 3; i++) {
    const seed = BASE_SEED + 2_000_000 + i;
    const rng = mulberry32(seed);
    const words = Array.from({ length: int(rng, 0, 6) }, () => randomBytes(rng, int(rng, 0, 12)).latin1Slice().replace(/[\r\n*]/g, 'a'));
    const bytes = Buffer.from(words.join(' ') + (rng() < 0.5 ? '\r\n' : '\n'), 'latin1');
    const whole = runDecoder([bytes]);
    const bytewise = runDecoder([...bytes].map((b) => Buffer.from([b])));
    if (!sameCommands(whole.commands, bytewise.commands) || whole.end !== bytewise.end) {
      failures++;
      t.fail(`inline outcome depends on chunking; reproduce with RESP_FUZZ_SEED=${seed - 2_000_000}`);
    }
  }
  t.equal(failures, 0);
});
