#!/usr/bin/env -S node --min-semi-space-size=16 --max-semi-space-size=16
import { CommanderError } from 'commander';
import { parseConfig, type ServerConfig } from './config.js';
import { openDataDir } from './datadir.js';
import { createLogger } from './log.js';
import { RaftlockServer } from './server.js';
import { RAFTLOCK_VERSION } from '../commands/version.js';

function configOrExit(): ServerConfig {
  try {
    return parseConfig(process.argv.slice(2));
  } catch (error) {
    if (error instanceof CommanderError) process.exit(error.exitCode);
    throw error;
  }
}

async function main(): Promise<void> {
  const config = configOrExit();
  const log = createLogger({ level: config.logLevel, nodeId: config.nodeId });
  try {
    openDataDir(config.dataDir, config.nodeId, config.partitions, config.peers === undefined ? undefined : [...config.peers.keys()]);
  } catch (error) {
    log.error('cannot open data directory', { dataDir: config.dataDir, error: (error as Error).message });
    process.exit(1);
  }
  const server = new RaftlockServer(config, log);
  try {
    await server.listen();
  } catch (error) {
    log.error('cannot listen', { bind: config.bind, port: config.port, error: (error as Error).message });
    process.exit(1);
  }
  log.info('ready to accept connections', { version: RAFTLOCK_VERSION, bind: config.bind, port: server.port, dataDir: config.dataDir });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      log.warn('second signal, exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log.info('shutting down', { signal, clients: server.connectionCount });
    void server.close().then(() => {
      log.info('shut down cleanly');
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

process.on('uncaughtException', (error) => {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'fatal error', error: error.stack ?? String(error) }) + '\n');
  process.exit(70);
});

void main();
