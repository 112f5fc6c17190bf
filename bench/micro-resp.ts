import Benchmark from 'benchmark';
import { pathToFileURL } from 'node:url';
import { ProtocolError, RequestDecoder } from '../resp/decoder.js';
import { ReplyWriter } from '../resp/encoder.js';

export interface MicroRespResult {
  name: string;
  opsPerSec: number;
  rme: number;
  /** Commands decoded (or replies encoded) per second: opsPerSec × items per op. */
  itemsPerSec: number;
}

const SET = '*6\r\n$3\r\nSET\r\n$11\r\nlock:123456\r\n$1\r\nv\r\n$2\r\nNX\r\n$2\r\nPX\r\n$5\r\n30000\r\n';

/** Drains every complete command; returns how many there were. */
function drain(decoder: RequestDecoder): number {
  let n = 0;
  for (let argv = decoder.next(); argv !== null; argv = decoder.next()) {
    if (argv instanceof ProtocolError) throw new Error(argv.message);
    n += argv.length > 0 ? 1 : 0;
  }
  return n;
}

/** 64 KiB socket reads of a long pipeline of SETs: most reads end in the middle of a command. */
function socketReads(): Buffer[] {
  const stream = Buffer.from(SET.repeat(Math.ceil((4 * 65536) / SET.length)), 'latin1');
  const reads: Buffer[] = [];
  for (let at = 0; at + 65536 <= stream.length; at += 65536) reads.push(stream.subarray(at, at + 65536));
  return reads;
}

/** A typical batch of lock-server replies: tokens, owners, OK, nils, one KGETLOCK, one error. */
function writeReplyMix(w: ReplyWriter): void {
  w.integer(1234567);
  w.simple('OK');
  w.bulkOrNull('worker-7');
  w.nullBulk();
  w.array(3);
  w.bulk('worker-7');
  w.integer(42);
  w.integer(29995);
  w.integer(1);
  w.error('ERR wrong number of arguments for \'klock\' command');
}
const REPLIES_PER_MIX = 8;

/** Micro-benchmarks of the RESP codec (no sockets). Reproduce: npm run build && node dist/bench/micro-resp.js */
export function run(): Promise<MicroRespResult[]> {
  const pipelined = Buffer.from(SET.repeat(16), 'latin1');
  const single = Buffer.from(SET, 'latin1');
  const ping = Buffer.from('PING\r\n', 'latin1');
  const reads = socketReads();
  const commandsPerRead = Math.floor((reads.length * 65536) / SET.length) / reads.length;
  const decoders = { pipelined: new RequestDecoder(), single: new RequestDecoder(), ping: new RequestDecoder(), reads: new RequestDecoder() };
  const writer = new ReplyWriter(2);
  const writer3 = new ReplyWriter(3);
  let sink = 0;
  let read = 0;
  const perOp = new Map<string, number>();
  const suite = new Benchmark.Suite('resp codec');
  const add = (name: string, items: number, fn: () => void): void => {
    perOp.set(name, items);
    suite.add(name, fn);
  };
  add('decode 16 pipelined SET NX PX per chunk', 16, () => {
    decoders.pipelined.push(pipelined);
    sink += drain(decoders.pipelined);
  });
  add('decode 1 SET NX PX per chunk', 1, () => {
    decoders.single.push(single);
    sink += drain(decoders.single);
  });
  add('decode inline PING per chunk', 1, () => {
    decoders.ping.push(ping);
    sink += drain(decoders.ping);
  });
  add('decode 64 KiB reads split mid-command', commandsPerRead, () => {
    decoders.reads.push(reads[read++ % reads.length]!);
    sink += drain(decoders.reads);
  });
  // Includes turning the string into bytes, as socket.write(out, 'latin1') does.
  const out = Buffer.alloc(4096);
  add('encode reply mix RESP2 + latin1 write', REPLIES_PER_MIX, () => {
    writeReplyMix(writer);
    sink += out.write(writer.take(), 0, 'latin1');
  });
  add('encode reply mix RESP3 + latin1 write', REPLIES_PER_MIX, () => {
    writeReplyMix(writer3);
    sink += out.write(writer3.take(), 0, 'latin1');
  });
  return new Promise((resolve) => {
    const results: MicroRespResult[] = [];
    suite.on('cycle', (event: Benchmark.Event) => {
      const target = event.target;
      const name = target.name ?? '';
      const hz = target.hz ?? 0;
      const itemsPerSec = hz * (perOp.get(name) ?? 1);
      results.push({ name, opsPerSec: hz, rme: target.stats?.rme ?? 0, itemsPerSec });
      const unit = name.startsWith('encode') ? 'replies/s' : 'commands/s';
      console.log(`${String(target)}  (${Math.round(itemsPerSec).toLocaleString('en-US')} ${unit})`);
    });
    suite.on('complete', () => {
      if (sink === 0) console.log('(nothing decoded)');
      resolve(results);
    });
    suite.run({ async: false });
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void run();
}
