// Listening on and closing the node's HTTP servers (REST API, metrics) the same way.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './log.js';

/**
 * Listens on port (0: any free port) at bind and resolves with the bound port; a later listener
 * error is logged under `what` rather than thrown.
 */
export async function listenHttp(server: http.Server, port: number, bind: string, log: Logger, what: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, bind, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log.error(`${what} listener error`, { error: error.message }));
  return boundPort(server);
}

export function boundPort(server: http.Server): number {
  return (server.address() as AddressInfo).port;
}

/** Stops accepting and drops every connection, idle or not. */
export async function closeHttp(server: http.Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
