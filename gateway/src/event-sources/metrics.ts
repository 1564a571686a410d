import { Counter, type Registry } from 'prom-client';

export type PushSource = 'http' | 'bucket';
/**
 * http: `success` (the function answered), `function_error`, `throttled`, `refused` (auth, body
 * too large), `error`; bucket: `queued` (stored for the function), `filtered` (did not match the
 * mapping's filters), `error` (could not be stored).
 */
export type DeliveryOutcome =
  'success' | 'function_error' | 'throttled' | 'refused' | 'error' | 'queued' | 'filtered';

/**
 * Deliveries of the gateway's push sources. Labels are bounded: mapping and function names are
 * declared resources, never taken from a request.
 */
export class PushSourceMetrics {
  readonly deliveries: Counter<'mapping' | 'function' | 'source' | 'outcome'>;

  constructor(registry: Registry) {
    this.deliveries = new Counter({
      name: 'hearth_event_source_deliveries_total',
      help: 'HTTP route requests and bucket notification events the gateway handed to functions, by outcome',
      labelNames: ['mapping', 'function', 'source', 'outcome'],
      registers: [registry],
    });
  }

  count(
    mapping: { name: string; functionName: string },
    source: PushSource,
    outcome: DeliveryOutcome,
    n = 1,
  ): void {
    if (n > 0)
      this.deliveries.inc({ mapping: mapping.name, function: mapping.functionName, source, outcome }, n);
  }
}
