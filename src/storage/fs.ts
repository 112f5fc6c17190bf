/**
 * The file-system surface the storage layer uses, injected so that the
 * deterministic simulator runs this exact code over MemoryFs (a disk that
 * loses un-fsynced writes and tears writes at a crash) while production runs
 * it over `nodeFs`. Keep it small: every method here must be modelled
 * precisely by MemoryFs, including what is durable after a crash.
 *
 * Durability model both implementations follow:
 * - file contents are durable after `datasync()` or `sync()` on a handle;
 * - directory entries (create, rename, unlink, mkdir) are durable only after
 *   `fsyncDir()` on the directory that holds them.
 */
import * as fsp from 'node:fs/promises';
import { dirname } from 'node:path';

/** Node's open flags, restricted to the ones MemoryFs models. */
export type OpenFlags = 'r' | 'r+' | 'w' | 'w+' | 'wx' | 'wx+';

export interface FileHandleLike {
  /** Writes all buffers at `position` (the handle's current position when omitted); returns bytes written. */
  writev(buffers: Uint8Array[], position?: number): Promise<number>;
  /** Reads up to `length` bytes at `position` into `buffer[offset..]`; returns bytes read (0 at end of file). */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** fdatasync: file data and the metadata needed to read it back (size) become durable. */
  datasync(): Promise<void>;
  /** fsync: like datasync, plus all other inode metadata. */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

export interface StorageFs {
  open(path: string, flags: OpenFlags): Promise<FileHandleLike>;
  readFile(path: string): Promise<Uint8Array>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Entry names (not paths) of a directory, sorted. */
  readdir(dir: string): Promise<string[]>;
  /** Creates the directory and any missing parents (mkdir -p); an existing directory is fine. */
  mkdir(dir: string): Promise<void>;
  /** Makes the directory's entries (creates, renames, unlinks inside it) durable. */
  fsyncDir(dir: string): Promise<void>;
  exists(path: string): Promise<boolean>;
}

/** Writes every byte of `buffers` at `position`, re-issuing the remainder after a short write. */
export async function writeAll(handle: FileHandleLike, buffers: Uint8Array[], position: number): Promise<number> {
  let total = 0;
  for (const b of buffers) total += b.length;
  let remaining = buffers;
  let written = 0;
  while (written < total) {
    const n = await handle.writev(remaining, position + written);
    if (n <= 0) throw new Error(`short write: ${written} of ${total} bytes written at offset ${position}`);
    written += n;
    remaining = dropPrefix(remaining, n);
  }
  return total;
}

/**
 * Creates `dir` and any missing parents, fsyncing each new directory's parent
 * so that the directory itself survives a crash, not only the files in it.
 */
export async function ensureDir(fs: StorageFs, dir: string): Promise<void> {
  const missing: string[] = [];
  for (let at = dir; !(await fs.exists(at)); at = dirname(at)) {
    missing.push(at);
    if (dirname(at) === at) break;
  }
  if (missing.length === 0) return;
  await fs.mkdir(dir);
  for (const created of missing.reverse()) await fs.fsyncDir(dirname(created));
}

function dropPrefix(buffers: Uint8Array[], bytes: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  let skip = bytes;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    rest.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return rest;
}

class NodeFileHandle implements FileHandleLike {
  constructor(private readonly handle: fsp.FileHandle) {}

  async writev(buffers: Uint8Array[], position?: number): Promise<number> {
    const { bytesWritten } = await this.handle.writev(buffers, position);
    return bytesWritten;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const { bytesRead } = await this.handle.read(buffer, offset, length, position);
    return bytesRead;
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  sync(): Promise<void> {
    return this.handle.sync();
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  async stat(): Promise<{ size: number }> {
    const { size } = await this.handle.stat();
    return { size };
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** The real file system. */
export const nodeFs: StorageFs = {
  async open(path, flags) {
    return new NodeFileHandle(await fsp.open(path, flags));
  },
  async readFile(path) {
    // A plain Uint8Array view, so that callers get Uint8Array semantics (slice copies) rather than Buffer's.
    const buf = await fsp.readFile(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  },
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
  async readdir(dir) {
    return (await fsp.readdir(dir)).sort();
  },
  async mkdir(dir) {
    await fsp.mkdir(dir, { recursive: true });
  },
  async fsyncDir(dir) {
    // Linux makes a directory's entries durable through fsync on a read-only descriptor of it.
    const handle = await fsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async exists(path) {
    try {
      await fsp.stat(path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  },
};
