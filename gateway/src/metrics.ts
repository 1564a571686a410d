import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Seconds, from 1 ms to 15 minutes: no-op calls, cold starts and Lambda's longest timeout. */
const DURATION_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900,
];

export type InvocationMode = 'sync' | 'async' | 'dryrun';
export type InvocationOutcome = 'success' | 'function_error' | 'throttled' | 'error';

/**
 * The gateway's one metrics registry. The async side registers its own metrics (queue depth,
 * oldest age, retries, DLQ size) in `registry`, so one scrape shows both.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly invocations: Counter<'function' | 'mode' | 'outcome'>;
  readonly errors: Counter<'function' | 'type'>;
  readonly throttles: Counter<'function' | 'reason'>;
  readonly duration: Histogram<'function'>;
  readonly initDuration: Histogram<'function'>;
  readonly inFlight: Gauge<'function'>;
  readonly waiting: Gauge<'function'>;
  readonly instances: Gauge<'function' | 'state'>;

  constructor(sources: {
    load(): { name: string; inFlight: number; waiting: number }[];
    instanceCounts(): { name: string; leased: number; idle: number }[];
  }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'hearth_' });
    // prom-client names these gauges `_total`, which Prometheus reserves for counters (promtool
    // flags them); the same counts are in hearth_nodejs_active_{handles,requests,resources}.
    for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
      this.registry.removeSingleMetric(`hearth_nodejs_${name}`);
    }
    this.invocations = new Counter({
      name: 'hearth_invocations_total',
      help: 'Invocations by function, mode (sync, async worker, dryrun) and outcome',
      labelNames: ['function', 'mode', 'outcome'],
      registers,
    });
    this.errors = new Counter({
      name: 'hearth_invocation_errors_total',
      help: 'Failed invocations by error type (a Lambda service error code or a function error type)',
      labelNames: ['function', 'type'],
      registers,
    });
    this.throttles = new Counter({
      name: 'hearth_throttles_total',
      help: 'Calls refused with 429 by reason',
      labelNames: ['function', 'reason'],
      registers,
    });
    this.duration = new Histogram({
      name: 'hearth_invocation_duration_seconds',
      help: 'Time from admission to the answer of the instance, cold starts included',
      labelNames: ['function'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.initDuration = new Histogram({
      name: 'hearth_init_duration_seconds',
      help: 'Init duration of cold starts, as the instance reported it',
      labelNames: ['function'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.inFlight = new Gauge({
      name: 'hearth_inflight_invocations',
      help: 'Calls running on an instance, from this gateway',
      labelNames: ['function'],
      registers,
      collect() {
        this.reset();
        for (const load of sources.load()) this.set({ function: load.name }, load.inFlight);
      },
    });
    this.waiting = new Gauge({
      name: 'hearth_waiting_invocations',
      help: 'Calls held for an instance while the pool grows, in this gateway',
      labelNames: ['function'],
      registers,
      collect() {
        this.reset();
        for (const load of sources.load()) this.set({ function: load.name }, load.waiting);
      },
    });
    this.instances = new Gauge({
      name: 'hearth_instances',
      help: 'Instances of current revisions known to this gateway: leased (running a call from it) or idle',
      labelNames: ['function', 'state'],
      registers,
      collect() {
        this.reset();
        for (const count of sources.instanceCounts()) {
          this.set({ function: count.name, state: 'leased' }, count.leased);
          this.set({ function: count.name, state: 'idle' }, count.idle);
        }
      },
    });
  }
}
