import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GatewayError } from '../core/errors.js';

/** A stored zip: Lambda reports its sha256 in base64 (CodeSha256) and its size (CodeSize). */
export interface StoredCode {
  sha256: string;
  sha256Base64: string;
  size: number;
}

const BLOB = /^([0-9a-f]{64})\.zip$/;

export function isSha256Hex(value: string): boolean {
  return /^[0-9a-f]{64}$/.test(value);
}

/**
 * Uploaded code, one file per zip named by its sha256, in a directory (a volume in the chart).
 * The same zip uploaded twice is stored once. A total quota bounds the directory; code that no
 * function refers to any more is removed by `sweep`.
 */
export class CodeStore {
  constructor(
    readonly dir: string,
    readonly quotaBytes: number,
  ) {}

  /** Where the zip of that sha256 is (it may not exist). */
  file(sha256: string): string {
    if (!isSha256Hex(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return join(this.dir, `${sha256}.zip`);
  }

  async has(sha256: string): Promise<boolean> {
    return (await stat(this.file(sha256)).catch(() => undefined))?.isFile() ?? false;
  }

  /** Stores an already checked zip; CodeStorageExceededException when it would pass the quota. */
  async put(zip: Buffer): Promise<StoredCode> {
    const sha256 = createHash('sha256').update(zip).digest('hex');
    const stored = { sha256, sha256Base64: Buffer.from(sha256, 'hex').toString('base64'), size: zip.length };
    if (await this.has(sha256)) return stored;
    const used = await this.usedBytes();
    if (used + zip.length > this.quotaBytes) {
      throw new GatewayError(
        'CodeStorageExceededException',
        `Code storage limit exceeded: ${used} of ${this.quotaBytes} bytes are used and this zip has ${zip.length}. Delete functions you no longer need.`,
      );
    }
    // Created on the first upload only: a functions directory nobody deploys to stays as it was.
    await mkdir(this.dir, { recursive: true });
    // Written aside and renamed, so a reader never sees half a zip under its final name.
    const staging = join(this.dir, `.${sha256}.${randomBytes(4).toString('hex')}.tmp`);
    await writeFile(staging, zip);
    await rename(staging, this.file(sha256));
    return stored;
  }

  async usedBytes(): Promise<number> {
    let total = 0;
    for (const sha256 of await this.list())
      total += (await stat(this.file(sha256)).catch(() => undefined))?.size ?? 0;
    return total;
  }

  async list(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.flatMap((name) => BLOB.exec(name)?.[1] ?? []);
  }

  /** Removes every zip not in `referenced`; returns the sha256s removed. */
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
