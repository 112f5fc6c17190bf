/**
 * Snapshot files, one live file per Raft group: `snap-<group 8 hex>-<index 16 hex>.snap`.
 *
 * Layout (little-endian): 44-byte header, then the configuration as JSON, then the data.
 *   0  'RLSN' magic          4  u16 version (1)       6  u16 reserved (0)
 *   8  u32 group            12  u64 index            20  u64 term
 *  28  u32 conf bytes       32  u64 data bytes       40  u32 crc32c of bytes 0..39, conf and data
 *
 * A save is atomic and durable: write a temp file, fsync it, rename it over
 * its final name, fsync the directory. Only then are the group's older
 * snapshots deleted, so a crash at any point leaves at least one whole
 * snapshot. The WAL's snapshot marker must be appended after save() resolves.
 */
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { crc32c } from './crc32c.js';
import { SnapshotCorruptError, SnapshotInvalidError } from './errors.js';
import { type StorageFs, ensureDir, writeAll } from './fs.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface Snapshot {
  group: number;
  index: number;
  term: number;
  /** The group's membership configuration at `index`. */
  conf: JsonValue;
  data: Uint8Array;
}

export interface SnapshotInfo {
  group: number;
  index: number;
  file: string;
}

const MAGIC = [0x52, 0x4c, 0x53, 0x4e]; // 'RLSN'
const VERSION = 1;
const HEADER_BYTES = 44;
const TWO_32 = 0x1_0000_0000;
const NAME_PATTERN = /^snap-([0-9a-f]{8})-([0-9a-f]{16})\.snap$/;
const TEMP_SUFFIX = '.tmp';

function snapshotName(group: number, index: number): string {
  return `snap-${group.toString(16).padStart(8, '0')}-${index.toString(16).padStart(16, '0')}.snap`;
}

function checkSnapshot(s: Snapshot): Uint8Array {
  const where = `snapshot of group ${s.group} at ${s.index}`;
  if (!Number.isInteger(s.group) || s.group < 0 || s.group > 0xffffffff) throw new SnapshotInvalidError(`${where}: group must be a u32`);
  if (!Number.isSafeInteger(s.index) || s.index < 1 || !Number.isSafeInteger(s.term) || s.term < 1) {
    throw new SnapshotInvalidError(`${where}: index and term must be positive safe integers`);
  }
  if (!(s.data instanceof Uint8Array)) throw new SnapshotInvalidError(`${where}: data must be bytes`);
  const json = JSON.stringify(s.conf);
  // A value JSON cannot carry exactly (undefined, NaN, a class instance) would come back different: refuse it now.
  if (json === undefined || !isDeepStrictEqual(JSON.parse(json), s.conf)) {
    throw new SnapshotInvalidError(`${where}: conf does not survive a JSON round trip`);
  }
  return new TextEncoder().encode(json);
}

function encodeHeader(s: Snapshot, conf: Uint8Array): Uint8Array {
  const header = new Uint8Array(HEADER_BYTES);
  const view = new DataView(header.buffer);
  header.set(MAGIC, 0);
  view.setUint16(4, VERSION, true);
  view.setUint32(8, s.group, true);
  const putU64 = (at: number, n: number): void => {
    view.setUint32(at, n % TWO_32, true);
    view.setUint32(at + 4, Math.floor(n / TWO_32), true);
  };
  putU64(12, s.index);
  putU64(20, s.term);
  view.setUint32(28, conf.length, true);
  putU64(32, s.data.length);
  const crc = crc32c(s.data, crc32c(conf, crc32c(header, 0, 0, 40)));
  view.setUint32(40, crc, true);
  return header;
}

