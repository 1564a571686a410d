import yauzl from 'yauzl';
import {
  CodeArchiveLimits,
  symlinkTargetProblem,
  throughSymlinkProblem,
  zipEntryKind,
  zipEntryPath,
  zipEntrySizeProblem,
} from '@hearth/api';
import { GatewayError } from '../core/errors.js';

/**
 * A refused upload is the caller's fault: 400, so that SDKs and the AWS CLI do not retry it as
 * they would the 502 that Lambda's Invoke gives InvalidZipFileException.
 */
export class InvalidZipError extends GatewayError {
  override readonly status = 400;
  constructor(message: string) {
    super('InvalidZipFileException', message);
  }
}

export function zipTooLarge(message: string): GatewayError {
  return new GatewayError('RequestTooLargeException', message);
}

export interface ZipSummary {
  entries: number;
  /** Bytes of every file once unpacked, as counted while inflating (not as declared). */
  unzippedBytes: number;
}

const SYMLINK_TARGET_MAX = 4096;

/**
 * Reads a whole zip the way unpacking it would, without writing anything: the central directory
 * first, then every entry inflated and counted. Declared sizes are checked but not trusted; the
 * inflated bytes are. Throws InvalidZipError or RequestTooLargeException naming the entry.
 */
export async function checkZip(zip: Buffer): Promise<ZipSummary> {
  if (zip.length > CodeArchiveLimits.zippedBytes) {
    throw zipTooLarge(
      `Zipped size must be smaller than ${CodeArchiveLimits.zippedBytes} bytes (got ${zip.length}).`,
    );
  }
  let zipfile: yauzl.ZipFile;
  try {
    zipfile = await new Promise<yauzl.ZipFile>((resolve, reject) =>
      yauzl.fromBuffer(
        zip,
        { lazyEntries: true, validateEntrySizes: true, strictFileNames: true },
        (error, opened) => (error ? reject(error) : resolve(opened)),
      ),
    );
  } catch (error) {
    throw new InvalidZipError(`Could not unzip the uploaded file: ${(error as Error).message}.`);
  }
  if (zipfile.entryCount > CodeArchiveLimits.maxEntries) {
    zipfile.close();
    throw new InvalidZipError(
      `The zip file has ${zipfile.entryCount} entries, more than ${CodeArchiveLimits.maxEntries}.`,
    );
  }

  const names = new Set<string>();
  const symlinks = new Map<string, { parts: string[]; target: string }>();
  const paths: string[][] = [];
  let declared = 0;
  let inflated = 0;
  try {
    for await (const entry of entries(zipfile)) {
      const header = {
        name: entry.fileName,
        compressedSize: entry.compressedSize,
        uncompressedSize: entry.uncompressedSize,
        unixMode: entry.externalFileAttributes >>> 16,
      };
      const path = zipEntryPath(header.name);
      if ('problem' in path) throw new InvalidZipError(`Entry ${path.problem}.`);
      const key = path.parts.join('/');
      if (names.has(key)) throw new InvalidZipError(`Entry "${key}" appears more than once.`);
      names.add(key);
      if (entry.isEncrypted()) throw new InvalidZipError(`Entry "${key}" is encrypted.`);
      const sizeProblem = zipEntrySizeProblem(header);
      if (sizeProblem) {
        if (sizeProblem.includes('zip bomb')) throw new InvalidZipError(`Entry ${sizeProblem}.`);
        throw zipTooLarge(
          `Unzipped size must be smaller than ${CodeArchiveLimits.unzippedBytes} bytes: entry ${sizeProblem}.`,
        );
      }
      declared += header.uncompressedSize;
      if (declared > CodeArchiveLimits.unzippedBytes) {
        throw zipTooLarge(`Unzipped size must be smaller than ${CodeArchiveLimits.unzippedBytes} bytes.`);
      }
      const kind = zipEntryKind(header);
      if (kind === 'directory') continue;
      paths.push(path.parts);
      const content =
        kind === 'symlink'
          ? await readEntry(zipfile, entry, SYMLINK_TARGET_MAX, true)
          : await readEntry(zipfile, entry, CodeArchiveLimits.unzippedBytes - inflated, false);
      if (content === 'too large') {
        if (kind === 'symlink')
          throw new InvalidZipError(`Symlink "${key}" has a target longer than ${SYMLINK_TARGET_MAX} bytes.`);
        throw zipTooLarge(`Unzipped size must be smaller than ${CodeArchiveLimits.unzippedBytes} bytes.`);
      }
      inflated += content.size;
      if (kind === 'symlink') symlinks.set(key, { parts: path.parts, target: content.text });
    }
  } catch (error) {
    zipfile.close();
    if (error instanceof GatewayError) throw error;
    throw new InvalidZipError(`Could not unzip the uploaded file: ${(error as Error).message}.`);
  }
  const symlinkNames = new Set(symlinks.keys());
  for (const { parts, target } of symlinks.values()) {
    const problem = symlinkTargetProblem(parts, target, symlinkNames);
    if (problem) throw new InvalidZipError(`Entry ${problem}.`);
  }
  for (const parts of paths) {
    const problem = throughSymlinkProblem(parts, symlinkNames);
    if (problem) throw new InvalidZipError(`Entry ${problem}.`);
  }
  return { entries: names.size, unzippedBytes: inflated };
}

/** The entries of a lazily read zip, one at a time; a read error rejects the iteration. */
async function* entries(zipfile: yauzl.ZipFile): AsyncGenerator<yauzl.Entry> {
  for (;;) {
    const next = await new Promise<yauzl.Entry | undefined>((resolve, reject) => {
      const cleanup = () => {
        zipfile.off('entry', onEntry);
        zipfile.off('end', onEnd);
        zipfile.off('error', onError);
      };
      const onEntry = (entry: yauzl.Entry) => (cleanup(), resolve(entry));
      const onEnd = () => (cleanup(), resolve(undefined));
      const onError = (error: Error) => (cleanup(), reject(error));
      zipfile.on('entry', onEntry);
      zipfile.on('end', onEnd);
      zipfile.on('error', onError);
      zipfile.readEntry();
    });
    if (!next) return;
    yield next;
  }
}

/**
 * Inflates one entry, stopping as soon as it passes `limit` bytes. Keeps the text only when asked
 * (a symlink's target); of files only the count.
 */
function readEntry(
  zipfile: yauzl.ZipFile,
  entry: yauzl.Entry,
  limit: number,
  keepText: boolean,
): Promise<{ size: number; text: string } | 'too large'> {
  return new Promise((resolve, reject) => {
    zipfile.openReadStream(entry, (error, stream) => {
      if (error) return reject(error);
      const keep: Buffer[] = [];
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          stream.destroy();
          resolve('too large');
          return;
        }
        if (keepText) keep.push(chunk);
      });
      stream.on('error', reject);
      stream.on('end', () => resolve({ size, text: Buffer.concat(keep).toString('utf8') }));
    });
  });
}
