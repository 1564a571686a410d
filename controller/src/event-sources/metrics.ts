import { Counter, Gauge, Registry } from 'prom-client';

const labelNames = ['mapping', 'function', 'source'] as const;

/** Per-mapping metrics, served on the controller's /metrics. Labels: mapping, function, source kind. */
export class EventSourceMetrics {
  readonly recordsRead: Counter<(typeof labelNames)[number]>;
  readonly batches: Counter<(typeof labelNames)[number] | 'outcome'>;
  readonly retries: Counter<(typeof labelNames)[number]>;
  readonly failures: Counter<(typeof labelNames)[number]>;
  readonly duplicates: Counter<(typeof labelNames)[number]>;
  readonly lagSeconds: Gauge<(typeof labelNames)[number]>;
  readonly invocations: Counter<(typeof labelNames)[number] | 'outcome'>;

  constructor(readonly registry: Registry) {
    this.recordsRead = new Counter({
      name: 'hearth_event_source_records_read_total',
      help: 'Records read from a pull source',
      labelNames,
      registers: [registry],
    });
    this.batches = new Counter({
      name: 'hearth_event_source_batches_total',
      help: 'Batches sent to the function, by outcome (success, partial, error, throttled, unavailable)',
      labelNames: [...labelNames, 'outcome'],
      registers: [registry],
    });
    this.retries = new Counter({
      name: 'hearth_event_source_retries_total',
      help: 'Batches sent again after a failure',
      labelNames,
      registers: [registry],
    });
    this.failures = new Counter({
      name: 'hearth_event_source_failed_records_total',
      help: 'Records given up on (retries or age ran out) and sent to the failure path',
      labelNames,
      registers: [registry],
    });
    this.duplicates = new Counter({
      name: 'hearth_event_source_redelivered_records_total',
      help: 'Records delivered again after a reader stopped before acknowledging them',
      labelNames,
      registers: [registry],
    });
    this.lagSeconds = new Gauge({
      name: 'hearth_event_source_lag_seconds',
      help: 'Age of the oldest record not yet processed',
      labelNames,
      registers: [registry],
    });
    this.invocations = new Counter({
      name: 'hearth_event_source_invocations_total',
      help: 'Push invocations by schedules, by outcome',
      labelNames: [...labelNames, 'outcome'],
      registers: [registry],
    });
  }

  /** Drops a removed mapping's series so that /metrics does not keep stale ones. */
  async forget(mapping: string): Promise<void> {
    for (const metric of [
      this.recordsRead,
      this.batches,
      this.retries,
      this.failures,
      this.duplicates,
      this.lagSeconds,
      this.invocations,
    ] as Array<Counter<string> | Gauge<string>>) {
      // remove() matches whole label sets only, so find this mapping's ones first.
      for (const { labels } of (await metric.get()).values) {
        if (labels.mapping === mapping) metric.remove(labels as Record<string, string>);
      }
    }
  }
}
