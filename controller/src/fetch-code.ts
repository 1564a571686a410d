#!/usr/bin/env node
// The init container of a function pod whose code is `spec.code.archive` (kubernetes backend):
// downloads the zip, checks its sha256 and unpacks it with archive.ts's checks into a directory
// on the emptyDir that the runtime container then mounts read-only as its code.
//   HEARTH_CODE_URL        spec.code.archive.url
//   HEARTH_CODE_SHA256     spec.code.archive.sha256
//   HEARTH_CODE_DIR        where the code goes (replaced if a restarted pod left one behind)
//   HEARTH_TERMINATION_LOG the container's terminationMessagePath; default /dev/termination-log
// On failure the reason and message go to the termination log, where the controller reads them
// from the pod's status and puts them on the Function's CodeReady condition.
import { rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ArchiveError, unpackArchive } from './archive.js';
import { codeFetchMessage } from './kube-objects.js';

/** Waits between tries after a network failure; then the kubelet restarts us with its own backoff. */
const RETRY_DELAYS_MS = [1000, 2000, 4000, 8000];

const url = process.env.HEARTH_CODE_URL;
const sha256 = process.env.HEARTH_CODE_SHA256;
const dir = process.env.HEARTH_CODE_DIR;
const terminationLog = process.env.HEARTH_TERMINATION_LOG ?? '/dev/termination-log';

async function fail(message: string): Promise<never> {
  console.error(message);
  await writeFile(terminationLog, message).catch(() => undefined);
  process.exit(1);
}

if (!url || !sha256 || !dir) {
  await fail(
    codeFetchMessage(
      'InvalidArchive',
      'HEARTH_CODE_URL, HEARTH_CODE_SHA256 and HEARTH_CODE_DIR are required',
    ),
  );
}
for (let attempt = 0; ; attempt++) {
  try {
    await rm(dir!, { recursive: true, force: true });
    await unpackArchive({ url: url!, sha256: sha256! }, dir!);
    console.log(`unpacked ${url} (sha256 ${sha256}) into ${dir}`);
    process.exit(0);
  } catch (error) {
    if (error instanceof ArchiveError) await fail(codeFetchMessage(error.reason, error.message));
    const cause = (error as { cause?: Error }).cause;
    const message = `code archive ${url} could not be fetched: ${(error as Error).message}${cause ? ` (${cause.message})` : ''}`;
    const delay = RETRY_DELAYS_MS[attempt];
    if (delay === undefined) await fail(codeFetchMessage('ArchiveUnavailable', message));
    console.error(`${message}; trying again in ${delay} ms`);
    await sleep(delay);
  }
}
