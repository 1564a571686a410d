import { FunctionErrorType, functionArn, type FunctionRoute } from '@hearth/api';
import type { Logger } from 'pino';
import type { Discovery } from '../core/discovery.js';
import { GatewayError } from '../core/errors.js';
import type { InvokeRequest, InvokeResult, Invoker } from '../core/invoker.js';
import { admissionScope, type AdmissionScope, type ConcurrencyLeases } from '../admission/concurrency.js';
import type { InstanceRouter } from '../routing/router.js';
import type { GatewayMetrics, InvocationOutcome } from '../metrics.js';
import { ShimCallError, type ShimClient } from './shim-client.js';

const KNOWN_FUNCTION_ERRORS = new Set<string>(Object.values(FunctionErrorType));

/** The `type` label of a failed invocation: platform error types as they are, the function's own errors as one value (their names are the user's, unbounded). */
export function errorTypeLabel(errorType: string | undefined): string {
  return errorType && KNOWN_FUNCTION_ERRORS.has(errorType) ? errorType : 'Function.Unhandled';
}

/** Whether a call may go to the function now: it must be Active and addressed at `$LATEST`. */
export function checkInvocable(
  route: FunctionRoute | undefined,
  request: Pick<InvokeRequest, 'functionName' | 'qualifier'>,
  region: string,
  account: string,
): FunctionRoute {
  if (!route || (request.qualifier !== undefined && request.qualifier !== '$LATEST')) {
    throw new GatewayError(
      'ResourceNotFoundException',
      `Function not found: ${functionArn(request.functionName, region, account, request.qualifier)}`,
    );
  }
  if (route.state !== 'Active') {
    throw new GatewayError(
      'ResourceConflictException',
      `The operation cannot be performed at this time. The function is currently in the following state: ${route.state}`,
    );
  }
  return route;
}

export interface LocalInvokerOptions {
  discovery: Discovery;
  router: InstanceRouter;
  leases: ConcurrencyLeases;
  shims: ShimClient;
  metrics: GatewayMetrics;
  logger: Logger;
  accountConcurrency: number;
  /** How long one call may look for an instance, over all its tries. */
  coldStartBudgetMs: number;
  region: string;
  accountId: string;
}

/**
 * The sync path: look up, admit (cluster-wide concurrency), lease an instance, call its shim.
 * The HTTP routes and the async workers share it.
 */
export class LocalInvoker implements Invoker {
  /** Per function: what every call of its current route needs, built once (reservations change the scope). */
  private readonly prepared = new Map<string, PreparedRoute>();
  private reservedTotal: number | undefined;

  constructor(private readonly options: LocalInvokerOptions) {
    options.discovery.onChange(() => {
      this.prepared.clear();
      this.reservedTotal = undefined;
    });
  }

  /** Looks the function up as an invocation would, without running it (DryRun, Event acceptance). */
  resolve(request: Pick<InvokeRequest, 'functionName' | 'qualifier'>): FunctionRoute {
    const { discovery, region, accountId } = this.options;
    return checkInvocable(discovery.getFunction(request.functionName), request, region, accountId);
  }

  async invoke(request: InvokeRequest, signal?: AbortSignal): Promise<InvokeResult> {
    const { metrics } = this.options;
    const mode = request.source === 'async' ? 'async' : 'sync';
    const started = performance.now();
    let route: FunctionRoute | undefined;
    try {
      route = this.resolve(request);
      const result = await this.admitAndRun(route, request, signal);
      const outcome: InvocationOutcome = result.functionError ? 'function_error' : 'success';
      metrics.invocations.inc({ function: route.name, mode, outcome });
      metrics.duration.observe({ function: route.name }, (performance.now() - started) / 1000);
      if (result.initDurationMs !== undefined)
        metrics.initDuration.observe({ function: route.name }, result.initDurationMs / 1000);
      if (result.functionError)
        metrics.errors.inc({ function: route.name, type: errorTypeLabel(result.errorType) });
      return result;
    } catch (error) {
      // Unknown names are not labels: anyone can make up unbounded numbers of them.
      const name = route?.name ?? '';
      if (error instanceof GatewayError && error.code === 'TooManyRequestsException') {
        metrics.invocations.inc({ function: name, mode, outcome: 'throttled' });
        metrics.throttles.inc({ function: name, reason: String(error.extra.Reason ?? 'Unknown') });
      } else {
        metrics.invocations.inc({ function: name, mode, outcome: 'error' });
        metrics.errors.inc({
          function: name,
          type: error instanceof GatewayError ? error.code : 'ServiceException',
        });
      }
      throw error;
    }
  }

