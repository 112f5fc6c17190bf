/**
 * A node's disk in the simulator: MemoryFs (which loses un-fsynced writes and
 * tears the tail at a crash) behind a wrapper that makes every fsync take
 * simulated time. While an fsync is in flight the written bytes sit in the
 * page cache only, so a crash in that window loses or tears them: the "crash
 * between WAL write and fsync" case happens on its own, not only when scripted.
 */
import type { FileHandleLike, OpenFlags, StorageFs } from '../../src/storage/index.js';
import type { MemoryFs } from '../../src/storage/index.js';

/** Resolves after the disk's fsync latency; never resolves if the node crashes first. */
export type SyncDelay = () => Promise<void>;

export class SimFs implements StorageFs {
  constructor(
    readonly inner: MemoryFs,
    private readonly delay: SyncDelay,
  ) {}

  async open(path: string, flags: OpenFlags): Promise<FileHandleLike> {
    return new SimHandle(await this.inner.open(path, flags), this.delay);
  }

  readFile(path: string): Promise<Uint8Array> {
    return this.inner.readFile(path);
  }

  rename(from: string, to: string): Promise<void> {
    return this.inner.rename(from, to);
  }

  unlink(path: string): Promise<void> {
    return this.inner.unlink(path);
  }

  readdir(dir: string): Promise<string[]> {
    return this.inner.readdir(dir);
  }

  mkdir(dir: string): Promise<void> {
    return this.inner.mkdir(dir);
  }

  async fsyncDir(dir: string): Promise<void> {
    await this.delay();
    return this.inner.fsyncDir(dir);
  }

  exists(path: string): Promise<boolean> {
    return this.inner.exists(path);
  }
}

class SimHandle implements FileHandleLike {
  constructor(
    private readonly inner: FileHandleLike,
    private readonly delay: SyncDelay,
  ) {}

  writev(buffers: Uint8Array[], position?: number): Promise<number> {
    return this.inner.writev(buffers, position);
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.inner.read(buffer, offset, length, position);
  }

  async datasync(): Promise<void> {
    await this.delay();
    return this.inner.datasync();
  }

  async sync(): Promise<void> {
    await this.delay();
    return this.inner.sync();
  }

  truncate(length: number): Promise<void> {
    return this.inner.truncate(length);
  }

  stat(): Promise<{ size: number }> {
    return this.inner.stat();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
