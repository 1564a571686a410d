#!/usr/bin/env node
import { Argument, Command, InvalidArgumentError, Option } from 'commander';
import { Runtimes, type Runtime } from '@hearth/api';
import { runDev } from './dev.js';
import { CliError } from './errors.js';
import * as commands from './commands.js';
import { configFilePath, readConfigFile, resolveSettings, type Settings } from './settings.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new InvalidArgumentError('must be a port number (1-65535)');
  return n;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

const program = new Command('hearth')
  .description('Hearth: Lambda-compatible functions on your own machines')
  .option('--url <url>', 'the gateway (default: HEARTH_URL, the config file, http://127.0.0.1:8080)')
  .option('--token <token>', 'API key sent as a Bearer token (default: HEARTH_TOKEN, the config file)')
  .addOption(
    new Option('-o, --output <format>', 'text for people, json for scripts').choices(['text', 'json']),
  )
  .showHelpAfterError()
  .addHelpText(
    'after',
    `\nSettings come from the flags, then the environment (HEARTH_URL, HEARTH_TOKEN, HEARTH_OUTPUT), then ${configFilePath(process.env)}.\n` +
      'Exit codes: 0 ok, 1 platform or connection failure, 2 bad command line or input, 3 the function returned an error, 4 not found.',
  );

/** The settings of a subcommand: its flags, then the environment, then the config file. */
function settingsOf(command: Command): Settings {
  return resolveSettings(command.optsWithGlobals(), process.env, readConfigFile(configFilePath(process.env)));
}

program
  .command('dev')
  .description('run the whole platform locally: Redis, the controller (local processes) and the gateway')
  .option('-p, --port <port>', 'gateway port', port, 8080)
  .option('-d, --dir <dir>', 'directory of Function manifests (*.yaml)', './functions')
  .option('--redis-url <url>', 'use this Redis instead of starting one', process.env.HEARTH_REDIS_URL)
  .action(async (options: { port: number; dir: string; redisUrl?: string }) => {
    process.exitCode = await runDev(options);
  });

program
  .command('init')
  .description('create a function folder with a handler and its manifest (hearth.json)')
  .argument('<name>', 'the function name (lower-case letters, digits, -)')
  .addOption(new Option('-r, --runtime <runtime>', 'the runtime').choices(Runtimes).default('nodejs20.x'))
  .option('-d, --dir <dir>', 'the folder to create (default: NAME)')
  .action(async (name: string, options: { runtime: Runtime; dir?: string }) => {
    await commands.init(name, options.runtime, options.dir);
  });

program
  .command('deploy')
  .description(
    'package a function folder (with node_modules or vendored packages), upload it, wait until it serves',
  )
  .argument('[dir]', 'the function folder', '.')
  .option('--no-wait', 'return once uploaded, without waiting for the function to be Active')
  .option('--timeout <seconds>', 'how long to wait for Active', positiveInteger, 120)
  .action(async (dir: string, options: { wait: boolean; timeout: number }, command: Command) => {
    await commands.deploy(settingsOf(command), dir, { wait: options.wait, timeoutSeconds: options.timeout });
  });

program
  .command('invoke')
  .description('call a function and print its result')
  .argument('<name>', 'the function')
  .option('--async', 'queue the event (Lambda Event invocation) instead of waiting for the result')
  .option('-p, --payload <json>', "the event: JSON, @file.json, or - for stdin (default '{}')")
  .option('--log', 'print the last 4 KB of the invocation log to stderr')
  .action(
    async (name: string, options: { async?: boolean; payload?: string; log?: boolean }, command: Command) => {
      process.exitCode = await commands.invoke(settingsOf(command), name, options);
    },
  );

program
  .command('ls')
  .description('list functions')
  .action(async (_options: unknown, command: Command) => {
    await commands.list(settingsOf(command));
  });

program
  .command('get')
  .description("show a function's configuration and state")
  .argument('<name>', 'the function')
  .action(async (name: string, _options: unknown, command: Command) => {
    await commands.get(settingsOf(command), name);
  });

program
  .command('logs')
  .description("print a function's recent output (process mode: the last 2000 lines its instances wrote)")
  .argument('<name>', 'the function')
  .option('-f, --follow', 'keep printing new lines until Ctrl-C')
  .option('-n, --lines <count>', 'how many recent lines to start with', positiveInteger, 100)
  .action(async (name: string, options: { follow?: boolean; lines: number }, command: Command) => {
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    await commands.logs(
      settingsOf(command),
      name,
      { follow: options.follow, limit: Math.min(options.lines, 1000) },
      stop.signal,
    );
  });

program
  .command('rm')
  .description('delete a function (its stored code is reclaimed)')
  .argument('<name>', 'the function')
  .action(async (name: string, _options: unknown, command: Command) => {
    await commands.remove(settingsOf(command), name);
  });

program
  .command('dlq')
  .description("a function's dead-letter queue: ls, show ID, redrive [ID], purge")
  .addArgument(new Argument('<action>', 'what to do').choices(['ls', 'show', 'redrive', 'purge']))
  .argument('<name>', 'the function')
  .argument('[id]', 'one entry (show, redrive)')
  .action(
    async (action: string, name: string, id: string | undefined, _options: unknown, command: Command) => {
      await commands.dlq(settingsOf(command), action, name, id);
    },
  );

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof CliError) {
    process.stderr.write(`hearth: ${error.message}\n`);
    process.exit(error.exitCode);
  }
  throw error;
}
