import type { CommandContext } from './spec.js';

export const WRONGPASS = 'WRONGPASS invalid username-password pair or user is disabled.';
export const NOAUTH = 'NOAUTH Authentication required.';

/** Checks credentials of the only user, 'default'. Compares in constant time for equal lengths. */
export function checkPassword(ctx: CommandContext, username: string, password: string): boolean {
  const expected = ctx.server.config.requirepass;
  if (username !== 'default') return false;
  if (expected === undefined) return true;
  if (expected.length !== password.length) return false;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) diff |= expected.charCodeAt(i) ^ password.charCodeAt(i);
  return diff === 0;
}

/** Client names and library attributes: printable ASCII without spaces, like Redis. */
export function validClientName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}
