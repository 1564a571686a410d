#!/usr/bin/env node
// The shim's process: settings from the environment, start the runtimes, listen, drain on SIGTERM.
// It runs as dist/main.cjs, one CommonJS file that build.mjs bundles from this module and those it
// imports (pino goes to dist/vendor/pino.cjs, loaded once the runtimes are spawned). CommonJS has
// no top-level await, hence main().
import { createShim, type Shim } from './app.js';
import { ConfigError, parseConfig } from './config.js';
import { loadDeferredBuiltins } from './deferred-builtins.js';
import { DeferredLogger } from './deferred-logger.js';
import { FunctionLog } from './function-log.js';
import { removeStaleStateDirs } from './isolation.js';

async function main(): Promise<void> {
  let config;
  try {
    config = parseConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`hearth-shim: invalid setting ${error.message}\n`);
    process.exit(2);
  }

  // The cold start is the shim's start-up followed by the runtime's (a second process), so the
  // runtimes are spawned as early as possible and the rest of the shim's start-up (pino) happens
  // while they boot. The sandboxes come first; their /tmp filesystems are made by the runtimes'
  // launchers.
  const logger = new DeferredLogger();
  // The function's log stream: one write per invocation, START to REPORT.
  const functionLog = new FunctionLog(1);
  let shim: Shim;
  try {
    shim = await createShim(config, { logger, functionLog });
  } catch (error) {
    process.stderr.write(`hearth-shim: cannot start: ${String(error)}\n`);
    process.exit(1);
  }
  const started = shim.start();
  await started.catch(() => undefined);
  loadDeferredBuiltins();
  void removeStaleStateDirs();

  const { default: pino } = await import('pino');
  const operationalLog = pino.destination({ dest: 2, sync: false });
  logger.attach(
    pino(
      {
        name: 'hearth-shim',
        level: config.logLevel,
        base: { function: config.functionName, pid: process.pid },
      },
      operationalLog,
    ),
  );

  const address = shim.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info(
    { host: config.host, port, runtime: config.runtime },
    `hearth-shim listening on http://${config.host}:${port}`,
  );

  let stopping = false;
  async function stop(signal: string) {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining: finishing the invocation in flight');
    try {
      await shim.shutdown();
      logger.info('stopped');
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      process.exitCode = 1;
    }
    functionLog.flushSync();
    operationalLog.flushSync();
    process.exit();
  }
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  if (config.stopWithStdin) {
    process.stdin.once('close', () => void stop('stdin closed'));
    process.stdin.resume();
  }

  try {
    await started;
    await shim.initialized;
    logger.info('runtimes initialized: ready');
  } catch (error) {
    logger.fatal({ err: error }, 'runtimes could not start');
    await shim.shutdown().catch(() => undefined);
    functionLog.flushSync();
    operationalLog.flushSync();
    process.exit(1);
  }
}

void main();
