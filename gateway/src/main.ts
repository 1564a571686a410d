#!/usr/bin/env node
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { ConfigError, parseConfig } from './config.js';
import { createGateway } from './app.js';
import { parseAsyncSettings, type AsyncSettings } from './async/index.js';

/** The gateway process: config, listen, signals, graceful close. */
async function main() {
  let config;
  let asyncSettings: AsyncSettings;
  try {
    config = parseConfig(
      process.argv.slice(2),
      process.env,
      `${hostname()}-${randomBytes(3).toString('hex')}`,
    );
    asyncSettings = parseAsyncSettings(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = pino({ name: 'hearth-gateway', level: config.logLevel });
  const gateway = createGateway(config, {
    logger,
    workerOptions: asyncSettings.workers,
    backlogLimits: asyncSettings.limits,
  });
  await gateway.start();
  await new Promise<void>((resolve, reject) => {
    gateway.server.once('error', reject);
    gateway.server.listen(config.port, config.host, () => resolve());
  });
  const address = gateway.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info(
    { port, role: config.role, gatewayId: config.gatewayId, auth: config.auth.enabled },
    'gateway listening',
  );

  let closing = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'gateway closing: finishing running calls');
    gateway.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'gateway did not close cleanly');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `gateway failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
