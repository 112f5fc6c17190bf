import { mkdirSync, readFileSync, writeFileSync, renameSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Incarnations } from '../cluster/transport.js';

const IDENTITY_FILE = 'node.json';

export interface NodeIdentity {
  nodeId: string;
  createdAt: string;
  /** Partitions of the keyspace; absent in directories from before partitions, which have one. */
  partitions?: number;
  /** The founding voters (--peers ids, sorted); absent for a single node. */
  voters?: string[];
  /**
   * A random id made with the directory (added to older directories when first opened): peers tell
   * this node's data apart from a replacement's by it.
   */
  incarnation?: string;
  /** The incarnation of each peer this node has linked with (see Incarnations). */
  peers?: Record<string, string>;
}

/**
 * Creates the data directory and records the node's identity in it. A data
 * directory belongs to one node for life: starting it under another node id
 * is refused, since its future WAL and snapshots would be another node's.
 */
export function openDataDir(dataDir: string, nodeId: string, partitions = 1, voters?: readonly string[]): NodeIdentity {
  const founding = voters === undefined ? undefined : [...voters].sort();
  mkdirSync(dataDir, { recursive: true });
  let existing = readIdentity(dataDir);
  if (existing !== undefined) {
    if (existing.nodeId !== nodeId) {
      throw new Error(`data directory ${dataDir} belongs to node '${existing.nodeId}', not '${nodeId}' (use --node-id ${existing.nodeId} or another --data-dir)`);
    }
    const created = existing.partitions ?? 1;
    if (created !== partitions) {
      throw new Error(`data directory ${dataDir} was created with ${created} partition(s), not ${partitions}: ` +
        `the partition count is fixed (use --partitions ${created} or another --data-dir)`);
    }
    const was = (existing.voters ?? [nodeId]).join(',');
    const now = (founding ?? [nodeId]).join(',');
    if (was !== now) {
      throw new Error(`data directory ${dataDir} belongs to a cluster founded by [${was}], not [${now}]: ` +
        `--peers must name the founding voters (membership changes go through the cluster, not the flags)`);
    }
    if (existing.incarnation === undefined) writeIdentity(dataDir, existing = { ...existing, incarnation: newIncarnation() });
    return existing;
  }
  const identity: NodeIdentity = {
    nodeId, createdAt: new Date().toISOString(), partitions, ...(founding === undefined ? {} : { voters: founding }), incarnation: newIncarnation(),
  };
  writeIdentity(dataDir, identity);
  return identity;
}

const newIncarnation = (): string => randomBytes(12).toString('hex');

/** The identity file's contents; undefined if there is none yet. */
function readIdentity(dataDir: string): NodeIdentity | undefined {
  const path = join(dataDir, IDENTITY_FILE);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as NodeIdentity;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
}

/** Replaces the identity file atomically and durably (write a temporary, fsync it, rename over, fsync the directory). */
function writeIdentity(dataDir: string, identity: NodeIdentity): void {
  const path = join(dataDir, IDENTITY_FILE);
  const temp = `${path}.tmp`;
  writeFileSync(temp, JSON.stringify(identity) + '\n');
  syncPath(temp);
  renameSync(temp, path);
  syncPath(dataDir);
}

function syncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The peer transport's Incarnations, kept in the identity file of a data directory that openDataDir
 * has opened. Written only when a peer is first linked with, or forgotten.
 */
export class DataDirIncarnations implements Incarnations {
  private constructor(private readonly dataDir: string, private identity: NodeIdentity & { incarnation: string }) {}

  /** Undefined if the directory has no identity file with an incarnation (openDataDir was not run on it). */
  static open(dataDir: string): DataDirIncarnations | undefined {
    const identity = readIdentity(dataDir);
    const incarnation = identity?.incarnation;
    return incarnation === undefined ? undefined : new DataDirIncarnations(dataDir, { ...identity!, incarnation });
  }

  get own(): string {
    return this.identity.incarnation;
  }

  known(peer: string): string | undefined {
    const peers = this.identity.peers;
    return peers !== undefined && Object.hasOwn(peers, peer) ? peers[peer] : undefined;
  }

  remember(peer: string, incarnation: string): void {
    this.write({ ...this.identity.peers, [peer]: incarnation });
  }

  /** The cluster has removed `peer`: whatever data directory it comes back with is accepted (and remembered). */
  forget(peer: string): void {
    if (this.known(peer) === undefined) return;
    const peers = { ...this.identity.peers };
    delete peers[peer];
    this.write(peers);
  }

  private write(peers: Record<string, string>): void {
    const identity = { ...this.identity, peers };
    writeIdentity(this.dataDir, identity);
    this.identity = identity;
  }
}
