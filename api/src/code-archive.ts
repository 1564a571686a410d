/**
 * Code archives (zip files): Lambda's size limits and the decisions that keep an archive inside
 * its directory. Pure: the gateway (checking an upload), the controller (unpacking a revision's
 * code) and the CLI (checking before it uploads) all judge an archive by these same rules.
 */

export const CodeArchiveLimits = {
  /** A zip sent directly (Code.ZipFile): 50 MB. */
  zippedBytes: 52_428_800,
  /** Everything in it, unpacked: 250 MB. */
  unzippedBytes: 262_144_000,
  /**
   * Lambda's limit on a CreateFunction / UpdateFunctionCode request body: a 50 MB zip in base64
   * inside JSON.
   */
  requestBytes: 69_905_067,
  /** An entry that inflates more than this many times its stored size is taken for a zip bomb. */
  maxCompressionRatio: 500,
  /** Entries below this size may have any ratio (a small file of zeros is no bomb). */
  ratioCheckFromBytes: 1_048_576,
  maxEntries: 100_000,
} as const;

/** A zip entry as its central directory describes it. */
export interface ZipEntryHeader {
  name: string;
  compressedSize: number;
  uncompressedSize: number;
  /** The upper 16 bits of the external attributes: the Unix mode, when a Unix tool made the zip. */
  unixMode: number;
}

export type ZipEntryKind = 'file' | 'directory' | 'symlink';

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFDIR = 0o040000;

export function zipEntryKind(entry: Pick<ZipEntryHeader, 'name' | 'unixMode'>): ZipEntryKind {
  if ((entry.unixMode & S_IFMT) === S_IFLNK) return 'symlink';
  if (entry.name.endsWith('/') || (entry.unixMode & S_IFMT) === S_IFDIR) return 'directory';
  return 'file';
}

/**
 * The entry's path split into its parts, or a reason it would land outside the directory it is
 * unpacked into: absolute paths, drive letters, backslashes, `..` and empty names are refused.
 */
export function zipEntryPath(name: string): { parts: string[] } | { problem: string } {
  if (name === '' || name === '/') return { problem: 'has an empty name' };
  if (name.includes('\0')) return { problem: `"${printable(name)}" contains a NUL byte` };
  if (name.includes('\\')) return { problem: `"${printable(name)}" contains a backslash` };
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name))
    return { problem: `"${printable(name)}" is an absolute path` };
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) return { problem: `"${printable(name)}" points outside the archive's root (..)` };
  if (parts.length === 0) return { problem: `"${printable(name)}" has an empty name` };
  return { parts };
}

/** Why an entry's declared sizes make it unacceptable on their own, if they do. */
export function zipEntrySizeProblem(entry: ZipEntryHeader): string | undefined {
  if (entry.uncompressedSize > CodeArchiveLimits.unzippedBytes) {
    return `"${printable(entry.name)}" unpacks to ${entry.uncompressedSize} bytes, more than ${CodeArchiveLimits.unzippedBytes}`;
  }
  if (
    entry.uncompressedSize >= CodeArchiveLimits.ratioCheckFromBytes &&
    entry.uncompressedSize > CodeArchiveLimits.maxCompressionRatio * Math.max(1, entry.compressedSize)
  ) {
    return `"${printable(entry.name)}" inflates ${Math.round(entry.uncompressedSize / Math.max(1, entry.compressedSize))} times (more than ${CodeArchiveLimits.maxCompressionRatio}): refused as a zip bomb`;
  }
  return undefined;
}

/**
 * Whether a symlink at `linkParts` pointing at `target` stays inside the root. The target is
 * resolved one part at a time; passing through another symlink of the archive is refused too,
 * since `a -> ..` inside `d/` is harmless alone but lets `d/b -> a/..` climb out.
 */
export function symlinkTargetProblem(
  linkParts: string[],
  target: string,
  symlinks: ReadonlySet<string>,
): string | undefined {
  const link = linkParts.join('/');
  if (target === '' || target.includes('\0') || target.includes('\\'))
    return `symlink "${printable(link)}" has an unusable target`;
  if (target.startsWith('/'))
    return `symlink "${printable(link)}" points to the absolute path "${printable(target)}"`;
  const resolved = linkParts.slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (resolved.length === 0)
        return `symlink "${printable(link)}" points outside the archive's root ("${printable(target)}")`;
      resolved.pop();
      continue;
    }
    resolved.push(part);
    const through = resolved.join('/');
    if (through !== link && symlinks.has(through)) {
      return `symlink "${printable(link)}" points through another symlink ("${printable(through)}")`;
    }
  }
  return undefined;
}

/** Why an entry cannot be written where it says, if a symlink of the archive is on its way. */
export function throughSymlinkProblem(parts: string[], symlinks: ReadonlySet<string>): string | undefined {
  for (let n = 1; n < parts.length; n++) {
    const prefix = parts.slice(0, n).join('/');
    if (symlinks.has(prefix))
      return `"${printable(parts.join('/'))}" lies inside the symlink "${printable(prefix)}"`;
  }
  return undefined;
}

/** Names in messages: control characters shown as `?`, long names cut. */
function printable(name: string): string {
  const clean = [...name].map((c) => (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f ? '?' : c)).join('');
  return clean.length > 200 ? `${clean.slice(0, 200)}...` : clean;
}
