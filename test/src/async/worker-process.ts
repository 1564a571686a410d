/**
 * A real async worker process for the durability test: the gateway's startWorkers with an
 * Invoker that delivers each event to a recording HTTP server (a function that only says "I ran
 * this"), so that ten thousand events fit in the test's time and SIGKILL hits a real process.
 *
 * Environment: REDIS_URL, RECORDER_URL, FUNCTION_NAME.
 */
import { pino } from 'pino';
import { GatewayError } from '@hearth/gateway/core/errors';
import type { InvokeRequest, InvokeResult, Invoker } from '@hearth/gateway/core/invoker';
import { StaticDiscovery } from '@hearth/gateway/discovery/static';
import { startWorkers } from '@hearth/gateway/async/index';
import { fastWorkerSettings, functionFailed, functionRoute } from './fixtures.js';

const { REDIS_URL, RECORDER_URL, FUNCTION_NAME } = process.env;
if (!REDIS_URL || !RECORDER_URL || !FUNCTION_NAME)
  throw new Error('REDIS_URL, RECORDER_URL and FUNCTION_NAME are required');

class RecordingInvoker implements Invoker {
  async invoke(request: InvokeRequest): Promise<InvokeResult> {
    const event = JSON.parse(request.payload.toString()) as { seq: number; fail?: boolean };
    if (event.fail) return functionFailed('Error', `planned failure of ${event.seq}`);
    const answer = await fetch(RECORDER_URL!, {
      method: 'POST',
      body: request.payload,
      signal: AbortSignal.timeout(5000),
    });
    await answer.arrayBuffer();
    if (!answer.ok) throw new GatewayError('ServiceException', `recorder answered ${answer.status}`);
    return { payload: Buffer.from('null'), executedVersion: '$LATEST', durationMs: 0 };
  }
}

const discovery = new StaticDiscovery();
discovery.setFunction(functionRoute(FUNCTION_NAME, { maxRetryAttempts: 1 }));
const workers = await startWorkers({
  redisUrl: REDIS_URL,
  invoker: new RecordingInvoker(),
  discovery,
  logger: pino({ level: process.env.HEARTH_TEST_LOGS === '1' ? 'info' : 'warn' }),
  ...fastWorkerSettings,
  concurrency: 32,
});
process.stdout.write(`worker ready, serving ${workers.serving().join(',')}\n`);
process.once('SIGTERM', () => void workers.stop().then(() => process.exit(0)));
