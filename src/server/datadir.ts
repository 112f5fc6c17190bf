import { mkdirSync, readFileSync, writeFileSync, renameSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';

const IDENTITY_FILE = 'node.json';

export interface NodeIdentity {
  nodeId: string;
  createdAt: string;
  /** Partitions of the keyspace; absent in directories from before partitions, which have one. */
  partitions?: number;
  /** The founding voters (--peers ids, sorted); absent for a single node. */
  voters?: string[];
}

/**
 * Creates the data directory and records the node's identity in it. A data
 * directory belongs to one node for life: starting it under another node id
 * is refused, since its future WAL and snapshots would be another node's.
 */
export function openDataDir(dataDir: string, nodeId: string, partitions = 1, voters?: readonly string[]): NodeIdentity {
  const founding = voters === undefined ? undefined : [...voters].sort();
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, IDENTITY_FILE);
  let existing: NodeIdentity | undefined;
  try {
    existing = JSON.parse(readFileSync(path, 'utf8')) as NodeIdentity;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`cannot read ${path}: ${(error as Error).message}`);
    }
  }
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
    return existing;
  }
  const identity: NodeIdentity = { nodeId, createdAt: new Date().toISOString(), partitions, ...(founding === undefined ? {} : { voters: founding }) };
  const temp = `${path}.tmp`;
  writeFileSync(temp, JSON.stringify(identity) + '\n');
  const fd = openSync(temp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(temp, path);
  return identity;
}
