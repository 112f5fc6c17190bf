#!/usr/bin/env node
import { Command } from 'commander';
import { RAFTLOCK_VERSION } from '../commands/version.js';

/**
 * raftlock-cli. Until its lock commands land, it describes itself and points to
 * redis-cli, which speaks every raftlock command today.
 */
const program = new Command('raftlock-cli')
  .description('Command-line client for raftlock (lock, unlock, extend, get; console or JSON output).\n' +
    'The lock options are not available in this version; meanwhile every raftlock command works\n' +
    'from redis-cli, e.g.: redis-cli -p 6379 KLOCK backup-lock me 60000')
  .version(RAFTLOCK_VERSION, '-v, --version')
  .action(() => {
    program.outputHelp();
    process.exitCode = 2;
  });

program.parse();
