import { createHash, randomUUID } from 'node:crypto';
import type { BucketSource } from '@hearth/api';
import { GatewayError } from '../core/errors.js';

/** One record of an S3 event notification as Lambda hands it to functions. */
export interface S3EventRecord {
  eventVersion: string;
  eventSource: 'aws:s3';
  awsRegion: string;
  eventTime: string;
  /** Without the `s3:` prefix MinIO uses: `ObjectCreated:Put`. */
  eventName: string;
  userIdentity: { principalId: string };
  requestParameters: { sourceIPAddress: string };
  responseElements: Record<string, string>;
  s3: {
    s3SchemaVersion: string;
    configurationId: string;
    bucket: { name: string; ownerIdentity: { principalId: string }; arn: string };
    object: { key: string; size?: number; eTag?: string; versionId?: string; sequencer?: string };
  };
}

/** A record as it arrived: only the fields the filters need are known to be there. */
export interface IncomingRecord {
  eventName: string;
  s3: { bucket: { name: string }; object: { key: string } } & Record<string, unknown>;
  [field: string]: unknown;
}

const invalid = (message: string) => new GatewayError('InvalidRequestContentException', message);

/**
 * The records of a notification body: MinIO's webhook sends `{EventName, Key, Records}`, S3
 * (and other S3-compatible stores) `{Records}`. Throws InvalidRequestContentException naming
 * the first problem.
 */
export function parseNotification(body: Buffer): IncomingRecord[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw invalid(`Could not parse request body into json: ${(error as Error).message}`);
  }
  if (!isRecord(parsed))
    throw invalid('The body must be a JSON object with Records (an S3 event notification).');
  if (!Array.isArray(parsed.Records)) throw invalid('Records must be an array of S3 event records.');
  return parsed.Records.map((record: unknown, i) => {
    const at = `Records[${i}]`;
    if (!isRecord(record)) throw invalid(`${at} must be an object.`);
    if (typeof record.eventName !== 'string') throw invalid(`${at}.eventName must be a string.`);
    const s3 = record.s3;
    if (!isRecord(s3)) throw invalid(`${at}.s3 must be an object.`);
    if (!isRecord(s3.bucket) || typeof s3.bucket.name !== 'string')
      throw invalid(`${at}.s3.bucket.name must be a string.`);
    if (!isRecord(s3.object) || typeof s3.object.key !== 'string')
      throw invalid(`${at}.s3.object.key must be a string.`);
    return record as IncomingRecord;
  });
}

/** S3's event name (`ObjectCreated:Put`) whether the record says it with MinIO's `s3:` prefix or not. */
export function s3EventName(eventName: string): string {
  return eventName.startsWith('s3:') ? eventName.slice(3) : eventName;
}

/**
 * Whether a mapping takes a record: its bucket (when it names one), one of its event patterns
 * (`s3:ObjectCreated:*` takes every ObjectCreated event), and its key prefix and suffix. Keys in
 * notifications are URL-encoded (a space is `+`), as S3 sends them; filters compare decoded keys.
 */
export function recordMatches(record: IncomingRecord, source: BucketSource): boolean {
  if (source.bucket !== undefined && record.s3.bucket.name !== source.bucket) return false;
  const name = `s3:${s3EventName(record.eventName)}`;
  const eventMatches = source.events.some((pattern) =>
    pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern,
  );
  if (!eventMatches) return false;
  const key = decodeKey(record.s3.object.key);
  if (source.prefix !== undefined && !key.startsWith(source.prefix)) return false;
  if (source.suffix !== undefined && !key.endsWith(source.suffix)) return false;
  return true;
}

/** The record in S3's own shape: what a handler written for S3 notifications reads. */
export function toS3Record(
  record: IncomingRecord,
  defaults: { region: string; configurationId: string },
): S3EventRecord {
  const s3 = record.s3;
  const bucket = s3.bucket as Record<string, unknown>;
  const object = s3.object as Record<string, unknown>;
  const text = (value: unknown, fallback: string) =>
    typeof value === 'string' && value !== '' ? value : fallback;
  const principal = (value: unknown) => ({
    principalId: isRecord(value) ? text(value.principalId, '') : '',
  });
  const responseElements: Record<string, string> = {};
  if (isRecord(record.responseElements)) {
    for (const [name, value] of Object.entries(record.responseElements))
      if (typeof value === 'string') responseElements[name] = value;
  }
  const size = Number(object.size);
  return {
    eventVersion: text(record.eventVersion, '2.1'),
    eventSource: 'aws:s3',
    awsRegion: text(record.awsRegion, defaults.region),
    eventTime: text(record.eventTime, new Date().toISOString()),
    eventName: s3EventName(record.eventName),
    userIdentity: principal(record.userIdentity),
    requestParameters: {
      sourceIPAddress: isRecord(record.requestParameters)
        ? text(record.requestParameters.sourceIPAddress, '')
        : '',
    },
    responseElements,
    s3: {
      s3SchemaVersion: text(s3.s3SchemaVersion, '1.0'),
      configurationId: text(s3.configurationId, defaults.configurationId),
      bucket: {
        name: s3.bucket.name,
        ownerIdentity: principal(bucket.ownerIdentity),
        arn: text(bucket.arn, `arn:aws:s3:::${s3.bucket.name}`),
      },
      object: {
        key: s3.object.key,
        ...(object.size !== undefined && Number.isFinite(size) ? { size } : {}),
        ...(typeof object.eTag === 'string' ? { eTag: object.eTag } : {}),
        ...(typeof object.versionId === 'string' ? { versionId: object.versionId } : {}),
        ...(typeof object.sequencer === 'string' ? { sequencer: object.sequencer } : {}),
      },
    },
  };
}

/**
 * The async request id of a record's delivery. A record with a sequencer (S3 and MinIO give one
 * per object event) gets an id derived from it, so a notification the store sends again is
 * stored once while the first copy is still queued; others get a fresh id.
 */
export function deliveryRequestId(mappingName: string, record: S3EventRecord): string {
  const { bucket, object } = record.s3;
  if (object.sequencer === undefined) return randomUUID();
  const hex = createHash('sha256')
    .update(
      JSON.stringify([
        mappingName,
        bucket.name,
        object.key,
        object.versionId ?? '',
        record.eventName,
        object.sequencer,
      ]),
    )
    .digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function decodeKey(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return key;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
