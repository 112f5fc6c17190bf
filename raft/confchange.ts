/**
 * Single-server membership changes. A change is proposed as a `conf` log
 * entry; once committed, the caller applies it and calls
 * RawNode.applyConfChange(decodeConfChange(entry.data)). Only one change may be
 * pending at a time, so any two consecutive memberships differ by one node
 * and their majorities overlap.
 */
import { RaftInvariantError } from './errors.js';
import type { ConfState, NodeId } from './types.js';

export type ConfChangeType = 'addVoter' | 'removeVoter' | 'addLearner';

/**
 * addVoter adds a node as a voter or promotes a learner; addLearner adds a
 * learner or demotes a voter; removeVoter removes the node, voter or learner.
 */
export interface ConfChange {
  type: ConfChangeType;
  node: NodeId;
}

const TYPE_CODES: Record<ConfChangeType, number> = { addVoter: 1, removeVoter: 2, addLearner: 3 };
const CODE_TYPES = new Map<number, ConfChangeType>(Object.entries(TYPE_CODES).map(([k, v]) => [v, k as ConfChangeType]));
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Wire form: one type byte, then the node id in UTF-8. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const node = encoder.encode(cc.node);
  const out = new Uint8Array(node.byteLength + 1);
  out[0] = TYPE_CODES[cc.type];
  out.set(node, 1);
  return out;
}

/** Decodes a committed conf entry; a malformed one means a corrupt log. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  const type = CODE_TYPES.get(data[0] ?? 0);
  if (type === undefined || data.byteLength < 2) throw new RaftInvariantError(`malformed conf change entry (${data.byteLength} bytes)`);
  let node: string;
  try {
    node = decoder.decode(data.subarray(1));
  } catch {
    throw new RaftInvariantError('conf change node id is not UTF-8');
  }
  return { type, node };
}

/** Why `cc` cannot be proposed against `conf`, or null if it can. */
export function confChangeProblem(conf: ConfState, cc: ConfChange): string | null {
  if (typeof cc.node !== 'string' || cc.node.length === 0) return 'node id must be a non-empty string';
  if (!(cc.type in TYPE_CODES)) return `unknown conf change type ${String(cc.type)}`;
  const isVoter = conf.voters.includes(cc.node);
  const isLearner = conf.learners.includes(cc.node);
  switch (cc.type) {
    case 'addVoter':
      return isVoter ? `${cc.node} is already a voter` : null;
    case 'addLearner':
      if (isLearner) return `${cc.node} is already a learner`;
      return isVoter && conf.voters.length === 1 ? `demoting ${cc.node} would leave no voter` : null;
    case 'removeVoter':
      if (!isVoter && !isLearner) return `${cc.node} is not a member`;
      return isVoter && conf.voters.length === 1 ? `removing ${cc.node} would leave no voter` : null;
  }
}

/** The membership after `cc`. A committed change that empties the voters is corruption. */
export function applyToConf(conf: ConfState, cc: ConfChange): ConfState {
  const voters = conf.voters.filter((v) => v !== cc.node);
  const learners = conf.learners.filter((l) => l !== cc.node);
  if (cc.type === 'addVoter') voters.push(cc.node);
  if (cc.type === 'addLearner') learners.push(cc.node);
  if (voters.length === 0) throw new RaftInvariantError(`conf change ${cc.type} ${cc.node} leaves no voter`);
  return { voters: voters.sort(), learners: learners.sort() };
}
