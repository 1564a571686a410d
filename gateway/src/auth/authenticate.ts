import { timingSafeEqual } from 'node:crypto';
import type { AccessKey, AuthConfig } from '../config.js';
import { GatewayError } from '../core/errors.js';
import { parseAuthorization, verifySigV4, type SignedRequest } from './sigv4.js';

/** Who made a call: an API key (by its position, never the key itself) or an access key id. */
export type Principal =
  { kind: 'anonymous' } | { kind: 'apiKey'; index: number } | { kind: 'accessKey'; accessKeyId: string };

/**
 * Checks callers in two steps: `precheck` on the headers alone, before the body is read, so
 * that strangers cannot make the gateway buffer 6 MB; `verify` once the body is there, because
 * a SigV4 signature covers the payload hash.
 */
export class Authenticator {
  private readonly apiKeys: Buffer[];
  private readonly accessKeys: Map<string, AccessKey>;

  constructor(private readonly config: AuthConfig) {
    this.apiKeys = config.apiKeys.map((key) => Buffer.from(key));
    this.accessKeys = new Map(config.accessKeys.map((k) => [k.accessKeyId, k]));
  }

  get enabled(): boolean {
    return this.config.enabled;
  }

  /** Refuses calls that cannot be authentic whatever their body; returns a Bearer caller at once. */
  precheck(authorization: string | undefined): Principal | undefined {
    if (!this.config.enabled) return { kind: 'anonymous' };
    if (!authorization) {
      throw new GatewayError(
        'AccessDeniedException',
        'Missing Authentication Token: sign the request with SigV4 or send Authorization: Bearer <key>.',
      );
    }
    if (authorization.startsWith('Bearer ')) {
      const presented = Buffer.from(authorization.slice('Bearer '.length).trim());
      const index = this.apiKeys.findIndex(
        (key) => key.length === presented.length && timingSafeEqual(key, presented),
      );
      if (index < 0)
        throw new GatewayError(
          'UnrecognizedClientException',
          'The API key included in the request is invalid.',
        );
      return { kind: 'apiKey', index };
    }
    const parsed = parseAuthorization(authorization);
    if (!parsed) {
      throw new GatewayError(
        'InvalidSignatureException',
        'Authorization header requires a valid AWS4-HMAC-SHA256 Credential, SignedHeaders and Signature.',
      );
    }
    if (!this.accessKeys.has(parsed.accessKeyId)) {
      throw new GatewayError(
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      );
    }
    return undefined;
  }

  /** Completes a call that precheck left open (SigV4): recomputes the signature over the body. */
  async verify(request: SignedRequest, now = new Date()): Promise<Principal> {
    const accessKeyId = await verifySigV4(request, this.accessKeys, now);
    return { kind: 'accessKey', accessKeyId };
  }
}
