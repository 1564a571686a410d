import type { HttpSource } from '@hearth/api';

/**
 * API Gateway HTTP API payload format 2.0, the event Lambda function URLs send too: what
 * handlers written for them (and web frameworks wrapped for Lambda) expect to receive.
 */
export interface HttpApiEvent {
  version: '2.0';
  routeKey: string;
  rawPath: string;
  rawQueryString: string;
  cookies?: string[];
  headers: Record<string, string>;
  queryStringParameters?: Record<string, string>;
  pathParameters?: Record<string, string>;
  requestContext: {
    accountId: string;
    apiId: string;
    domainName: string;
    domainPrefix: string;
    http: { method: string; path: string; protocol: string; sourceIp: string; userAgent: string };
    requestId: string;
    routeKey: string;
    stage: '$default';
    time: string;
    timeEpoch: number;
  };
  body?: string;
  isBase64Encoded: boolean;
}

/** One HTTP request as it arrived, before any decoding. */
export interface HttpRequestParts {
  method: string;
  /** The path as sent (percent-encoded), without the query. */
  rawPath: string;
  /** The query as sent, without `?`. */
  rawQueryString: string;
  /** Node's `rawHeaders`: name, value, name, value... in arrival order, names as sent. */
  rawHeaders: string[];
  body: Buffer;
  /** e.g. HTTP/1.1 */
  protocol: string;
  sourceIp: string;
  requestId: string;
  receivedAt: Date;
}

export interface RouteContext {
  http: HttpSource;
  /** The mapping's name: the event's apiId, as a function URL's id is. */
  mappingName: string;
  accountId: string;
  /** Request headers the gateway consumed itself and keeps from the function (its credentials). */
  dropHeaders?: readonly string[];
}

/** `ANY /shop/{proxy+}`, or API Gateway's catch-all `$default` for a route at `/`. */
export function routeKeyOf(http: Pick<HttpSource, 'method' | 'pathPrefix'>): string {
  const prefix = trimTrailingSlash(http.pathPrefix);
  return prefix === '' ? '$default' : `${http.method} ${prefix}/{proxy+}`;
}

/** Builds the payload 2.0 event for a request that matched an HTTP route. */
export function toHttpApiEvent(request: HttpRequestParts, route: RouteContext): HttpApiEvent {
  const dropped = new Set(['cookie', ...(route.dropHeaders ?? [])]);
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i]!.toLowerCase();
    const value = request.rawHeaders[i + 1]!;
    if (name === 'cookie') {
      cookies.push(
        ...value
          .split(';')
          .map((c) => c.trim())
          .filter(Boolean),
      );
    }
    if (dropped.has(name)) continue;
    headers[name] = name in headers ? `${headers[name]},${value}` : value;
  }

  const queryStringParameters: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(request.rawQueryString)) {
    queryStringParameters[key] =
      key in queryStringParameters ? `${queryStringParameters[key]},${value}` : value;
  }

  const routeKey = routeKeyOf(route.http);
  const proxy = proxyOf(request.rawPath, route.http.pathPrefix);
  const domainName = headers.host ?? 'localhost';
  const text = isTextContentType(headers['content-type']);

  const event: HttpApiEvent = {
    version: '2.0',
    routeKey,
    rawPath: request.rawPath,
    rawQueryString: request.rawQueryString,
    ...(cookies.length > 0 ? { cookies } : {}),
    headers,
    ...(Object.keys(queryStringParameters).length > 0 ? { queryStringParameters } : {}),
    ...(routeKey !== '$default' && proxy ? { pathParameters: { proxy } } : {}),
    requestContext: {
      accountId: route.accountId,
      apiId: route.mappingName,
      domainName,
      domainPrefix: domainName.split('.')[0]!.split(':')[0]!,
      http: {
        method: request.method,
        path: request.rawPath,
        protocol: request.protocol,
        sourceIp: request.sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: request.requestId,
      routeKey,
      stage: '$default',
      time: clfTime(request.receivedAt),
      timeEpoch: request.receivedAt.getTime(),
    },
    isBase64Encoded: false,
  };
  if (request.body.length > 0) {
    event.body = text ? request.body.toString('utf8') : request.body.toString('base64');
    event.isBase64Encoded = !text;
  }
  return event;
}

/** Bodies of these types go to the function as text; any other body (or an untyped one) as base64. */
export function isTextContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return (
    type.startsWith('text/') ||
    type === 'application/json' ||
    type.endsWith('+json') ||
    type === 'application/xml' ||
    type.endsWith('+xml') ||
    type === 'application/javascript' ||
    type === 'application/x-www-form-urlencoded' ||
    type === 'application/graphql'
  );
}

/** The part of the path below the route's prefix, decoded: `{proxy+}`. */
function proxyOf(rawPath: string, pathPrefix: string): string {
  const rest = rawPath.slice(trimTrailingSlash(pathPrefix).length).replace(/^\//, '');
  try {
    return decodeURIComponent(rest);
  } catch {
    return rest;
  }
}

function trimTrailingSlash(path: string): string {
  return path.replace(/\/+$/, '');
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** API Gateway's request time: `12/Mar/2020:19:03:58 +0000`. */
function clfTime(date: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    `${two(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:` +
    `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} +0000`
  );
}
