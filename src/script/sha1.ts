import { createHash } from 'node:crypto';

/** A script's SHA1 (lower-case hex) over its exact bytes: the name EVALSHA and SCRIPT EXISTS use. */
export function sha1Hex(body: string): string {
  return createHash('sha1').update(body, 'latin1').digest('hex');
}
