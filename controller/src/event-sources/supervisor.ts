import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import {
  eventSourceKind,
  validateEventSourceMappingSpec,
  type EventSourceMappingSpec,
  type EventSourceMappingStatus,
  type PushMapping,
  type SpecProblem,
} from '@hearth/api';
import { canonicalJson } from '../revision.js';
import { scheduleProblem } from './schedule.js';
import type { MappingContext, MappingRunner } from './types.js';

/**
 * The event source supervisor: level-triggered, it turns the mappings that should exist into
 * running ones. Each reconcile is given every mapping (from manifests or the informer's cache);
 * it starts what is new, stops what is gone, and restarts what changed. The decisions are pure
 * functions below; the class only carries them out.
 */

/** A mapping as the backend read it: a valid spec, or the problems that keep it from running. */
export interface DesiredMapping {
  /** `namespace/name`. */
  id: string;
  name: string;
  namespace: string;
  /** The resource's uid (Kubernetes) or a stable hash of its id (process mode). */
  uid: string;
  generation?: number;
  spec?: EventSourceMappingSpec;
  problems?: SpecProblem[];
  /** False when the function it invokes does not exist (yet): it still runs, status says so. */
  functionExists: boolean;
}

/** Validates a mapping's spec as the controller runs it: the schema, then what schedules accept. */
export function checkMappingSpec(
  input: unknown,
): { spec: EventSourceMappingSpec; problems: [] } | { spec?: undefined; problems: SpecProblem[] } {
  const result = validateEventSourceMappingSpec(input);
  if (!result.spec) return result;
  const schedule = result.spec.source.schedule;
  const problem = schedule && scheduleProblem(schedule);
  return problem ? { problems: [problem] } : result;
}