  private async admitAndRun(
    route: FunctionRoute,
    request: InvokeRequest,
    signal?: AbortSignal,
  ): Promise<InvokeResult> {
    const { leases } = this.options;
    const prepared = this.prepare(route);
    const { scope } = prepared;
    const lease = leases.takeKept(scope) ?? (await leases.acquire(scope));
    if (!lease) {
      throw new GatewayError('TooManyRequestsException', 'Rate Exceeded.', { Reason: scope.reason }, 1);
    }
    try {
      return await this.run(prepared, request, signal);
    } finally {
      leases.release(lease);
    }
  }

  /** Runs the call on an instance; an instance that refuses it or cannot be reached is skipped for another. */
  private async run(
    { route, unqualifiedArn }: PreparedRoute,
    request: InvokeRequest,
    signal?: AbortSignal,
  ): Promise<InvokeResult> {
    const { router, shims, region, accountId, logger, coldStartBudgetMs } = this.options;
    const invokedFunctionArn =
      request.qualifier === undefined
        ? unqualifiedArn
        : functionArn(route.name, region, accountId, request.qualifier);
    const waitUntil = Date.now() + coldStartBudgetMs;
    for (;;) {
      const instance = await router.lease(route, signal, waitUntil);
      // The function's timeout starts once it has an instance: as on Lambda, waiting for a cold
      // start never eats into it.
      const deadlineMs = Date.now() + route.spec.timeoutSeconds * 1000;
      try {
        const answer = await shims.invoke(instance.endpoint.url, {
          requestId: request.requestId,
          payload: request.payload,
          deadlineMs,
          invokedFunctionArn,
          ...(request.clientContext ? { clientContext: request.clientContext } : {}),
          ...(request.logTail ? { logTail: true } : {}),
        });
        instance.release();
        const result: InvokeResult = {
          payload: answer.payload,
          executedVersion: '$LATEST',
          durationMs: answer.durationMs ?? 0,
        };
        if (answer.functionError) result.functionError = answer.functionError;
        if (answer.errorType) result.errorType = answer.errorType;
        if (answer.logResult) result.logResult = answer.logResult;
        if (answer.initDurationMs !== undefined) result.initDurationMs = answer.initDurationMs;
        return result;
      } catch (error) {
        const retryElsewhere = error instanceof ShimCallError && error.kind !== 'failed';
        instance.release(retryElsewhere);
        if (retryElsewhere) {
          logger.debug(
            { instance: instance.endpoint.id, reason: error.message },
            'instance did not take the call, trying another',
          );
          continue;
        }
        logger.warn(
          { instance: instance.endpoint.id, function: route.name, requestId: request.requestId, err: error },
          'invocation failed on its instance',
        );
        throw new GatewayError(
          'ServiceException',
          'The instance running the function failed during the invocation.',
        );
      }
    }
  }

  private prepare(route: FunctionRoute): PreparedRoute {
    const known = this.prepared.get(route.name);
    if (known?.route === route) return known;
    const { discovery, accountConcurrency, region, accountId } = this.options;
    this.reservedTotal ??= discovery
      .listFunctions()
      .reduce((sum, f) => sum + (f.spec.concurrency.reserved ?? 0), 0);
    const prepared: PreparedRoute = {
      route,
      scope: admissionScope(route, accountConcurrency, this.reservedTotal),
      unqualifiedArn: functionArn(route.name, region, accountId),
    };
    this.prepared.set(route.name, prepared);
    return prepared;
  }
}

interface PreparedRoute {
  route: FunctionRoute;
  scope: AdmissionScope;
  unqualifiedArn: string;
}
