import { functionArn } from '@hearth/api';
import type { DeadLetterCondition } from './policy.js';

/** An accepted async event as it is stored in its BullMQ job. */
export interface AsyncEvent {
  functionName: string;
  qualifier?: string;
  requestId: string;
  /** The event's JSON text, as the caller sent it. */
  payload: string;
  /** Epoch ms when the gateway accepted it (the 202). */
  acceptedAt: number;
  /** Invocations that ended in a function error. */
  functionErrors: number;
  /** Times it was throttled or hit a system error (not attempts). */
  requeues: number;
  /** Invocations made, whatever their result: Lambda's approximateInvokeCount. */
  invocations: number;
  /** The last thing that went wrong, for the dead letter and the failure destination. */
  lastError?: EventError;
}

export interface EventError {
  type: string;
  message: string;
  /** HTTP status of a throttle or system error; absent for a function error. */
  statusCode?: number;
  /** The function's error body (JSON text), when the function itself failed. */
  functionErrorBody?: string;
  executedVersion?: string;
}

/** One entry of a function's dead-letter stream. */
export interface DeadLetter {
  /** The stream entry id. */
  id: string;
  functionName: string;
  qualifier?: string;
  requestId: string;
  payload: string;
  condition: DeadLetterCondition;
  errorType: string;
  errorMessage: string;
  /** Invocations that ended in a function error. */
  attempts: number;
  invocations: number;
  acceptedAt: string;
  deadLetteredAt: string;
}

/** Lambda's destination record (version 1.0). */
export interface DestinationRecord {
  version: '1.0';
  timestamp: string;
  requestContext: {
    requestId: string;
    functionArn: string;
    condition: 'Success' | DeadLetterCondition;
    approximateInvokeCount: number;
  };
  requestPayload: unknown;
  responseContext: {
    statusCode: number;
    executedVersion: string;
    functionError?: string;
  };
  responsePayload: unknown;
}

export interface ArnSettings {
  region: string;
  account: string;
}

/** The record an onSuccess destination receives. */
export function successRecord(
  event: AsyncEvent,
  result: { payload: string; executedVersion: string },
  at: Date,
  arn: ArnSettings,
): DestinationRecord {
  return {
    version: '1.0',
    timestamp: at.toISOString(),
    requestContext: {
      requestId: event.requestId,
      functionArn: qualifiedArn(event, arn),
      condition: 'Success',
      approximateInvokeCount: event.invocations,
    },
    requestPayload: parseJsonOr(event.payload),
    responseContext: { statusCode: 200, executedVersion: result.executedVersion },
    responsePayload: parseJsonOr(result.payload),
  };
}

/** The record an onFailure destination receives for a discarded event. */
export function failureRecord(
  event: AsyncEvent,
  condition: DeadLetterCondition,
  at: Date,
  arn: ArnSettings,
): DestinationRecord {
  const error = event.lastError;
  const functionFailed = error?.functionErrorBody !== undefined;
  return {
    version: '1.0',
    timestamp: at.toISOString(),
    requestContext: {
      requestId: event.requestId,
      functionArn: qualifiedArn(event, arn),
      condition,
      approximateInvokeCount: event.invocations,
    },
    requestPayload: parseJsonOr(event.payload),
    responseContext: {
      // A function error still answered 200, as on Lambda; a throttle or system error keeps its status.
      statusCode: functionFailed ? 200 : (error?.statusCode ?? 500),
      executedVersion: error?.executedVersion ?? '$LATEST',
      ...(functionFailed ? { functionError: 'Unhandled' } : {}),
    },
    responsePayload: functionFailed
      ? parseJsonOr(error.functionErrorBody!)
      : error
        ? { errorType: error.type, errorMessage: error.message }
        : null,
  };
}

/** The stream fields of a dead letter (flat strings, readable with redis-cli). */
export function deadLetterFields(
  event: AsyncEvent,
  condition: DeadLetterCondition,
  at: Date,
): Record<string, string> {
  return {
    functionName: event.functionName,
    ...(event.qualifier ? { qualifier: event.qualifier } : {}),
    requestId: event.requestId,
    payload: event.payload,
    condition,
    errorType: event.lastError?.type ?? 'Unknown',
    errorMessage: event.lastError?.message ?? '',
    attempts: String(event.functionErrors),
    invocations: String(event.invocations),
    acceptedAt: new Date(event.acceptedAt).toISOString(),
    deadLetteredAt: at.toISOString(),
  };
}

/** Reads a stream entry (id and flat field list, as XRANGE returns it) back into a dead letter. */
export function parseDeadLetter(id: string, flat: string[]): DeadLetter {
  const fields = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i]!, flat[i + 1]!);
  const text = (name: string) => fields.get(name) ?? '';
  const qualifier = fields.get('qualifier');
  return {
    id,
    functionName: text('functionName'),
    ...(qualifier ? { qualifier } : {}),
    requestId: text('requestId'),
    payload: text('payload'),
    condition: text('condition') === 'EventAgeExceeded' ? 'EventAgeExceeded' : 'RetriesExhausted',
    errorType: text('errorType'),
    errorMessage: text('errorMessage'),
    attempts: Number(text('attempts')) || 0,
    invocations: Number(text('invocations')) || 0,
    acceptedAt: text('acceptedAt'),
    deadLetteredAt: text('deadLetteredAt'),
  };
}

function qualifiedArn(event: AsyncEvent, arn: ArnSettings): string {
  return functionArn(event.functionName, arn.region, arn.account, event.qualifier ?? '$LATEST');
}

// Payloads are JSON by the time they are queued, but a function may answer anything: keep
// non-JSON text as a string rather than dropping it.
function parseJsonOr(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
