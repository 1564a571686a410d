import { ServiceErrors, type ServiceErrorCode } from '@hearth/api';

/**
 * The one error type of the gateway: a Lambda service error with its HTTP status. The error
 * handler turns it into Lambda's wire shape (`x-amzn-ErrorType` header, `{Type, message}` body).
 */
export class GatewayError extends Error {
  readonly status: number;
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
    /** Extra body fields, e.g. `Reason` on a 429. */
    readonly extra: Record<string, unknown> = {},
    /** Seconds, for 429s. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = code;
    this.status = ServiceErrors[code];
  }

  /** 5xx are the service's fault; everything else is the caller's. */
  get type(): 'User' | 'Service' {
    return this.status >= 500 ? 'Service' : 'User';
  }
}
