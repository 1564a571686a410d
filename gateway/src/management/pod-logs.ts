import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  Observable,
  type ConfigurationOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { API_GROUP, API_VERSION } from '@hearth/api';
import { GatewayError } from '../core/errors.js';
import type { FunctionLogLine, FunctionLogPage, FunctionLogSource, LogReadOptions } from './function-logs.js';

/** The label the controller puts on every pod of a Function (controller/src/kube-objects.ts). */
const FUNCTION_LABEL = 'hearth.dev/function';
/** The pod's container that runs the shim and the function. */
const FUNCTION_CONTAINER = 'function';
/** At most this much of one pod's log per follow-up read, so a chatty pod cannot stall the gateway. */
const FOLLOW_READ_BYTES = 8 * 1024 * 1024;
/** Pods read at the same time. */
const PARALLEL_READS = 8;

/** One pod's `function` container log, as read with `timestamps=true`. */
export interface PodLog {
  pod: string;
  text: string;
}

/**
 * Where a line is in the merged output: its time in nanoseconds (the container runtime's
 * timestamp), its pod, and its rank among that pod's lines of the very same time (a runtime may
 * stamp several lines read at once alike).
 */
interface Position {
  nanos: bigint;
  pod: string;
  rank: number;
}

/** A line as the API server gives it with timestamps=true: `<RFC3339Nano> <line>`. */
const TIMESTAMPED = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})(?: (.*))?$/s;

function compare(a: Position, b: Position): number {
  if (a.nanos !== b.nanos) return a.nanos < b.nanos ? -1 : 1;
  if (a.pod !== b.pod) return a.pod < b.pod ? -1 : 1;
  return a.rank - b.rank;
}

/** A line's id, and so the follow token: `<nanoseconds since the epoch>/<pod>/<rank>`. */
function idOf(position: Position): string {
  return `${position.nanos}/${position.pod}/${position.rank}`;
}

/** The position a follow token names; InvalidParameterValueException for anything else. */
export function parseLogToken(token: string): Position {
  const match = /^(\d{1,25})\/([a-z0-9][-a-z0-9.]*)\/(\d{1,9})$/.exec(token);
  if (!match)
    throw new GatewayError(
      'InvalidParameterValueException',
      `after must be the nextToken of an earlier logs answer; got ${token}`,
    );
  return { nanos: BigInt(match[1]!), pod: match[2]!, rank: Number(match[3]) };
}

/**
 * Where a follow-up read starts: the token's whole second, which the API server's sinceTime
 * takes; the lines of that second already sent are dropped by their position.
 */
export function sinceTimeOf(token: Position): string {
  return new Date(Number(token.nanos / 1_000_000_000n) * 1000).toISOString().replace('.000Z', 'Z');
}

/**
 * The lines of several pods' logs in one order, by time (then pod, then rank): without `after`
 * the last `limit` of them, with it up to `limit` of those after it, oldest first. A line without
 * a timestamp (there is none with timestamps=true) is left out.
 */
export function mergePodLogs(logs: PodLog[], options: { after?: string; limit: number }): FunctionLogPage {
  const after = options.after === undefined ? undefined : parseLogToken(options.after);
  const lines: { position: Position; line: FunctionLogLine }[] = [];
  for (const { pod, text } of logs) {
    const ranks = new Map<bigint, number>();
    for (const raw of text.split('\n')) {
      const match = TIMESTAMPED.exec(raw);
      if (!match) continue;
      const [, seconds, fraction = '', zone, line = ''] = match;
      const epochMs = Date.parse(`${seconds}${zone}`);
      if (Number.isNaN(epochMs)) continue;
      const nanos = BigInt(epochMs) * 1_000_000n + BigInt(fraction.padEnd(9, '0'));
      const rank = ranks.get(nanos) ?? 0;
      ranks.set(nanos, rank + 1);
      const position = { nanos, pod, rank };
      lines.push({
        position,
        line: { id: idOf(position), time: Number(nanos / 1_000_000n), instance: pod, line },
      });
    }
  }
  lines.sort((a, b) => compare(a.position, b.position));
  const page = after
    ? lines.filter(({ position }) => compare(position, after) > 0).slice(0, options.limit)
    : lines.slice(-options.limit);
  const last = page.at(-1)?.line.id ?? options.after;
  return { lines: page.map(({ line }) => line), ...(last ? { nextToken: last } : {}) };
}

