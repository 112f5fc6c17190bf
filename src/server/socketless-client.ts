import type { ClientState } from '../commands/spec.js';

/**
 * The client state of a command that did not arrive on a RESP connection:
 * one another node forwarded here (`forwarded`: dispatch runs it here, never
 * forwarding it again), or a REST call (not forwarded: dispatch sends a keyed
 * command on to its partition's leader, as for a RESP client).
 */
export class SocketlessClient implements ClientState {
  readonly id = 0;
  name = '';
  libVer = '';
  authenticated = true;
  db = 0;
  readonly laddr: string;
  readonly createdAtMs = 0;
  lastCommand = 'NULL';
  closeAfterReply = false;
  blocked = false;
  lastActiveMs = 0;
  /** Made on first use: most commands never register a hook. */
  private hooks: Set<() => void> | undefined;

  constructor(
    public proto: 2 | 3,
    readonly addr: 'peer' | 'http',
    readonly forwarded: boolean,
    public libName = '',
  ) {
    this.laddr = addr;
  }

  get onClose(): Set<() => void> {
    return (this.hooks ??= new Set());
  }

  /** No cleanup hook is registered: nothing a command left behind refers to this client. */
  get idle(): boolean {
    return this.hooks === undefined || this.hooks.size === 0;
  }

  /** The requester went away: runs the command's cleanup hooks (e.g. cancel a forward or a WAIT). */
  close(): void {
    const hooks = this.hooks;
    if (hooks === undefined) return;
    for (const cleanup of hooks) cleanup();
    hooks.clear();
  }

  bufferSizes(): { query: number; output: number } {
    return { query: 0, output: 0 };
  }
}
