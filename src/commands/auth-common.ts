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

/** Answers refused credentials with WRONGPASS; the server logs the client's first refusal. */
export function refuseCredentials(ctx: CommandContext, username: string): void {
  // The username is not logged: a client that swapped its arguments would log its password.
  ctx.server.clientRefused?.(ctx.client, username === 'default' ? 'wrong password' : 'unknown user');
  ctx.reply.error(WRONGPASS);
}

/** Client names and library attributes: printable ASCII without spaces, like Redis. */
export function validClientName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}
