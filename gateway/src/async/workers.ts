import { DelayedError, Worker, type Job } from 'bullmq';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { RedisKeys, type FunctionRoute } from '@hearth/api';
import { GatewayError } from '../core/errors.js';
import type { Discovery } from '../core/discovery.js';
import type { Invoker } from '../core/invoker.js';
import { asyncMetrics } from './metrics.js';
import {
  LAMBDA_REQUEUE_BACKOFF,
  LAMBDA_RETRY_DELAYS_MS,
  isEventTooOld,
  nextStep,
  type AsyncPolicy,
  type BackoffBounds,
  type DeadLetterCondition,
  type RunOutcome,
} from './policy.js';
import { createAsyncQueue, type AsyncQueue, type BacklogLimits } from './queue.js';
import {
  deadLetterFields,
  failureRecord,
  successRecord,
  type AsyncEvent,
  type EventError,
} from './records.js';
import { ASYNC_FUNCTIONS_KEY, BULL_PREFIX, eventQueueName, workerConnection } from './redis.js';
import {
  DEFAULT_DELIVERY,
  createDeliveryQueue,
  startDeliveryWorker,
  type Delivery,
  type DeliverySettings,
} from './destinations.js';

export interface AsyncWorkersOptions {
  redisUrl: string;
  invoker: Invoker;
  discovery: Discovery;
  /** Enqueues function destinations; one is created when not given. */
  asyncQueue?: AsyncQueue;
  /** Events of one function run at the same time in this process, at most. */
  concurrency?: number;
  /** Delays before the retries after a function error (Lambda: 1 min, 2 min). */
  retryDelaysMs?: readonly number[];
  /** Backoff for throttles and system errors (Lambda: 1 s .. 5 min). */
  requeueBackoff?: BackoffBounds;
  /**
   * A job whose worker stops renewing its lock for this long is run again elsewhere: the bound
   * on how late an event of a killed worker runs.
   */
  lockDurationMs?: number;
  /** How often workers look for jobs whose lock expired. */
  stalledIntervalMs?: number;
  /** How often this process looks for functions that got their first async event. */
  queueScanIntervalMs?: number;
  delivery?: Partial<DeliverySettings>;
  /** Limits of the queue created when `asyncQueue` is not given (it enqueues function destinations). */
  backlogLimits?: Partial<BacklogLimits>;
  /** Approximate cap on each dead-letter stream. */
  dlqMaxLength?: number;
  metricsRegistry?: Registry;
  logger?: Logger;
  region?: string;
  accountId?: string;
  /** The clock event ages are measured with; tests move it forward to age events. */
  now?: () => number;
}

export interface AsyncWorkers {
  /** Functions whose queue this process serves. */
  serving(): string[];
  /** Waits for running events to finish, then closes every connection. */
  stop(): Promise<void>;
}

