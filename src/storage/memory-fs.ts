/**
 * An in-memory StorageFs that models durability precisely, for tests and for
 * the deterministic simulator.
 *
 * Every file keeps two images: what a reader sees now (the page cache) and
 * what survives a crash (the platter). Writes and truncations go to the first
 * image and join the file's list of pending operations; `datasync()`/`sync()`
 * apply the pending list to the durable image. `crash(rng)` then decides, with
 * the injected RNG only, how much of each pending list reached the disk: a
 * random prefix survives, and its last write may be torn at a random byte
 * (optionally with the file size already extended over the missing bytes, as
 * file systems that log metadata before data do, which leaves zeros).
 *
 * Directory entries are modelled the same way: a directory's entries become
 * durable only at `fsyncDir()`, so a created, renamed or unlinked name that was
 * not followed by an fsync of its directory is rolled back by a crash.
 */
import { posix } from 'node:path';
import type { FileHandleLike, OpenFlags, StorageFs } from './fs.js';

/** Uniform in [0, 1); the simulator passes its seeded generator. */
export type Rng = () => number;

type PendingOp =
  | { kind: 'write'; position: number; bytes: Uint8Array }
  | { kind: 'truncate'; length: number };

/** A growable byte image of one file. */
class Image {
  private buf = new Uint8Array(0);
  size = 0;

  view(): Uint8Array {
    return this.buf.subarray(0, this.size);
  }

  clone(): Image {
    const copy = new Image();
    copy.buf = this.buf.slice(0, this.size);
    copy.size = this.size;
    return copy;
  }

  write(position: number, bytes: Uint8Array): void {
    const end = position + bytes.length;
    this.resize(Math.max(this.size, end));
    this.buf.set(bytes, position);
  }

  /** Shrinks, or grows with zeros, as ftruncate does. */
  resize(length: number): void {
    if (length > this.buf.length) {
      const grown = new Uint8Array(Math.max(length, this.buf.length * 2));
      grown.set(this.buf.subarray(0, this.size));
      this.buf = grown;
    }
    // Bytes past the old size may hold data from before an earlier shrink; a grown file reads zeros there.
    if (length > this.size) this.buf.fill(0, this.size, length);
    this.size = length;
  }
}

interface FileNode {
  kind: 'file';
  current: Image;
  durable: Image;
  pending: PendingOp[];
}

interface DirNode {
  kind: 'dir';
  entries: Map<string, Node>;
  durable: Map<string, Node>;
}

type Node = FileNode | DirNode;

function fsError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`${code}: ${syscall} '${path}' (MemoryFs)`);
  error.code = code;
  error.syscall = syscall;
  error.path = path;
  return error;
}

function newDir(): DirNode {
  return { kind: 'dir', entries: new Map(), durable: new Map() };
}

function applyOp(image: Image, op: PendingOp): void {
  if (op.kind === 'write') image.write(op.position, op.bytes);
  else image.resize(op.length);
}

export class MemoryFs implements StorageFs {
  private readonly root: DirNode = newDir();
  /** Bumped by every crash: handles opened before it belong to a dead process. */
  private epoch = 0;

  /** The epoch check lets MemoryHandle refuse use after a crash. */
  get currentEpoch(): number {
    return this.epoch;
  }

  async open(path: string, flags: OpenFlags): Promise<FileHandleLike> {
    const abs = posix.resolve('/', path);
    let node = this.lookup(abs);
    if (node?.kind === 'dir') throw fsError('EISDIR', 'open', abs);
    if (flags === 'r' || flags === 'r+') {
      if (node === undefined) throw fsError('ENOENT', 'open', abs);
    } else if (node !== undefined) {
      if (flags === 'wx' || flags === 'wx+') throw fsError('EEXIST', 'open', abs);
      node.current.resize(0);
      node.pending.push({ kind: 'truncate', length: 0 });
    } else {
      const { dir, name } = this.parent(abs, 'open');
      node = { kind: 'file', current: new Image(), durable: new Image(), pending: [] };
      dir.entries.set(name, node);
    }
    const readable = flags !== 'w' && flags !== 'wx';
    return new MemoryHandle(this, node, abs, { readable, writable: flags !== 'r' });
  }

  async readFile(path: string): Promise<Uint8Array> {
    const abs = posix.resolve('/', path);
    return this.file(abs, 'open').current.view().slice();
  }

  async rename(from: string, to: string): Promise<void> {
    const src = posix.resolve('/', from);
    const dst = posix.resolve('/', to);
    const node = this.lookup(src);
    if (node === undefined) throw fsError('ENOENT', 'rename', src);
    const target = this.parent(dst, 'rename');
    if (target.dir.entries.get(target.name)?.kind === 'dir') throw fsError('EISDIR', 'rename', dst);
    const source = this.parent(src, 'rename');
    source.dir.entries.delete(source.name);
    target.dir.entries.set(target.name, node);
  }

  async unlink(path: string): Promise<void> {
    const abs = posix.resolve('/', path);
    this.file(abs, 'unlink');
    const { dir, name } = this.parent(abs, 'unlink');
    dir.entries.delete(name);
  }

  async readdir(dir: string): Promise<string[]> {
    return [...this.dir(posix.resolve('/', dir), 'scandir').entries.keys()].sort();
  }