function decodeSnapshot(bytes: Uint8Array, file: string, expected: { group: number; index: number }): Snapshot {
  const bad = (reason: string): never => {
    throw new SnapshotCorruptError(file, reason);
  };
  if (bytes.length < HEADER_BYTES) bad(`${bytes.length} bytes is shorter than the header`);
  if (MAGIC.some((b, i) => bytes[i] !== b)) bad('bad magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (at: number): number => view.getUint32(at + 4, true) * TWO_32 + view.getUint32(at, true);
  if (view.getUint16(4, true) !== VERSION || view.getUint16(6, true) !== 0) bad(`unsupported version ${view.getUint16(4, true)}`);
  const confBytes = view.getUint32(28, true);
  const dataBytes = u64(32);
  if (HEADER_BYTES + confBytes + dataBytes !== bytes.length) {
    bad(`header announces ${confBytes} conf and ${dataBytes} data bytes but the file holds ${bytes.length - HEADER_BYTES}`);
  }
  const confEnd = HEADER_BYTES + confBytes;
  const crc = crc32c(bytes, crc32c(bytes, crc32c(bytes, 0, 0, 40), HEADER_BYTES, confEnd), confEnd, bytes.length);
  if (crc !== view.getUint32(40, true)) bad('checksum mismatch');
  const snapshot = { group: view.getUint32(8, true), index: u64(12), term: u64(20) };
  if (snapshot.group !== expected.group || snapshot.index !== expected.index) {
    bad(`header says group ${snapshot.group} index ${snapshot.index}, the file name group ${expected.group} index ${expected.index}`);
  }
  let conf: JsonValue = null;
  try {
    conf = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(HEADER_BYTES, confEnd))) as JsonValue;
  } catch (error) {
    bad(`conf is not JSON (${(error as Error).message})`);
  }
  // Copied into a plain Uint8Array: Buffer#slice would return a view of the file buffer, not a copy.
  const data = new Uint8Array(bytes.length - confEnd);
  data.set(bytes.subarray(confEnd));
  return { ...snapshot, conf, data };
}

export class SnapshotStore {
  /** Saves of one group run one after another, so "delete the older ones" never races a newer save. */
  private readonly chains = new Map<number, Promise<unknown>>();

  private constructor(private readonly fs: StorageFs, private readonly dir: string) {}

  /** Opens (creating) the directory and removes temp files a crash left mid-save. */
  static async open(options: { fs: StorageFs; dir: string }): Promise<SnapshotStore> {
    const { fs, dir } = options;
    await ensureDir(fs, dir);
    const temps = (await fs.readdir(dir)).filter((n) => n.startsWith('snap-') && n.endsWith(TEMP_SUFFIX));
    for (const name of temps) await fs.unlink(join(dir, name));
    if (temps.length > 0) await fs.fsyncDir(dir);
    return new SnapshotStore(fs, dir);
  }

  /** Makes `snapshot` durable as its group's newest, then deletes the group's older snapshot files. */
  save(snapshot: Snapshot): Promise<SnapshotInfo> {
    let conf: Uint8Array;
    try {
      conf = checkSnapshot(snapshot);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.serial(snapshot.group, async () => {
      const older = await this.list(snapshot.group);
      const newest = older.at(-1);
      if (newest !== undefined && newest.index > snapshot.index) {
        throw new SnapshotInvalidError(`snapshot of group ${snapshot.group} at ${snapshot.index} is older than the saved one at ${newest.index}`);
      }
      const file = join(this.dir, snapshotName(snapshot.group, snapshot.index));
      const temp = file + TEMP_SUFFIX;
      const handle = await this.fs.open(temp, 'w');
      try {
        await writeAll(handle, [encodeHeader(snapshot, conf), conf, snapshot.data], 0);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await this.fs.rename(temp, file);
      await this.fs.fsyncDir(this.dir);
      const stale = older.filter((s) => s.index < snapshot.index);
      for (const s of stale) await this.fs.unlink(s.file);
      if (stale.length > 0) await this.fs.fsyncDir(this.dir);
      return { group: snapshot.group, index: snapshot.index, file };
    });
  }

  /** The group's newest snapshot, verified, or null if it has none. Throws SnapshotCorruptError if it is damaged. */
  async load(group: number): Promise<Snapshot | null> {
    const newest = (await this.list(group)).at(-1);
    if (newest === undefined) return null;
    return decodeSnapshot(await this.fs.readFile(newest.file), newest.file, newest);
  }

  /** The group's snapshot files, oldest first. */
  async list(group: number): Promise<SnapshotInfo[]> {
    const found: SnapshotInfo[] = [];
    for (const name of await this.fs.readdir(this.dir)) {
      const match = NAME_PATTERN.exec(name);
      if (match === null || parseInt(match[1]!, 16) !== group) continue;
      found.push({ group, index: parseInt(match[2]!, 16), file: join(this.dir, name) });
    }
    return found.sort((a, b) => a.index - b.index);
  }

  private serial<T>(group: number, task: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(group) ?? Promise.resolve();
    const next = previous.then(task, task);
    this.chains.set(group, next.catch(() => undefined));
    return next;
  }
}
