// How raftlock-cli prints an outcome: a console line (kahuna-cli's wording) or one JSON object a line.
import type { Outcome } from './commands.js';

export type Format = 'console' | 'json';
export const FORMATS: readonly Format[] = ['console', 'json'];

/** The token printed when there is none (not acquired, not extended), as kahuna-cli prints it. */
const NO_TOKEN = -1n;

export function formatOutcome(outcome: Outcome, format: Format): string {
  return format === 'json' ? jsonLine(jsonFields(outcome)) : consoleLine(outcome);
}

/**
 * lock: `f0 acquired OWNER` / `f-1 not acquired OWNER`; unlock: `unlocked` / `not unlocked`;
 * extend: `f0 extended` / `f-1 not extended`; get-lock: `f0 OWNER expires in 29995 ms` / `not found`.
 */
export function consoleLine(outcome: Outcome): string {
  switch (outcome.kind) {
    case 'lock':
      return `f${outcome.fencingToken ?? NO_TOKEN} ${outcome.acquired ? 'acquired' : 'not acquired'} ${outcome.owner}`;
    case 'unlock':
      return outcome.unlocked ? 'unlocked' : 'not unlocked';
    case 'extend':
      return `f${outcome.fencingToken ?? NO_TOKEN} ${outcome.extended ? 'extended' : 'not extended'}`;
    case 'get-lock': {
      const holder = outcome.holder;
      return holder === null ? 'not found' : `f${holder.fencingToken} ${holder.owner} expires in ${holder.remainingMs} ms`;
    }
  }
}

type JsonValue = string | number | bigint | boolean | null;

/** The JSON object of an outcome, its fields in a fixed order. */
export function jsonFields(outcome: Outcome): [string, JsonValue][] {
  switch (outcome.kind) {
    case 'lock':
      return [['resource', outcome.resource], ['isAcquired', outcome.acquired],
        ['fencingToken', outcome.fencingToken ?? NO_TOKEN], ['owner', outcome.owner]];
    case 'unlock':
      return [['resource', outcome.resource], ['isUnlocked', outcome.unlocked], ['owner', outcome.owner]];
    case 'extend':
      return [['resource', outcome.resource], ['isExtended', outcome.extended],
        ['fencingToken', outcome.fencingToken ?? NO_TOKEN], ['owner', outcome.owner]];
    case 'get-lock': {
      const holder = outcome.holder;
      return [['resource', outcome.resource], ['isLocked', holder !== null], ['owner', holder?.owner ?? null],
        ['fencingToken', holder?.fencingToken ?? null], ['expiresMs', holder?.remainingMs ?? null]];
    }
  }
}

/** A compact JSON object; bigints are written as plain JSON integers (64-bit tokens stay exact). */
export function jsonLine(fields: [string, JsonValue][]): string {
  const body = fields.map(([key, value]) => `${JSON.stringify(key)}:${typeof value === 'bigint' ? value.toString() : JSON.stringify(value)}`);
  return `{${body.join(',')}}`;
}
