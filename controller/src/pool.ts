import type { DemandReport, FunctionSpec } from '@hearth/api';
import { DEMAND_REPORT_TTL_MS } from '@hearth/api';

/** What the autoscaler remembers about one function between decisions. */
export interface PoolState {
  /** The pool size decided last. */
  size: number;
  /** Since when (epoch ms) the wanted size has stayed below `size`; unset while it has not. */
  lowerSince?: number;
  /** The highest wanted size seen since `lowerSince`: where the pool goes when the window ends. */
  lowerPeak?: number;
}

/** In-flight plus waiting calls over all gateways whose reports are still fresh. */
export function totalDemand(reports: Iterable<DemandReport>, now: number): number {
  let total = 0;
  for (const report of reports) {
    if (now - report.at <= DEMAND_REPORT_TTL_MS)
      total += Math.max(0, report.inFlight) + Math.max(0, report.waiting);
  }
  return total;
}

/** The size demand alone asks for: `ceil(demand / perInstance)` within [minWarm, maxInstances]. */
export function wantedSize(demand: number, spec: Pick<FunctionSpec, 'concurrency' | 'scaling'>): number {
  const { minWarm, maxInstances } = spec.scaling;
  const raw = Math.ceil(demand / spec.concurrency.perInstance);
  return Math.min(maxInstances, Math.max(minWarm, raw));
}

/**
 * The next pool size. Up at once; down only after `idleSeconds` of lower demand (Lambda keeps an
 * idle environment around for reuse), and then to the peak of that window, so a function that
 * quietened from 10 to 3 goes to 3, and one with no calls and `minWarm` 0 goes to zero.
 */
export function nextPoolSize(
  previous: PoolState | undefined,
  demand: number,
  spec: Pick<FunctionSpec, 'concurrency' | 'scaling'>,
  now: number,
): PoolState {
  const wanted = wantedSize(demand, spec);
  const current = previous?.size ?? 0;
  if (wanted >= current) return { size: wanted };
  const lowerSince = previous?.lowerSince ?? now;
  const lowerPeak = Math.max(previous?.lowerPeak ?? wanted, wanted);
  if (now - lowerSince >= spec.scaling.idleSeconds * 1000) {
    // The window ended: settle at its peak; demand still below that starts a new window.
    return wanted < lowerPeak ? { size: lowerPeak, lowerSince: now, lowerPeak: wanted } : { size: lowerPeak };
  }
  return { size: current, lowerSince, lowerPeak };
}
