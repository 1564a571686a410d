import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, readFile, rm, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yauzl from 'yauzl';
import {
  CodeArchiveLimits,
  symlinkTargetProblem,
  throughSymlinkProblem,
  zipEntryKind,
  zipEntryPath,
  zipEntrySizeProblem,
} from '@hearth/api';

/** Why an archive could not be used, as a Function's CodeReady condition names it. */
export type ArchiveFailure = 'ArchiveChecksumMismatch' | 'ArchiveUnavailable' | 'InvalidArchive';

/** A problem with the archive itself: retrying cannot help, so the function is Failed until its spec changes. */
export class ArchiveError extends Error {
  constructor(
    message: string,
    readonly reason: ArchiveFailure = 'InvalidArchive',
  ) {
    super(message);
  }
}

export interface ArchiveOptions {
  /** Sent as `Authorization: Bearer` to http(s) URLs (the gateway's code store when auth is on). */
  token?: string;
  /** Largest download accepted. */
  maxBytes?: number;
}

/**
 * Fetches `spec.code.archive` and unpacks it into `dir` (which must not exist yet): the sha256 is
 * checked before anything is unpacked, and entries are checked as the gateway checks uploads,
 * since a manifest may point at any zip. Network failures are plain errors (retried later);
 * anything wrong with the zip is an ArchiveError.
 */
export async function unpackArchive(
  archive: { url: string; sha256: string },
  dir: string,
  options: ArchiveOptions = {},
): Promise<void> {
  const zip = await download(archive.url, options);
  const actual = createHash('sha256').update(zip).digest('hex');
  if (actual !== archive.sha256) {
    throw new ArchiveError(
      `code archive ${archive.url} has sha256 ${actual}, but spec.code.archive.sha256 expects ${archive.sha256}`,
      'ArchiveChecksumMismatch',
    );
  }
  try {
    await extract(zip, dir);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function download(url: string, options: ArchiveOptions): Promise<Buffer> {
  const maxBytes = options.maxBytes ?? CodeArchiveLimits.unzippedBytes;
  if (url.startsWith('file://')) {
    const zip = await readFile(fileURLToPath(url)).catch((error: Error) => {
      throw new ArchiveError(`code archive ${url} could not be read: ${error.message}`, 'ArchiveUnavailable');
    });
    if (zip.length > maxBytes) throw new ArchiveError(`code archive ${url} is larger than ${maxBytes} bytes`);
    return zip;
  }
  const response = await fetch(url, {
    headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
    signal: AbortSignal.timeout(120_000),
  });
  if (response.status === 404)
    throw new ArchiveError(`code archive ${url} does not exist (404)`, 'ArchiveUnavailable');
  if (!response.ok || !response.body) throw new Error(`code archive ${url}: HTTP ${response.status}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.length;
    if (size > maxBytes) throw new ArchiveError(`code archive ${url} is larger than ${maxBytes} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks, size);
}

/** Unpacks with the entry checks of @hearth/api; symlinks last, so that no write ever follows one. */
async function extract(zip: Buffer, dir: string): Promise<void> {
  let zipfile: yauzl.ZipFile;
  try {
    zipfile = await new Promise((resolve, reject) =>
      yauzl.fromBuffer(
        zip,
        { lazyEntries: true, validateEntrySizes: true, strictFileNames: true },
        (error, opened) => (error ? reject(error) : resolve(opened)),
      ),
    );
  } catch (error) {
    throw new ArchiveError(`code archive is not a readable zip: ${(error as Error).message}`);
  }
  if (zipfile.entryCount > CodeArchiveLimits.maxEntries)
    throw new ArchiveError(`code archive has more than ${CodeArchiveLimits.maxEntries} entries`);
  await mkdir(dir, { recursive: true });
  const links = new Map<string, { parts: string[]; target: string }>();
  const files: string[][] = [];
  let unpacked = 0;
  await new Promise<void>((resolve, reject) => {
    const fail = (error: Error) => {
      zipfile.close();
      reject(
        error instanceof ArchiveError
          ? error
          : new ArchiveError(`code archive could not be unpacked: ${error.message}`),
      );
    };
    zipfile.on('error', fail);
    zipfile.on('end', resolve);
    zipfile.on('entry', (entry: yauzl.Entry) => {
      const header = {
        name: entry.fileName,
        compressedSize: entry.compressedSize,
        uncompressedSize: entry.uncompressedSize,
        unixMode: entry.externalFileAttributes >>> 16,
      };
      const path = zipEntryPath(header.name);
      if ('problem' in path) return fail(new ArchiveError(`code archive entry ${path.problem}`));
      const sizeProblem = zipEntrySizeProblem(header);
      if (sizeProblem) return fail(new ArchiveError(`code archive entry ${sizeProblem}`));
      const kind = zipEntryKind(header);
      const target = join(dir, ...path.parts);
      if (kind === 'directory') {
        mkdir(target, { recursive: true }).then(() => zipfile.readEntry(), fail);
        return;
      }
      zipfile.openReadStream(entry, (error, stream) => {
        if (error) return fail(error);
        // At once: a size check can fail before anyone reads (the inflater fills its buffer).
        stream.on('error', fail);
        const limit = kind === 'symlink' ? 4096 : CodeArchiveLimits.unzippedBytes - unpacked;
        const chunks: Buffer[] = [];
        let size = 0;
        const counted = (chunk: Buffer) => {
          size += chunk.length;
          if (size > limit) {
            stream.destroy();
            fail(
              new ArchiveError(`code archive unpacks to more than ${CodeArchiveLimits.unzippedBytes} bytes`),
            );
          }
        };
        if (kind === 'symlink') {
          stream.on('data', (chunk: Buffer) => (counted(chunk), chunks.push(chunk)));
          stream.on('end', () => {
            links.set(path.parts.join('/'), {
              parts: path.parts,
              target: Buffer.concat(chunks).toString('utf8'),
            });
            zipfile.readEntry();
          });
          return;
        }
        files.push(path.parts);
        const mode = header.unixMode & 0o111 ? 0o755 : 0o644;
        mkdir(dirname(target), { recursive: true }).then(() => {
          // `wx`: an entry never replaces what is already there (a duplicate, or a directory's file).
          const out = createWriteStream(target, { flags: 'wx', mode });
          stream.on('data', counted);
          out.on('error', fail);
          out.on('finish', () => {
            unpacked += size;
            chmod(target, mode).then(() => zipfile.readEntry(), fail);
          });
          stream.pipe(out);
        }, fail);
      });
    });
    zipfile.readEntry();
  });
  const names = new Set(links.keys());
  for (const parts of files) {
    const problem = throughSymlinkProblem(parts, names);
    if (problem) throw new ArchiveError(`code archive entry ${problem}`);
  }
  for (const { parts, target } of links.values()) {
    const problem = symlinkTargetProblem(parts, target, names);
    if (problem) throw new ArchiveError(`code archive entry ${problem}`);
    await mkdir(join(dir, ...parts.slice(0, -1)), { recursive: true });
    await symlink(target, join(dir, ...parts));
  }
}
