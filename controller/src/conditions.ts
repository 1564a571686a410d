import type { Condition, FunctionStatus } from '@hearth/api';

export type ConditionInput = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

/**
 * Sets a condition, keeping its lastTransitionTime unless its status changed (what kubectl and
 * every controller reading conditions expect).
 */
export function setCondition(
  conditions: Condition[],
  next: ConditionInput,
  generation: number | undefined,
  now: string,
): Condition[] {
  const previous = conditions.find((c) => c.type === next.type);
  const condition: Condition = {
    ...next,
    lastTransitionTime: previous && previous.status === next.status ? previous.lastTransitionTime : now,
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  if (condition.message === undefined) delete condition.message;
  return [...conditions.filter((c) => c.type !== next.type), condition].sort((a, b) =>
    a.type.localeCompare(b.type),
  );
}

export interface PoolObservation {
  revision: string;
  desired: number;
  ready: number;
  busy: number;
  /** The Deployments of older revisions still present (draining). */
  oldRevisions: number;
}

/** The whole status for a Function whose code is in place. */
export function poolStatus(
  previous: FunctionStatus | undefined,
  generation: number | undefined,
  pool: PoolObservation,
  now: string,
  url?: string,
): FunctionStatus {
  let conditions = previous?.conditions ?? [];
  conditions = setCondition(
    conditions,
    { type: 'CodeReady', status: 'True', reason: 'CodeAvailable', message: `revision ${pool.revision}` },
    generation,
    now,
  );
  const poolReady = pool.ready >= pool.desired;
  conditions = setCondition(
    conditions,
    {
      type: 'PoolReady',
      status: poolReady ? 'True' : 'False',
      reason: poolReady ? (pool.desired === 0 ? 'ScaledToZero' : 'InstancesReady') : 'Scaling',
      message: `${pool.ready}/${pool.desired} instances ready${pool.oldRevisions ? `, ${pool.oldRevisions} old revision(s) draining` : ''}`,
    },
    generation,
    now,
  );
  conditions = setCondition(
    conditions,
    poolReady
      ? { type: 'Ready', status: 'True', reason: 'Ready', message: `serving revision ${pool.revision}` }
      : {
          type: 'Ready',
          status: 'False',
          reason: 'PoolNotReady',
          message: `${pool.ready}/${pool.desired} instances ready`,
        },
    generation,
    now,
  );
  return {
    observedGeneration: generation,
    revision: pool.revision,
    conditions,
    instances: { desired: pool.desired, ready: pool.ready, busy: pool.busy },
    ...(url ? { url } : {}),
  };
}

/** The status of a Function that cannot run: a terminal problem, recorded until the spec changes. */
export function failedStatus(
  previous: FunctionStatus | undefined,
  generation: number | undefined,
  failure: { condition: 'CodeReady' | 'Ready'; reason: string; message: string },
  revision: string | undefined,
  now: string,
): FunctionStatus {
  let conditions = previous?.conditions ?? [];
  if (failure.condition === 'CodeReady') {
    conditions = setCondition(
      conditions,
      { type: 'CodeReady', status: 'False', reason: failure.reason, message: failure.message },
      generation,
      now,
    );
  }
  conditions = setCondition(
    conditions,
    { type: 'Ready', status: 'False', reason: failure.reason, message: failure.message },
    generation,
    now,
  );
  return { ...previous, observedGeneration: generation, ...(revision ? { revision } : {}), conditions };
}
