import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Checksum, SourceData } from '@smithy/types';
import type { AccessKey } from '../config.js';
import { GatewayError } from '../core/errors.js';

/** A SigV4-signed request as it arrived, before any decoding of its path. */
export interface SignedRequest {
  method: string;
  /** The path exactly as sent (still percent-encoded). */
  rawPath: string;
  /** The query string without `?`, as sent. */
  rawQuery: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface ParsedAuthorization {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]+)\/([^/,\s]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;_.-]+),\s*Signature=([0-9a-f]{64})$/;
/** Signatures older or newer than this are refused, as AWS does. */
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;

export function parseAuthorization(header: string): ParsedAuthorization | undefined {
  const match = AUTHORIZATION.exec(header.trim());
  if (!match) return undefined;
  return {
    accessKeyId: match[1]!,
    date: match[2]!,
    region: match[3]!,
    service: match[4]!,
    signedHeaders: match[5]!.split(';'),
    signature: match[6]!,
  };
}

/** `20240102T030405Z` -> Date. */
export function parseAmzDate(value: string): Date | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s] = match.map(Number) as number[];
  return new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
}

/** node:crypto behind the hash interface the signer expects (the pure-JS one is slow on 6 MB bodies). */
class NodeSha256 implements Checksum {
  private hash: Hash | Hmac;
  constructor(private readonly secret?: SourceData) {
    this.hash = this.fresh();
  }
  private fresh(): Hash | Hmac {
    return this.secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(this.secret));
  }
  update(data: Uint8Array): void {
    this.hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

function toBuffer(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

function queryObject(rawQuery: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const [key, value] of new URLSearchParams(rawQuery)) {
    const existing = query[key];
    query[key] =
      existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  return query;
}

const SECURITY_TOKEN = 'x-amz-security-token';

const sha256 = (value: string) => createHash('sha256').update(value).digest();

/**
 * Temporary credentials (access key, secret and session token) sign with `X-Amz-Security-Token`;
 * a key configured with a token accepts only that token, signed, and a key without one accepts
 * none, as AWS does. Digests are compared so that the time taken says nothing about the token,
 * not even its length.
 */
function checkSessionToken(
  presented: string | string[] | undefined,
  key: AccessKey,
  signedHeaders: readonly string[],
): void {
  if (presented !== undefined && key.sessionToken === undefined) {
    throw new GatewayError(
      'UnrecognizedClientException',
      'The security token included in the request is invalid: this access key takes no session token.',
    );
  }
  if (key.sessionToken === undefined) return;
  if (typeof presented !== 'string') {
    throw new GatewayError(
      'UnrecognizedClientException',
      'The security token included in the request is invalid: this access key needs its session token (X-Amz-Security-Token).',
    );
  }
  if (!signedHeaders.includes(SECURITY_TOKEN)) {
    throw new GatewayError('InvalidSignatureException', 'The x-amz-security-token header must be signed.');
  }
  if (!timingSafeEqual(sha256(presented), sha256(key.sessionToken))) {
    throw new GatewayError(
      'UnrecognizedClientException',
      'The security token included in the request is invalid.',
    );
  }
}

/**
 * Verifies an AWS Signature Version 4 (service `lambda`) by recomputing it with the caller's
 * secret key, and the session token of temporary credentials. Returns the access key id; throws
 * 403s shaped as AWS answers them.
 */
export async function verifySigV4(
  request: SignedRequest,
  accessKeys: ReadonlyMap<string, AccessKey>,
  now: Date,
): Promise<string> {
  const header = request.headers.authorization;
  const authorization = typeof header === 'string' ? parseAuthorization(header) : undefined;
  if (!authorization) {
    throw new GatewayError(
      'InvalidSignatureException',
      'Authorization header requires a valid AWS4-HMAC-SHA256 Credential, SignedHeaders and Signature.',
    );
  }
  const key = accessKeys.get(authorization.accessKeyId);
  if (key === undefined) {
    throw new GatewayError(
      'UnrecognizedClientException',
      'The security token included in the request is invalid.',
    );
  }
  if (authorization.service !== 'lambda') {
    throw new GatewayError(
      'InvalidSignatureException',
      `Credential should be scoped to correct service: 'lambda'.`,
    );
  }
  const amzDate = request.headers['x-amz-date'];
  const signingDate = typeof amzDate === 'string' ? parseAmzDate(amzDate) : undefined;
  if (
    !signingDate ||
    !authorization.signedHeaders.includes('x-amz-date') ||
    amzDate!.slice(0, 8) !== authorization.date
  ) {
    throw new GatewayError(
      'InvalidSignatureException',
      'The request must carry a signed X-Amz-Date matching the credential scope.',
    );
  }
  if (Math.abs(now.getTime() - signingDate.getTime()) > MAX_CLOCK_SKEW_MS) {
    throw new GatewayError(
      'InvalidSignatureException',
      `Signature expired: ${amzDate} is now earlier or later than 15 minutes from the current time.`,
    );
  }
  if (!authorization.signedHeaders.includes('host')) {
    throw new GatewayError('InvalidSignatureException', 'The host header must be signed.');
  }
  checkSessionToken(request.headers[SECURITY_TOKEN], key, authorization.signedHeaders);

  const contentSha = request.headers['x-amz-content-sha256'];
  if (typeof contentSha === 'string' && contentSha !== 'UNSIGNED-PAYLOAD') {
    const actual = createHash('sha256').update(request.body).digest('hex');
    if (actual !== contentSha)
      throw new GatewayError(
        'InvalidSignatureException',
        'The provided x-amz-content-sha256 header does not match what was computed.',
      );
  }

  const headers: Record<string, string> = {};
  for (const name of authorization.signedHeaders) {
    const value = request.headers[name];
    if (value === undefined)
      throw new GatewayError(
        'InvalidSignatureException',
        `Signed header ${name} is missing from the request.`,
      );
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const signer = new SignatureV4({
    service: 'lambda',
    region: authorization.region,
    credentials: { accessKeyId: authorization.accessKeyId, secretAccessKey: key.secretAccessKey },
    sha256: NodeSha256,
    applyChecksum: false,
  });
  const hostHeader = headers.host ?? '';
  const signed = await signer.sign(
    {
      method: request.method,
      protocol: 'http:',
      hostname: hostHeader.replace(/:\d+$/, ''),
      path: request.rawPath,
      query: queryObject(request.rawQuery),
      headers,
      body: request.body,
    },
    {
      signingDate,
      signingRegion: authorization.region,
      signingService: 'lambda',
      signableHeaders: new Set(authorization.signedHeaders),
    },
  );
  const expected = parseAuthorization(String(signed.headers.authorization ?? ''));
  const matches =
    expected !== undefined &&
    expected.signedHeaders.join(';') === authorization.signedHeaders.join(';') &&
    timingSafeEqual(Buffer.from(expected.signature), Buffer.from(authorization.signature));
  if (!matches) {
    throw new GatewayError(
      'InvalidSignatureException',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    );
  }
  return authorization.accessKeyId;
}
