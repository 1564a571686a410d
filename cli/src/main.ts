#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { runDev } from './dev.js';
import { CliError } from './errors.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('must be a port number (1-65535)');
  return n;
}

const program = new Command('hearth').description('Hearth: Lambda-compatible functions on your own machines').showHelpAfterError();

program
  .command('dev')
  .description('run the whole platform locally: Redis, the controller (local processes) and the gateway')
  .option('-p, --port <port>', 'gateway port', port, 8080)
  .option('-d, --dir <dir>', 'directory of Function manifests (*.yaml)', './functions')
  .option('--redis-url <url>', 'use this Redis instead of starting one', process.env.HEARTH_REDIS_URL)
  .action(async (options: { port: number; dir: string; redisUrl?: string }) => {
    process.exitCode = await runDev(options);
  });

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof CliError) {
    process.stderr.write(`hearth: ${error.message}\n`);
    process.exit(error.exitCode);
  }
  throw error;
}
