import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RaftlockServer } from '../../src/server/server.js';
import { DEFAULT_CONFIG, type ServerConfig } from '../../src/server/config.js';
import { RawClient } from './raw-client.js';

export interface TestServer {
  server: RaftlockServer;
  port: number;
  connect(): Promise<RawClient>;
  close(): Promise<void>;
}

/** Starts an in-process server on a free port, without the REST API unless asked; t.teardown(close) stops it even on failure. */
export async function startServer(overrides: Partial<ServerConfig> = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'raftlock-test-'));
  const server = new RaftlockServer({ ...DEFAULT_CONFIG, port: 0, httpPort: 0, dataDir, logLevel: 'silent', ...overrides });
  const port = await server.listen();
  const clients: RawClient[] = [];
  return {
    server,
    port,
    async connect() {
      const client = await RawClient.connect(port);
      clients.push(client);
      return client;
    },
    async close() {
      for (const c of clients) c.close();
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The first EPHEMERAL fencing token partition p hands out under its current leader (term x 2^32). */
export function ephemeralTokenBase(server: RaftlockServer, partition = 0): number {
  return server.info.raft!()[partition]!.term * 2 ** 32;
}