/**
 * Kubernetes: a function's output is its pods' `function` container logs, read through the API
 * server and merged by time. A Function outside the default namespace goes by `name.namespace`,
 * as at Invoke.
 */
export class KubernetesFunctionLogs implements FunctionLogSource {
  private readonly core: CoreV1Api;
  private readonly functions: CustomObjectsApi;

  constructor(
    private readonly defaultNamespace: string,
    kubeConfig?: KubeConfig,
  ) {
    const kc = kubeConfig ?? new KubeConfig();
    if (!kubeConfig) kc.loadFromDefault();
    this.core = kc.makeApiClient(CoreV1Api);
    this.functions = kc.makeApiClient(CustomObjectsApi);
  }

  async read(registryName: string, options: LogReadOptions): Promise<FunctionLogPage | undefined> {
    const dot = registryName.indexOf('.');
    const name = dot < 0 ? registryName : registryName.slice(0, dot);
    const namespace = dot < 0 ? this.defaultNamespace : registryName.slice(dot + 1);
    const after = options.after === undefined ? undefined : parseLogToken(options.after);
    if (!(await this.exists(name, namespace))) return undefined;
    const pods = await this.call(namespace, () =>
      this.core.listNamespacedPod({ namespace, labelSelector: `${FUNCTION_LABEL}=${name}` }),
    );
    const started = pods.items.filter(hasStarted).map((pod) => pod.metadata!.name!);
    const logs: PodLog[] = [];
    for (let i = 0; i < started.length; i += PARALLEL_READS) {
      const batch = started.slice(i, i + PARALLEL_READS);
      const texts = await Promise.all(
        batch.map((pod) =>
          this.readPod(
            namespace,
            pod,
            after ? { sinceTime: sinceTimeOf(after) } : { tailLines: options.limit },
          ),
        ),
      );
      batch.forEach((pod, j) => {
        if (texts[j] !== undefined) logs.push({ pod, text: texts[j] });
      });
    }
    return mergePodLogs(logs, options);
  }

  private async exists(name: string, namespace: string): Promise<boolean> {
    try {
      await this.call(namespace, () =>
        this.functions.getNamespacedCustomObject({
          group: API_GROUP,
          version: API_VERSION,
          plural: 'functions',
          namespace,
          name,
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return false;
      throw error;
    }
  }

  /** One pod's log; undefined when the pod went or its container has not started (yet). */
  private async readPod(
    namespace: string,
    pod: string,
    from: { sinceTime: string } | { tailLines: number },
  ): Promise<string | undefined> {
    const request = { name: pod, namespace, container: FUNCTION_CONTAINER, timestamps: true };
    try {
      if ('tailLines' in from)
        return await this.core.readNamespacedPodLog({ ...request, tailLines: from.tailLines });
      const text = await this.core.readNamespacedPodLog(
        { ...request, limitBytes: FOLLOW_READ_BYTES },
        withQueryParam('sinceTime', from.sinceTime),
      );
      // A read cut at limitBytes may end mid-line: that line comes whole with the next read.
      return text.endsWith('\n') ? text : text.slice(0, text.lastIndexOf('\n') + 1);
    } catch (error) {
      if (error instanceof ApiException && (error.code === 400 || error.code === 404)) return undefined;
      throw this.denied(error, namespace);
    }
  }

  private async call<T>(namespace: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw this.denied(error, namespace);
    }
  }

  /** A 403 means the gateway's service account lacks the RBAC: say which, for the operator. */
  private denied(error: unknown, namespace: string): unknown {
    if (error instanceof ApiException && error.code === 403) {
      return new GatewayError(
        'ServiceException',
        `The gateway may not read function pods' logs in namespace ${namespace}: its service account needs get/list on pods and get on pods/log there (the chart grants them in functions.namespaces).`,
      );
    }
    return error;
  }
}

/**
 * Request options adding a query parameter the generated client does not know: its OpenAPI
 * document lacks readNamespacedPodLog's sinceTime, which the API server takes.
 */
function withQueryParam(name: string, value: string): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (context) => {
          context.setQueryParam(name, value);
          return new Observable(Promise.resolve(context));
        },
        post: (response) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/** Whether a pod's function container has run at all, so that it has a log to read. */
function hasStarted(pod: V1Pod): boolean {
  const status = pod.status?.containerStatuses?.find((c) => c.name === FUNCTION_CONTAINER);
  return !!status && !!(status.state?.running || status.state?.terminated || status.lastState?.terminated);
}
