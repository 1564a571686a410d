import type { GatewayError } from '../core/errors.js';

/** What an HTTP route answers: the status, the headers (a name may repeat) and the body bytes. */
export interface HttpAnswer {
  statusCode: number;
  headers: [string, string][];
  body: Buffer;
}

/** Headers of the connection, not of the answer: Node writes its own. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade']);

const json = (statusCode: number, message: string, extra: [string, string][] = []): HttpAnswer => ({
  statusCode,
  headers: [['content-type', 'application/json'], ...extra],
  body: Buffer.from(JSON.stringify({ message })),
});

/** What API Gateway answers when the function fails or its answer cannot be read. */
export const INTERNAL_SERVER_ERROR = json(500, 'Internal Server Error');

/**
 * The function's result as an HTTP answer, by payload format 2.0's rules: an object with a
 * `statusCode` describes the answer itself (headers, multiValueHeaders, cookies as Set-Cookie,
 * body, base64 when isBase64Encoded); any other JSON value is a 200 application/json whose body
 * is that value (a string as it is, anything else as JSON).
 */
export function answerFromResult(payload: Buffer): HttpAnswer {
  let result: unknown;
  try {
    result = JSON.parse(payload.toString('utf8'));
  } catch {
    return INTERNAL_SERVER_ERROR;
  }
  if (typeof result === 'object' && result !== null && !Array.isArray(result) && 'statusCode' in result) {
    return describedAnswer(result as Record<string, unknown>) ?? INTERNAL_SERVER_ERROR;
  }
  return {
    statusCode: 200,
    headers: [['content-type', 'application/json']],
    body: typeof result === 'string' ? Buffer.from(result) : payload,
  };
}

function describedAnswer(result: Record<string, unknown>): HttpAnswer | undefined {
  const statusCode = Number(result.statusCode);
  if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 599) return undefined;
  const headers: [string, string][] = [];
  const seen = new Set<string>();
  const add = (name: string, value: unknown) => {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || value === undefined || value === null) return;
    headers.push([lower, String(value)]);
    seen.add(lower);
  };
  if (isRecord(result.headers)) for (const [name, value] of Object.entries(result.headers)) add(name, value);
  if (isRecord(result.multiValueHeaders)) {
    for (const [name, values] of Object.entries(result.multiValueHeaders)) {
      // A header given both ways is taken from `headers`, as API Gateway does.
      if (seen.has(name.toLowerCase()) || !Array.isArray(values)) continue;
      for (const value of values) add(name, value);
    }
  }
  if (Array.isArray(result.cookies)) for (const cookie of result.cookies) add('set-cookie', cookie);

  let body: Buffer;
  if (result.body === undefined || result.body === null) body = Buffer.alloc(0);
  else if (typeof result.body === 'string')
    body = Buffer.from(result.body, result.isBase64Encoded === true ? 'base64' : 'utf8');
  else body = Buffer.from(JSON.stringify(result.body));
  return { statusCode, headers, body };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A call the gateway could not complete, in API Gateway's words rather than Lambda's (the caller
 * is a web client): 429 for a throttle (as function URLs answer, so clients back off; API Gateway
 * itself turns a Lambda throttle into a 500), 401/403 for authentication, 413 for a body over
 * the limit, 503 while the function cannot take calls (unknown, not Active, no instance ready in
 * time), 500 otherwise.
 */
export function answerFromError(error: GatewayError): HttpAnswer {
  switch (error.code) {
    case 'TooManyRequestsException':
      return json(429, 'Too Many Requests', [['retry-after', String(error.retryAfterSeconds ?? 1)]]);
    case 'AccessDeniedException':
      return json(401, 'Unauthorized', [['www-authenticate', 'Bearer']]);
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
      return json(403, 'Forbidden');
    case 'RequestTooLargeException':
      return json(413, `Request Entity Too Large: ${error.message}`);
    case 'ResourceNotFoundException':
    case 'ResourceConflictException':
    case 'ResourceNotReadyException':
      return json(503, 'Service Unavailable');
    default:
      return INTERNAL_SERVER_ERROR;
  }
}
