import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import type { S3CodeStoreConfig } from '../config.js';
import {
  STORED_ZIP,
  checkQuota,
  isSha256Hex,
  storedCodeOf,
  type CodeStore,
  type StoredCode,
} from './store.js';

/**
 * The code store as objects `<prefix><sha256>.zip` in an S3-compatible bucket (AWS S3, MinIO,
 * Ceph, ...), so that gateways need no shared volume. Credentials come from the AWS SDK's standard
 * chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, web identity, instance roles).
 */
export class S3CodeStore implements CodeStore {
  private readonly s3: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(
    config: S3CodeStoreConfig,
    readonly quotaBytes: number,
  ) {
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.s3 = new S3Client({
      region: config.region,
      ...(config.endpoint ? { endpoint: config.endpoint } : {}),
      forcePathStyle: config.forcePathStyle,
      // A bucket in another region than configured still works on AWS.
      followRegionRedirects: true,
      // S3-compatible servers differ in which of the newer default checksums they accept; the
      // upload carries its sha256 itself, which is the one that matters here.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  private key(sha256: string): string {
    if (!isSha256Hex(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return `${this.prefix}${sha256}.zip`;
  }

  /** An S3 failure other than "not there", naming the bucket for the log (callers see a ServiceException). */
  private failed(action: string, error: unknown): Error {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return new Error(`code store s3://${this.bucket}/${this.prefix}: ${action} failed: ${message}`, {
      cause: error,
    });
  }

  async has(sha256: string): Promise<boolean> {
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(sha256) }));
      return true;
    } catch (error) {
      // A HEAD answer has no body to tell a missing key from a missing bucket; an upload names it.
      if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404)
        return false;
      throw this.failed(`HeadObject ${this.key(sha256)}`, error);
    }
  }

  async put(zip: Buffer): Promise<StoredCode> {
    const stored = storedCodeOf(zip);
    if (await this.has(stored.sha256)) return stored;
    checkQuota(await this.usedBytes(), this.quotaBytes, zip.length);
    const key = this.key(stored.sha256);
    try {
      // An object appears whole or not at all, and the store checks the sha256 the name promises.
      await this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: zip,
          ContentType: 'application/zip',
          ChecksumSHA256: stored.sha256Base64,
        }),
      );
    } catch (error) {
      throw this.failed(`PutObject ${key}`, error);
    }
    return stored;
  }

  async openRead(sha256: string): Promise<Readable | undefined> {
    try {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(sha256) }));
      // In Node.js the SDK's body is the HTTP response, a Readable.
      return object.Body as Readable | undefined;
    } catch (error) {
      if ((error as Error).name === 'NoSuchKey') return undefined;
      throw this.failed(`GetObject ${this.key(sha256)}`, error);
    }
  }

  async usedBytes(): Promise<number> {
    let total = 0;
    for (const object of await this.objects()) total += object.size;
    return total;
  }

  async list(): Promise<string[]> {
    return (await this.objects()).map((object) => object.sha256);
  }

  async sweep(referenced: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const { sha256 } of await this.objects()) {
      if (referenced.has(sha256)) continue;
      try {
        await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(sha256) }));
      } catch (error) {
        throw this.failed(`DeleteObject ${this.key(sha256)}`, error);
      }
      removed.push(sha256);
    }
    return removed;
  }

  /** The stored zips directly under the prefix; other objects in the bucket are not the store's. */
  private async objects(): Promise<{ sha256: string; size: number }[]> {
    const found: { sha256: string; size: number }[] = [];
    try {
      for await (const page of paginateListObjectsV2(
        { client: this.s3 },
        { Bucket: this.bucket, Prefix: this.prefix },
      )) {
        for (const object of page.Contents ?? []) {
          const sha256 = STORED_ZIP.exec((object.Key ?? '').slice(this.prefix.length))?.[1];
          if (sha256) found.push({ sha256, size: object.Size ?? 0 });
        }
      }
    } catch (error) {
      throw this.failed('ListObjectsV2', error);
    }
    return found;
  }
}