export async function startWorkers(options: AsyncWorkersOptions): Promise<AsyncWorkers> {
  const logger = options.logger ?? pino({ name: 'hearth-async-worker' });
  const now = options.now ?? Date.now;
  const arn = { region: options.region ?? 'us-east-1', account: options.accountId ?? '000000000000' };
  const metrics = options.metricsRegistry ? asyncMetrics(options.metricsRegistry) : undefined;
  const retryDelaysMs = options.retryDelaysMs ?? LAMBDA_RETRY_DELAYS_MS;
  const requeueBackoff = options.requeueBackoff ?? LAMBDA_REQUEUE_BACKOFF;
  const delivery = { ...DEFAULT_DELIVERY, ...options.delivery };
  const dlqMaxLength = options.dlqMaxLength ?? 100_000;
  const concurrency = options.concurrency ?? 10;

  const connection = workerConnection(options.redisUrl);
  let lastOutageLog = 0;
  const reportOutage = (error: Error) => {
    // During a Redis restart every worker reports every failed command; one line says it.
    if (Date.now() - lastOutageLog < 5000) return;
    lastOutageLog = Date.now();
    logger.warn({ err: error }, 'async workers lost Redis; waiting for it to come back');
  };
  connection.on('error', reportOutage);

  const ownQueue = options.asyncQueue
    ? undefined
    : createAsyncQueue({
        redisUrl: options.redisUrl,
        discovery: options.discovery,
        ...(options.backlogLimits ? { limits: options.backlogLimits } : {}),
        logger,
        ...(options.metricsRegistry ? { metricsRegistry: options.metricsRegistry } : {}),
        region: arn.region,
        accountId: arn.account,
      });
  const asyncQueue = options.asyncQueue ?? ownQueue!;
  const deliveries = createDeliveryQueue(connection, delivery);

  const policyOf = (route: FunctionRoute | undefined): AsyncPolicy => ({
    maxRetryAttempts: route?.spec.async.maxRetryAttempts ?? 2,
    maxEventAgeSeconds: route?.spec.async.maxEventAgeSeconds ?? 21_600,
    retryDelaysMs,
    requeueBackoff,
  });

  /** `record` is built only for a function that has the destination (most have none). */
  async function sendToDestination(
    route: FunctionRoute | undefined,
    kind: Delivery['kind'],
    record: () => Delivery['record'],
  ) {
    const destination = route?.spec.async[kind];
    if (!destination || !route) return;
    await deliveries.add({ sourceFunction: route.name, kind, destination, record: record() });
  }

  async function deadLetter(
    event: AsyncEvent,
    route: FunctionRoute | undefined,
    condition: DeadLetterCondition,
  ) {
    const at = new Date();
    const fields = deadLetterFields(event, condition, at);
    await connection.xadd(
      RedisKeys.dlq(event.functionName),
      'MAXLEN',
      '~',
      dlqMaxLength,
      '*',
      ...Object.entries(fields).flat(),
    );
    await sendToDestination(route, 'onFailure', () => failureRecord(event, condition, at, arn));
    metrics?.deadLettered.inc({ function: event.functionName, condition });
    logger.warn(
      {
        function: event.functionName,
        requestId: event.requestId,
        condition,
        attempts: event.functionErrors,
        error: event.lastError?.type,
      },
      'async event dead-lettered',
    );
  }

  async function process(job: Job<AsyncEvent>, token?: string): Promise<void> {
    const event: AsyncEvent = { ...job.data };
    const route = options.discovery.getFunction(event.functionName);
    const policy = policyOf(route);

    if (isEventTooOld(now() - event.acceptedAt, policy.maxEventAgeSeconds)) {
      event.lastError ??= {
        type: 'EventAgeExceeded',
        message: `event older than ${policy.maxEventAgeSeconds} s`,
      };
      return deadLetter(event, route, 'EventAgeExceeded');
    }
    if (route?.spec.concurrency.reserved === 0) {
      // Lambda: a function throttled to zero sends its async events straight to the failure path.
      event.lastError = {
        type: 'TooManyRequestsException',
        message:
          'Rate Exceeded. (ReservedFunctionConcurrentInvocationLimitExceeded: reserved concurrency is 0)',
        statusCode: 429,
      };
      return deadLetter(event, route, 'RetriesExhausted');
    }

    const { outcome, result } = await run(event);
    const step = nextStep(
      outcome,
      { functionErrors: event.functionErrors, requeues: event.requeues, ageMs: now() - event.acceptedAt },
      policy,
    );
    switch (step.action) {
      case 'succeed':
        metrics?.completed.inc({ function: event.functionName });
        return sendToDestination(route, 'onSuccess', () => successRecord(event, result!, new Date(), arn));
      case 'deadLetter':
        return deadLetter(event, route, step.condition);
      case 'retry': {
        if (!step.usesAttempt) event.requeues += 1;
        const reason = step.usesAttempt
          ? 'function_error'
          : event.lastError?.statusCode === 429
            ? 'throttle'
            : 'system_error';
        metrics?.retries.inc({ function: event.functionName, reason });
        // The attempt counters are saved before the move: a crash in between re-runs the event
        // with them, never forgets a used attempt.
        await job.updateData(event);
        await job.moveToDelayed(Date.now() + step.delayMs, token);
        throw new DelayedError();
      }
    }
  }

  /** Runs the event once through the sync path and sorts the result for the retry policy. */
  async function run(
    event: AsyncEvent,
  ): Promise<{ outcome: RunOutcome; result?: { payload: string; executedVersion: string } }> {
    try {
      const result = await options.invoker.invoke({
        functionName: event.functionName,
        ...(event.qualifier ? { qualifier: event.qualifier } : {}),
        requestId: event.requestId,
        payload: Buffer.from(event.payload),
        source: 'async',
      });
      event.invocations += 1;
      const payload = result.payload.toString('utf8');
      if (result.functionError) {
        event.functionErrors += 1;
        event.lastError = functionFailure(result.errorType, payload, result.executedVersion);
        return { outcome: { kind: 'functionError' } };
      }
      return { outcome: { kind: 'success' }, result: { payload, executedVersion: result.executedVersion } };
    } catch (error) {
      if (error instanceof GatewayError) {
        event.lastError = { type: error.code, message: error.message, statusCode: error.status };
        const retriable = error.status === 429 || error.status >= 500;
        return { outcome: { kind: retriable ? 'requeue' : 'rejected' } };
      }
      event.lastError = { type: 'ServiceException', message: (error as Error).message, statusCode: 500 };
      return { outcome: { kind: 'requeue' } };
    }
  }

  const workers = new Map<string, Worker<AsyncEvent>>();
  function serve(functionName: string) {
    if (workers.has(functionName)) return;
    const worker = new Worker<AsyncEvent>(eventQueueName(functionName), process, {
      connection,
      prefix: BULL_PREFIX,
      concurrency,
      lockDuration: options.lockDurationMs ?? 30_000,
      stalledInterval: options.stalledIntervalMs ?? 30_000,
      // A killed worker leaves its jobs stalled; they must come back however often that happens.
      maxStalledCount: 1000,
    });
    worker.on('error', reportOutage);
    // A stalled job is one whose worker died or froze mid-run: it runs again, maybe twice in all.
    worker.on('stalled', (jobId) =>
      logger.warn({ function: functionName, requestId: jobId }, 'async event stalled; running it again'),
    );
    worker.on('failed', (job, error) => void onInfrastructureFailure(job, error));
    workers.set(functionName, worker);
    logger.info({ function: functionName }, 'serving async events');
  }

  async function onInfrastructureFailure(job: Job<AsyncEvent> | undefined, error: Error) {
    if (!job) return;
    // Before its last try BullMQ has already put the job back, delayed (see INFRASTRUCTURE_RETRIES).
    if (job.attemptsMade < (job.opts.attempts ?? 1)) return;
    try {
      const event: AsyncEvent = {
        ...job.data,
        lastError: { type: 'ServiceException', message: error.message, statusCode: 500 },
      };
      await deadLetter(event, options.discovery.getFunction(event.functionName), 'RetriesExhausted');
      await job.remove();
    } catch (removeError) {
      logger.error(
        { err: removeError, requestId: job.id },
        'an async event failed and could not be dead-lettered; it stays in the failed set',
      );
    }
  }

  async function scanQueues() {
    try {
      for (const name of await connection.smembers(ASYNC_FUNCTIONS_KEY)) serve(name);
    } catch (error) {
      reportOutage(error as Error);
    }
  }
  await scanQueues();
  const scanTimer = setInterval(() => void scanQueues(), options.queueScanIntervalMs ?? 1000);

  const deliveryWorker = startDeliveryWorker({
    connection,
    asyncQueue,
    settings: delivery,
    concurrency,
    metrics,
    logger,
  });

  return {
    serving: () => [...workers.keys()],
    async stop() {
      clearInterval(scanTimer);
      await Promise.all([...workers.values()].map((w) => w.close()));
      await deliveryWorker.close();
      await deliveries.close();
      await ownQueue?.close();
      await connection.quit().catch(() => connection.disconnect());
    },
  };
}

function functionFailure(
  errorType: string | undefined,
  payload: string,
  executedVersion: string,
): EventError {
  let message = '';
  let type = errorType;
  try {
    const body = JSON.parse(payload) as { errorType?: unknown; errorMessage?: unknown };
    if (typeof body.errorMessage === 'string') message = body.errorMessage;
    if (!type && typeof body.errorType === 'string') type = body.errorType;
  } catch {
    message = payload.slice(0, 256);
  }
  return { type: type ?? 'Unhandled', message, functionErrorBody: payload, executedVersion };
}