/** A stable uid for a mapping that has none (process mode), shaped as Lambda's mapping UUIDs. */
export function stableUid(id: string): string {
  const hex = createHash('sha256').update(id).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** What a running mapping depends on: a change of any of it means a restart. */
export function mappingHash(mapping: DesiredMapping): string {
  return createHash('sha256')
    .update(canonicalJson({ uid: mapping.uid, spec: mapping.spec, problems: mapping.problems }))
    .digest('hex')
    .slice(0, 16);
}

export interface MappingPlan {
  /** Running (or failed, or disabled) mappings to stop: gone, or about to start afresh. */
  stop: string[];
  /** Mappings to start: new, or changed. */
  start: string[];
}

/** Which mappings to stop and start, from the hashes of those held and of those desired. */
export function planMappings(
  held: ReadonlyMap<string, string>,
  desired: ReadonlyMap<string, DesiredMapping>,
): MappingPlan {
  const stop: string[] = [];
  const start: string[] = [];
  for (const [id, hash] of held) {
    const wanted = desired.get(id);
    if (!wanted || mappingHash(wanted) !== hash) stop.push(id);
  }
  for (const [id, wanted] of desired) {
    if (held.get(id) !== mappingHash(wanted)) start.push(id);
  }
  return { stop, start };
}

/** Push mappings are served by the gateway; the controller only publishes them. */
export function isPushMapping(spec: EventSourceMappingSpec): boolean {
  const kind = eventSourceKind(spec);
  return kind === 'http' || kind === 'bucket';
}

/** The push mappings the gateways should serve, from every desired mapping. */
export function desiredPushMappings(desired: Iterable<DesiredMapping>): PushMapping[] {
  const out: PushMapping[] = [];
  for (const mapping of desired) {
    const spec = mapping.spec;
    if (!spec || !isPushMapping(spec)) continue;
    out.push({
      name: mapping.name,
      namespace: mapping.namespace,
      functionName: spec.functionName,
      enabled: spec.enabled,
      ...(spec.source.http ? { http: spec.source.http } : {}),
      ...(spec.source.bucket ? { bucket: spec.source.bucket } : {}),
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The reason status gives for a mapping that runs while its function is missing. */
export function missingFunctionReason(functionName: string): string {
  return `function ${functionName} does not exist; its invocations fail until it does`;
}

/** Delay before the n-th (from 1) attempt to start a mapping whose source could not be opened. */
export function startBackoffMs(failures: number, baseMs = 1000, maxMs = 60_000): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
}

/** Starts one mapping's runner (opens its source); throws when the source cannot be used. */
export type RunnerFactory = (ctx: MappingContext) => Promise<MappingRunner>;

/** Where mapping status goes: a Redis hash (process mode) or the resource's status subresource. */
export interface MappingStatusWriter {
  write(mapping: DesiredMapping, status: EventSourceMappingStatus): Promise<void>;
  /** Forgets every status but these mappings' (those deleted while no controller ran included). */
  prune(keep: ReadonlySet<string>): Promise<void>;
}

/** Publishes the push mappings for the gateways (`RedisKeys.pushMappings`). */
export interface PushMappingPublisher {
  /** Makes the published set exactly these. */
  sync(mappings: PushMapping[]): Promise<void>;
}

export interface SupervisorOptions {
  startRunner: RunnerFactory;
  /** Everything of a MappingContext that is the same for every mapping. */
  context: Omit<MappingContext, 'id' | 'name' | 'namespace' | 'uid' | 'spec' | 'reportStatus' | 'logger'>;
  statusWriter: MappingStatusWriter;
  pushPublisher: PushMappingPublisher;
  logger: Logger;
  /** How long status reports gather before they are written. */
  statusFlushMs?: number;
  startRetryBaseMs?: number;
  startRetryMaxMs?: number;
}

interface HeldMapping {
  desired: DesiredMapping;
  hash: string;
  runner?: MappingRunner;
  /** The start under way, so that a stop waits for it. */
  starting?: Promise<void>;
  retryTimer?: NodeJS.Timeout;
  failures: number;
  stopped: boolean;
  status: EventSourceMappingStatus;
  written?: string;
  flushTimer?: NodeJS.Timeout;
}

export class MappingSupervisor {
  private readonly held = new Map<string, HeldMapping>();
  /** Reconciles run one after another: each sees what the one before it left. */
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: SupervisorOptions) {}

  /** Makes the running mappings match `desired` (every mapping there is, keyed by namespace/name). */
  reconcile(desired: ReadonlyMap<string, DesiredMapping>): Promise<void> {
    const run = this.chain.then(() => this.reconcileNow(desired));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Stops every runner. Published push mappings and status stay: the next controller takes over. */
  async stop(): Promise<void> {
    this.closed = true;
    await this.chain;
    await Promise.all([...this.held.values()].map((held) => this.stopHeld(held)));
    await Promise.all([...this.held.values()].map((held) => this.flush(held)));
    this.held.clear();
  }

  private async reconcileNow(desired: ReadonlyMap<string, DesiredMapping>): Promise<void> {
    if (this.closed) return;
    const hashes = new Map([...this.held].map(([id, held]) => [id, held.hash]));
    const plan = planMappings(hashes, desired);
    /** A restarted mapping keeps what its status said (the last position, the last error). */
    const previous = new Map<string, EventSourceMappingStatus>();
    for (const id of plan.stop) {
      const held = this.held.get(id)!;
      this.held.delete(id);
      previous.set(id, held.status);
      await this.stopHeld(held);
      if (!desired.has(id)) {
        this.options.logger.info({ mapping: id }, 'removed event source mapping');
        await this.options.context.metrics.forget(held.desired.name);
      }
    }
    for (const id of plan.start) this.startHeld(desired.get(id)!, previous.get(id) ?? {});
    // What changes no runner: the function coming or going, a new generation of the same spec.
    for (const [id, wanted] of desired) {
      const held = this.held.get(id)!;
      held.desired = wanted;
      if (held.status.state === 'Enabled' || held.status.state === 'Creating') {
        this.report(held, { stateReason: this.runningReason(wanted) });
      } else {
        this.report(held, {});
      }
    }
    await this.options.pushPublisher.sync(desiredPushMappings(desired.values()));
    await this.options.statusWriter.prune(new Set(desired.keys()));
  }

  private runningReason(mapping: DesiredMapping): string | undefined {
    return mapping.functionExists || !mapping.spec
      ? undefined
      : missingFunctionReason(mapping.spec.functionName);
  }

  private startHeld(desired: DesiredMapping, status: EventSourceMappingStatus): void {
    const held: HeldMapping = { desired, hash: mappingHash(desired), failures: 0, stopped: false, status };
    this.held.set(desired.id, held);
    const { spec, problems } = desired;
    if (!spec) {
      const reason = (problems ?? []).map((p) => `${p.path} ${p.message}`).join('; ');
      this.options.logger.error({ mapping: desired.id }, `invalid event source mapping: ${reason}`);
      // Terminal: only a new spec helps, and a new spec is a new hash.
      this.report(held, { state: 'Failed', stateReason: reason });
      return;
    }
    if (!spec.enabled) {
      this.report(held, { state: 'Disabled', stateReason: undefined });
      return;
    }
    if (isPushMapping(spec)) {
      // The gateway serves it; publishing happens with the whole set at the end of the reconcile.
      this.report(held, { state: 'Enabled', stateReason: this.runningReason(desired) });
      return;
    }
    this.report(held, { state: 'Creating', stateReason: undefined });
    this.attemptStart(held);
  }

  private attemptStart(held: HeldMapping): void {
    const { desired } = held;
    const logger = this.options.logger.child({ mapping: desired.id });
    const ctx: MappingContext = {
      ...this.options.context,
      id: desired.id,
      name: desired.name,
      namespace: desired.namespace,
      uid: desired.uid,
      spec: desired.spec!,
      logger,
      reportStatus: (patch) => {
        if (!held.stopped) this.report(held, patch);
      },
    };
    held.starting = (async () => {
      try {
        const runner = await this.options.startRunner(ctx);
        if (held.stopped) {
          await runner.stop();
          return;
        }
        held.runner = runner;
        held.failures = 0;
        logger.info(
          { function: desired.spec!.functionName, kind: eventSourceKind(desired.spec!) },
          'started event source mapping',
        );
        this.report(held, { state: 'Enabled', stateReason: this.runningReason(held.desired) });
      } catch (error) {
        if (held.stopped) return;
        held.failures++;
        const delay = startBackoffMs(
          held.failures,
          this.options.startRetryBaseMs,
          this.options.startRetryMaxMs,
        );
        const message = (error as Error).message;
        logger.warn({ err: error, retryInMs: delay }, 'could not start event source mapping; will retry');
        this.report(held, {
          state: 'Failed',
          stateReason: `could not open the source: ${message}`,
          lastError: message,
        });
        held.retryTimer = setTimeout(() => {
          held.retryTimer = undefined;
          if (!held.stopped) this.attemptStart(held);
        }, delay);
      } finally {
        held.starting = undefined;
      }
    })();
  }

  private async stopHeld(held: HeldMapping): Promise<void> {
    held.stopped = true;
    clearTimeout(held.retryTimer);
    await held.starting;
    const runner = held.runner;
    held.runner = undefined;
    if (runner) {
      try {
        await runner.stop();
      } catch (error) {
        this.options.logger.warn(
          { err: error, mapping: held.desired.id },
          'event source mapping stopped with an error',
        );
      }
      this.options.logger.info({ mapping: held.desired.id }, 'stopped event source mapping');
    }
    clearTimeout(held.flushTimer);
  }

  /** Merges a status change; writes are gathered for a moment so a busy runner writes rarely. */
  private report(held: HeldMapping, patch: Partial<EventSourceMappingStatus>): void {
    const before = canonicalJson({ ...held.status, lastModified: undefined });
    const next = { ...held.status, ...patch, observedGeneration: held.desired.generation };
    if (canonicalJson({ ...next, lastModified: undefined }) !== before)
      next.lastModified = new Date().toISOString();
    held.status = next;
    if (held.flushTimer || held.stopped) return;
    held.flushTimer = setTimeout(() => {
      held.flushTimer = undefined;
      void this.flush(held);
    }, this.options.statusFlushMs ?? 200);
  }

  private async flush(held: HeldMapping): Promise<void> {
    const json = canonicalJson(held.status);
    if (json === held.written) return;
    try {
      await this.options.statusWriter.write(held.desired, held.status);
      held.written = json;
    } catch (error) {
      this.options.logger.warn(
        { err: error, mapping: held.desired.id },
        'could not write mapping status; will retry',
      );
      if (!held.flushTimer && !this.closed) {
        held.flushTimer = setTimeout(() => {
          held.flushTimer = undefined;
          void this.flush(held);
        }, 2000);
      }
    }
  }
}
