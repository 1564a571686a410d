/** The gateway's async side: the Event queue, its workers, dead letters and destinations. */
export {
  createAsyncQueue,
  DEFAULT_BACKLOG_LIMITS,
  type AsyncQueue,
  type AsyncQueueOptions,
  type BacklogLimits,
  type EnqueueRequest,
} from './queue.js';
export { startWorkers, type AsyncWorkers, type AsyncWorkersOptions } from './workers.js';
export { createDeadLetterQueue, type DeadLetterQueue } from './dlq.js';
export { createDlqRouter } from './dlq-router.js';
export { LAMBDA_RETRY_DELAYS_MS, LAMBDA_REQUEUE_BACKOFF, type BackoffBounds } from './policy.js';
export type { DeadLetter, DestinationRecord } from './records.js';
export { parseAsyncSettings, ASYNC_ENV, type AsyncSettings } from './settings.js';
