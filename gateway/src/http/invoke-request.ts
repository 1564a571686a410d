import { Limits, functionArn } from '@hearth/api';
import { GatewayError } from '../core/errors.js';

export type InvocationType = 'RequestResponse' | 'Event' | 'DryRun';

export interface FunctionReference {
  name: string;
  qualifier?: string;
}

/**
 * A Lambda name; on Kubernetes also `name.namespace` for a Function outside the default namespace.
 * Shared with the dead-letter API, so a name Invoke accepts always has its dead letters readable.
 */
export const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$/;
const QUALIFIER = /^(\$LATEST|[a-zA-Z0-9_-]{1,128})$/;
// arn:aws:lambda:region:account:function:name[:qualifier], or its partial forms
// account:function:name[:qualifier] and function:name[:qualifier].
const ARN = /^(?:arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]*:)?(?:\d{12}:)?function:([^:]+)(?::([^:]+))?$/;

/**
 * Reads the FunctionName path segment (already percent-decoded) and the `Qualifier` query
 * parameter the way Lambda does: a name, `name:qualifier`, a full or a partial ARN.
 */
export function parseFunctionReference(
  segment: string,
  qualifierParam: string | undefined,
): FunctionReference {
  const invalid = (why: string) => new GatewayError('InvalidParameterValueException', why);
  let name: string;
  let qualifier: string | undefined;
  const arn = ARN.exec(segment);
  if (arn) {
    name = arn[1]!;
    qualifier = arn[2];
  } else {
    const parts = segment.split(':');
    if (parts.length > 2) throw invalid(`Invalid function name or ARN: ${segment}`);
    name = parts[0]!;
    qualifier = parts[1];
  }
  if (!FUNCTION_NAME.test(name)) {
    throw invalid(
      `1 validation error detected: Value '${segment}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern`,
    );
  }
  if (qualifierParam !== undefined && qualifierParam !== '') {
    if (qualifier !== undefined && qualifier !== qualifierParam) {
      throw invalid('The derived qualifier from the function name does not match the specified qualifier.');
    }
    qualifier = qualifierParam;
  }
  if (qualifier !== undefined && !QUALIFIER.test(qualifier)) {
    throw invalid(`Invalid qualifier: ${qualifier}`);
  }
  return qualifier === undefined ? { name } : { name, qualifier };
}

/** Lambda's "Function not found: <arn>" error for a reference. */
export function functionNotFound(
  reference: FunctionReference,
  region: string,
  account: string,
): GatewayError {
  return new GatewayError(
    'ResourceNotFoundException',
    `Function not found: ${functionArn(reference.name, region, account, reference.qualifier)}`,
  );
}

export function parseInvocationType(header: string | undefined): InvocationType {
  if (header === undefined || header === '') return 'RequestResponse';
  if (header === 'RequestResponse' || header === 'Event' || header === 'DryRun') return header;
  throw new GatewayError(
    'InvalidParameterValueException',
    `1 validation error detected: Value '${header}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]`,
  );
}

/** True when the caller asked for the log tail (`X-Amz-Log-Type: Tail`). */
export function parseLogType(header: string | undefined): boolean {
  if (header === undefined || header === '' || header === 'None') return false;
  if (header === 'Tail') return true;
  throw new GatewayError(
    'InvalidParameterValueException',
    `1 validation error detected: Value '${header}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [Tail, None]`,
  );
}

/** Checks `X-Amz-Client-Context`: base64 of a JSON object, at most 3583 bytes as sent. */
export function validateClientContext(header: string | undefined): string | undefined {
  if (header === undefined || header === '') return undefined;
  if (Buffer.byteLength(header) > Limits.clientContextBytes) {
    throw new GatewayError(
      'InvalidParameterValueException',
      `Client context must be at most ${Limits.clientContextBytes} bytes.`,
    );
  }
  let parsed: unknown;
  try {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(header)) throw new Error('not base64');
    parsed = JSON.parse(Buffer.from(header, 'base64').toString('utf8'));
  } catch {
    throw new GatewayError(
      'InvalidParameterValueException',
      'Client context must be a valid Base64-encoded JSON object.',
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new GatewayError(
      'InvalidParameterValueException',
      'Client context must be a valid Base64-encoded JSON object.',
    );
  }
  return header;
}

/** The payload limit for an invocation type: 6 MB sync, 1 MB Event. */
export function payloadLimit(
  type: InvocationType,
  limits: { syncPayloadBytes: number; asyncPayloadBytes: number },
): number {
  return type === 'Event' ? limits.asyncPayloadBytes : limits.syncPayloadBytes;
}

export function requestTooLarge(type: InvocationType, limit: number): GatewayError {
  const operation = type === 'Event' ? 'InvokeAsync' : 'InvokeFunction';
  return new GatewayError(
    'RequestTooLargeException',
    `Request must be smaller than ${limit} bytes for the ${operation} operation`,
  );
}

/**
 * The event bytes to hand to the function: the body when it is JSON, `{}` when it is empty (as
 * Lambda does for an invoke without a payload); anything else is the caller's mistake.
 */
export function eventPayload(body: Buffer): Buffer {
  if (body.length === 0) return Buffer.from('{}');
  try {
    JSON.parse(body.toString('utf8'));
  } catch (error) {
    const detail = error instanceof Error ? error.message : 'invalid JSON';
    throw new GatewayError(
      'InvalidRequestContentException',
      `Could not parse request body into json: ${detail}`,
    );
  }
  return body;
}
