import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The programs Hearth is tested and measured against, built by scripts/peers/install.sh. */
export type Peer = 'aws-lambda-rie' | 'aws-lambda-ric' | 'of-watchdog';

/** The repository's root, from this file's place in test/dist/conformance. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * Where an installed peer is (a binary, or for aws-lambda-ric its `bin/index.mjs`), or
 * undefined when it is not built. The peer scripts own the cache layout and the pinned
 * versions; asking them keeps those in one place.
 */
export function findPeer(peer: Peer): string | undefined {
  try {
    return execFileSync('bash', [`${repoRoot}scripts/peers/${peer}.sh`, '--installed'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return undefined;
  }
}

/** Like findPeer, but a missing peer is an error that says how to get it. */
export function requirePeer(peer: Peer): string {
  const path = findPeer(peer);
  if (!path) throw new Error(`${peer} is not installed: run scripts/peers/install.sh`);
  return path;
}
