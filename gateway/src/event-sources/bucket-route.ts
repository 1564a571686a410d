import { Router } from 'express';
import type { AsyncQueue } from '../async/index.js';
import type { Authenticator } from '../auth/authenticate.js';
import { GatewayError } from '../core/errors.js';
import { authenticateRequest } from '../http/authenticate-middleware.js';
import { BodyTooLargeError, readBody } from '../http/body.js';
import { deliveryRequestId, parseNotification, recordMatches, toS3Record } from './bucket-notification.js';
import type { PushSourceMetrics } from './metrics.js';
import type { PushMappingCache } from './push-mappings.js';

export interface BucketNotificationsOptions {
  mappings: PushMappingCache;
  events: AsyncQueue;
  authenticator: Authenticator;
  metrics: PushSourceMetrics;
  /** Largest notification body accepted. */
  maxBodyBytes: number;
  region: string;
}

/**
 * `POST /hearth/v1/bucket-notifications/{mapping}`: an S3-compatible store's event
 * notifications (MinIO's webhook target). Every record the mapping's filters take becomes an
 * async event `{"Records":[<S3 record>]}` of the function, so its retries, dead-letter queue and
 * destinations apply; the answer is 200 only once every one of them is stored, so a store that
 * gets an error sends the notification again (at least once).
 */
export function bucketNotificationsRouter(options: BucketNotificationsOptions): Router {
  const { mappings, events, metrics } = options;
  const router = Router();
  router.post(
    '/hearth/v1/bucket-notifications/:name',
    authenticateRequest(options.authenticator),
    async (req, res) => {
      const name = String(req.params.name);
      const mapping = mappings.get(name);
      if (!mapping?.bucket) {
        throw new GatewayError('ResourceNotFoundException', `No bucket notification mapping named ${name}.`);
      }
      if (!mapping.enabled) {
        throw new GatewayError('ResourceConflictException', `The event source mapping ${name} is disabled.`);
      }
      // A SigV4-signed request was read (and checked) by the authentication; a Bearer one not yet.
      let body: Buffer;
      try {
        body = Buffer.isBuffer(req.body) ? req.body : await readBody(req, options.maxBodyBytes);
      } catch (error) {
        if (error instanceof BodyTooLargeError)
          throw new GatewayError(
            'RequestTooLargeException',
            `A notification must be smaller than ${options.maxBodyBytes} bytes.`,
          );
        throw error;
      }
      const records = parseNotification(body);
      const taken = records
        .filter((record) => recordMatches(record, mapping.bucket!))
        .map((record) => toS3Record(record, { region: options.region, configurationId: name }));
      metrics.count(mapping, 'bucket', 'filtered', records.length - taken.length);
      const requestIds = taken.map((record) => deliveryRequestId(name, record));
      try {
        await Promise.all(
          taken.map((record, i) =>
            events.enqueue({
              functionName: mapping.functionName,
              requestId: requestIds[i]!,
              payload: JSON.stringify({ Records: [record] }),
            }),
          ),
        );
      } catch (error) {
        metrics.count(mapping, 'bucket', 'error', taken.length);
        throw error;
      }
      metrics.count(mapping, 'bucket', 'queued', taken.length);
      res.json({ queued: taken.length, filtered: records.length - taken.length, requestIds });
    },
  );
  return router;
}