  async mkdir(dir: string): Promise<void> {
    const abs = posix.resolve('/', dir);
    let at = this.root;
    for (const part of abs.split('/').filter((p) => p !== '')) {
      let next = at.entries.get(part);
      if (next === undefined) {
        next = newDir();
        at.entries.set(part, next);
      }
      if (next.kind !== 'dir') throw fsError('ENOTDIR', 'mkdir', abs);
      at = next;
    }
  }

  async fsyncDir(dir: string): Promise<void> {
    const node = this.dir(posix.resolve('/', dir), 'fsync');
    node.durable = new Map(node.entries);
  }

  async exists(path: string): Promise<boolean> {
    return this.lookup(posix.resolve('/', path)) !== undefined;
  }

  /**
   * Power loss. Directory entries roll back to their last fsyncDir; every
   * reachable file keeps its durable image plus a random prefix of its pending
   * operations, the last of which may be torn. Open handles become unusable.
   */
  crash(rng: Rng): void {
    this.epoch++;
    const seen = new Set<FileNode>();
    const visit = (dir: DirNode): void => {
      dir.entries = new Map(dir.durable);
      for (const node of dir.entries.values()) {
        if (node.kind === 'dir') visit(node);
        else if (!seen.has(node)) {
          seen.add(node);
          crashFile(node, rng);
        }
      }
    };
    visit(this.root);
  }

  private lookup(abs: string): Node | undefined {
    let node: Node = this.root;
    for (const part of abs.split('/').filter((p) => p !== '')) {
      if (node.kind !== 'dir') return undefined;
      const next: Node | undefined = node.entries.get(part);
      if (next === undefined) return undefined;
      node = next;
    }
    return node;
  }

  private parent(abs: string, syscall: string): { dir: DirNode; name: string } {
    const name = posix.basename(abs);
    if (name === '') throw fsError('EPERM', syscall, abs);
    return { dir: this.dir(posix.dirname(abs), syscall, abs), name };
  }

  private dir(abs: string, syscall: string, reported = abs): DirNode {
    const node = this.lookup(abs);
    if (node === undefined) throw fsError('ENOENT', syscall, reported);
    if (node.kind !== 'dir') throw fsError('ENOTDIR', syscall, reported);
    return node;
  }

  private file(abs: string, syscall: string): FileNode {
    const node = this.lookup(abs);
    if (node === undefined) throw fsError('ENOENT', syscall, abs);
    if (node.kind !== 'file') throw fsError('EISDIR', syscall, abs);
    return node;
  }
}

function crashFile(file: FileNode, rng: Rng): void {
  const surviving = Math.floor(rng() * (file.pending.length + 1));
  for (let i = 0; i < surviving; i++) {
    const op = file.pending[i]!;
    if (i < surviving - 1 || op.kind === 'truncate') {
      applyOp(file.durable, op);
      continue;
    }
    // The last surviving write: only a prefix of its bytes reached the disk.
    const kept = Math.floor(rng() * (op.bytes.length + 1));
    const sizeFirst = rng() < 0.25;
    const end = op.position + op.bytes.length;
    if (sizeFirst && end > file.durable.size) file.durable.resize(end);
    file.durable.write(op.position, op.bytes.subarray(0, kept));
  }
  file.pending = [];
  file.current = file.durable.clone();
}

class MemoryHandle implements FileHandleLike {
  private position = 0;
  private closed = false;
  private readonly epoch: number;

  constructor(
    private readonly fs: MemoryFs,
    private readonly node: FileNode,
    private readonly path: string,
    private readonly mode: { readable: boolean; writable: boolean },
  ) {
    this.epoch = fs.currentEpoch;
  }

  async writev(buffers: Uint8Array[], position?: number): Promise<number> {
    this.check('write', this.mode.writable);
    let length = 0;
    for (const b of buffers) length += b.length;
    const bytes = new Uint8Array(length);
    let at = 0;
    for (const b of buffers) {
      bytes.set(b, at);
      at += b.length;
    }
    const start = position ?? this.position;
    this.node.current.write(start, bytes);
    this.node.pending.push({ kind: 'write', position: start, bytes });
    if (position === undefined) this.position += length;
    return length;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.check('read', this.mode.readable);
    if (offset < 0 || length < 0 || offset + length > buffer.length) {
      throw Object.assign(new RangeError(`read of ${length} bytes at ${offset} overflows a ${buffer.length}-byte buffer`), { code: 'ERR_OUT_OF_RANGE' });
    }
    const source = this.node.current.view().subarray(position, position + length);
    buffer.set(source, offset);
    return source.length;
  }

  async datasync(): Promise<void> {
    this.check('fdatasync', true);
    this.flush();
  }

  async sync(): Promise<void> {
    this.check('fsync', true);
    this.flush();
  }

  async truncate(length: number): Promise<void> {
    this.check('ftruncate', this.mode.writable);
    this.node.current.resize(length);
    this.node.pending.push({ kind: 'truncate', length });
  }

  async stat(): Promise<{ size: number }> {
    this.check('fstat', true);
    return { size: this.node.current.size };
  }

  async close(): Promise<void> {
    this.check('close', true);
    this.closed = true;
  }

  private flush(): void {
    for (const op of this.node.pending) applyOp(this.node.durable, op);
    this.node.pending = [];
  }

  private check(syscall: string, allowed: boolean): void {
    if (this.epoch !== this.fs.currentEpoch) throw fsError('EIO', syscall, `${this.path} (handle from before a crash)`);
    if (this.closed || !allowed) throw fsError('EBADF', syscall, this.path);
  }
}
