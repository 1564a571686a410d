import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import yazl from 'yazl';
import { CodeArchiveLimits } from '@hearth/api';
import { CliError, ExitCode } from './errors.js';
import { MANIFEST_FILE, packageSizeProblem } from './function-folder.js';

/** Skipped wherever they are: version control, local state, caches of the tools. */
const SKIPPED = new Set(['.git', '.hearth', '__pycache__', '.DS_Store']);

export interface Package {
  zip: Buffer;
  files: number;
  unzippedBytes: number;
}

/**
 * Zips a function folder as Lambda expects it: the folder's content at the root of the zip,
 * node_modules and vendored Python packages included, file modes kept (a `bootstrap` stays
 * executable), symlinks kept as symlinks. The manifest stays out.
 */
export async function packageFolder(dir: string): Promise<Package> {
  const zip = new yazl.ZipFile();
  let files = 0;
  let unzippedBytes = 0;
  // A fixed time: the same folder makes the same zip, so an unchanged function keeps its CodeSha256.
  const mtime = new Date('2020-01-01T00:00:00Z');
  async function walk(relative: string): Promise<void> {
    const entries = (await readdir(join(dir, relative), { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    );
    for (const entry of entries) {
      if (SKIPPED.has(entry.name) || (relative === '' && entry.name === MANIFEST_FILE)) continue;
      const path = relative === '' ? entry.name : posix.join(relative, entry.name);
      const full = join(dir, path);
      const info = await lstat(full);
      if (info.isSymbolicLink()) {
        const target = await readlink(full);
        zip.addBuffer(Buffer.from(target), path, { mode: 0o120777, mtime, compress: false });
        unzippedBytes += target.length;
        files += 1;
      } else if (info.isDirectory()) {
        await walk(path);
      } else if (info.isFile()) {
        // Counted before reading, so an oversized folder is refused without loading it all.
        if (unzippedBytes + info.size > CodeArchiveLimits.unzippedBytes) {
          throw new CliError(packageSizeProblem(0, unzippedBytes + info.size)!, ExitCode.usage);
        }
        const content = await readFile(full);
        zip.addBuffer(content, path, { mode: info.mode & 0o111 ? 0o100755 : 0o100644, mtime });
        unzippedBytes += content.length;
        files += 1;
      }
    }
  }
  await walk('');
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
  return { zip: Buffer.concat(chunks), files, unzippedBytes };
}
