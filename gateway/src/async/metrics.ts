import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * The async side's metrics. Counters count what this process did; the gauges read Redis at
 * scrape time, so every gateway reports the same cluster-wide backlog (aggregate them with max).
 */
export interface AsyncMetrics {
  enqueued: Counter<'function'>;
  rejected: Counter<'function' | 'reason'>;
  retries: Counter<'function' | 'reason'>;
  deadLettered: Counter<'function' | 'condition'>;
  completed: Counter<'function'>;
  destinationDeliveries: Counter<'function' | 'destination' | 'kind' | 'outcome'>;
}

/** What the gauges read at scrape time, one entry per function with an async queue. */
export interface BacklogSnapshot {
  functionName: string;
  depth: number;
  oldestAgeSeconds: number;
  deadLetters: number;
}

// A registry is shared by the HTTP side and the workers of one process: the second caller gets
// the metrics the first one registered instead of a duplicate-name error.
function once<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

export function asyncMetrics(registry: Registry): AsyncMetrics {
  const registers = [registry];
  return {
    enqueued: once(
      registry,
      'hearth_async_events_enqueued_total',
      () =>
        new Counter({
          name: 'hearth_async_events_enqueued_total',
          help: 'Async events accepted (202)',
          labelNames: ['function'],
          registers,
        }),
    ),
    rejected: once(
      registry,
      'hearth_async_events_rejected_total',
      () =>
        new Counter({
          name: 'hearth_async_events_rejected_total',
          help: 'Async events refused because the backlog was over its limit (429)',
          labelNames: ['function', 'reason'],
          registers,
        }),
    ),
    retries: once(
      registry,
      'hearth_async_retries_total',
      () =>
        new Counter({
          name: 'hearth_async_retries_total',
          help: 'Async events scheduled to run again, by reason (function_error uses an attempt; throttle and system_error do not)',
          labelNames: ['function', 'reason'],
          registers,
        }),
    ),
    deadLettered: once(
      registry,
      'hearth_async_dead_lettered_total',
      () =>
        new Counter({
          name: 'hearth_async_dead_lettered_total',
          help: 'Async events discarded to the dead-letter queue, by condition',
          labelNames: ['function', 'condition'],
          registers,
        }),
    ),
    completed: once(
      registry,
      'hearth_async_events_succeeded_total',
      () =>
        new Counter({
          name: 'hearth_async_events_succeeded_total',
          help: 'Async events whose invocation succeeded',
          labelNames: ['function'],
          registers,
        }),
    ),
    destinationDeliveries: once(
      registry,
      'hearth_async_destination_deliveries_total',
      () =>
        new Counter({
          name: 'hearth_async_destination_deliveries_total',
          help: 'Destination deliveries by outcome (delivered, retried, failed)',
          labelNames: ['function', 'destination', 'kind', 'outcome'],
          registers,
        }),
    ),
  };
}

/** Registers the backlog gauges, read through `snapshot` whenever Prometheus scrapes. */
export function registerBacklogGauges(registry: Registry, snapshot: () => Promise<BacklogSnapshot[]>): void {
  if (registry.getSingleMetric('hearth_async_queue_depth')) return;
  let latest: Promise<BacklogSnapshot[]> | undefined;
  // The three gauges are collected one after another for one scrape: share one Redis read.
  const read = () => {
    latest ??= snapshot().finally(() => setTimeout(() => (latest = undefined), 100).unref());
    return latest;
  };
  const gauge = (name: string, help: string, pick: (s: BacklogSnapshot) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['function'],
      registers: [registry],
      async collect() {
        this.reset();
        try {
          for (const s of await read()) this.set({ function: s.functionName }, pick(s));
        } catch {
          // Redis unreachable: report nothing rather than stale numbers; the scrape still succeeds.
        }
      },
    });
  gauge(
    'hearth_async_queue_depth',
    'Async events accepted and not yet finished (waiting, delayed or running)',
    (s) => s.depth,
  );
  gauge(
    'hearth_async_oldest_event_age_seconds',
    'Age of the oldest async event waiting to run',
    (s) => s.oldestAgeSeconds,
  );
  gauge('hearth_async_dlq_size', "Entries in the function's dead-letter queue", (s) => s.deadLetters);
}
