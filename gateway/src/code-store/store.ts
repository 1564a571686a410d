import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { GatewayError } from '../core/errors.js';

/** A stored zip: Lambda reports its sha256 in base64 (CodeSha256) and its size (CodeSize). */
export interface StoredCode {
  sha256: string;
  sha256Base64: string;
  size: number;
}

/**
 * Uploaded code, one zip per sha256: the same zip uploaded twice is stored once. A total quota
 * bounds the store; code that no function refers to any more is removed by `sweep`.
 */
export interface CodeStore {
  readonly quotaBytes: number;
  has(sha256: string): Promise<boolean>;
  /** Stores an already checked zip; CodeStorageExceededException when it would pass the quota. */
  put(zip: Buffer): Promise<StoredCode>;
  /** The stored zip's bytes, or undefined when that sha256 is not stored. */
  openRead(sha256: string): Promise<Readable | undefined>;
  usedBytes(): Promise<number>;
  /** The sha256 of every stored zip. */
  list(): Promise<string[]>;
  /** Removes every zip not in `referenced`; returns the sha256s removed. */
  sweep(referenced: ReadonlySet<string>): Promise<string[]>;
}

/** `<sha256>.zip`, the name of a stored zip in every backend. */
export const STORED_ZIP = /^([0-9a-f]{64})\.zip$/;

export function isSha256Hex(value: string): boolean {
  return /^[0-9a-f]{64}$/.test(value);
}

export function storedCodeOf(zip: Buffer): StoredCode {
  const sha256 = createHash('sha256').update(zip).digest('hex');
  return { sha256, sha256Base64: Buffer.from(sha256, 'hex').toString('base64'), size: zip.length };
}

/** Refuses a zip that would take the store past its quota. */
export function checkQuota(used: number, quotaBytes: number, size: number): void {
  if (used + size > quotaBytes) {
    throw new GatewayError(
      'CodeStorageExceededException',
      `Code storage limit exceeded: ${used} of ${quotaBytes} bytes are used and this zip has ${size}. Delete functions you no longer need.`,
    );
  }
}

/** The code store as files `<sha256>.zip` in a directory (a volume in the chart). */
export class DirectoryCodeStore implements CodeStore {
  constructor(
    readonly dir: string,
    readonly quotaBytes: number,
  ) {}

  private file(sha256: string): string {
    if (!isSha256Hex(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return join(this.dir, `${sha256}.zip`);
  }

  async has(sha256: string): Promise<boolean> {
    return (await stat(this.file(sha256)).catch(() => undefined))?.isFile() ?? false;
  }

  async put(zip: Buffer): Promise<StoredCode> {
    const stored = storedCodeOf(zip);
    if (await this.has(stored.sha256)) return stored;
    checkQuota(await this.usedBytes(), this.quotaBytes, zip.length);
    // Created on the first upload only: a functions directory nobody deploys to stays as it was.
    await mkdir(this.dir, { recursive: true });
    // Written aside and renamed, so a reader never sees half a zip under its final name.
    const staging = join(this.dir, `.${stored.sha256}.${randomBytes(4).toString('hex')}.tmp`);
    await writeFile(staging, zip);
    await rename(staging, this.file(stored.sha256));
    return stored;
  }

  async openRead(sha256: string): Promise<Readable | undefined> {
    // Opened before answering, so a zip swept meanwhile is a 404 and not a broken answer.
    const handle = await open(this.file(sha256)).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    return handle?.createReadStream();
  }

  async usedBytes(): Promise<number> {
    let total = 0;
    for (const sha256 of await this.list())
      total += (await stat(this.file(sha256)).catch(() => undefined))?.size ?? 0;
    return total;
  }

  async list(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.flatMap((name) => STORED_ZIP.exec(name)?.[1] ?? []);
  }

  async sweep(referenced: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const sha256 of await this.list()) {
      if (referenced.has(sha256)) continue;
      await rm(this.file(sha256), { force: true });
      removed.push(sha256);
    }
    return removed;
  }
}
