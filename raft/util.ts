import type { ConfState, Entry } from './types.js';

/**
 * Bytes an entry counts for in message-size and in-flight limits: its payload
 * plus a fixed header, so that empty entries (no-ops) still cost something and
 * a byte limit also bounds the entry count.
 */
export const ENTRY_OVERHEAD_BYTES = 16;

export function entryBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

export function entriesBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const e of entries) total += entryBytes(e);
  return total;
}

/**
 * The longest prefix of `entries` within `maxBytes`, but always at least one
 * entry so that an entry larger than the limit still makes progress.
 */
export function limitBytes(entries: Entry[], maxBytes: number): Entry[] {
  if (entries.length === 0) return entries;
  let total = entryBytes(entries[0]!);
  let n = 1;
  for (; n < entries.length; n++) {
    total += entryBytes(entries[n]!);
    if (total > maxBytes) break;
  }
  return n === entries.length ? entries : entries.slice(0, n);
}

export function cloneConf(conf: ConfState): ConfState {
  return { voters: [...conf.voters], learners: [...conf.learners] };
}

/** A map key for a byte string. */
export function bytesKey(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}
