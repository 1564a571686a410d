import {
  accessSync,
  closeSync,
  constants,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmdirSync,
  statfsSync,
  write,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, isAbsolute } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runtimeCapacities, type IsolationWish, type ShimConfig } from './config.js';
import { fsPromises } from './deferred-builtins.js';
import { TMP_READY_FD_VARIABLE } from './runtimes/launch-protocol.js';

export type MemoryIsolation = 'cgroup-v1' | 'cgroup-v2' | 'rss-polling';
export type TmpIsolation = 'loop-mount' | 'directory';
export interface IsolationPlan {
  memory: MemoryIsolation;
  tmp: TmpIsolation;
}

/** What the host offers; gathered once at start. */
export interface HostFacts {
  isRoot: boolean;
  /** Where to create memory cgroups (v1: a memory controller directory; v2: a unified directory). */
  cgroupV1Parent?: string;
  cgroupV2Parent?: string;
  /** cgroup.procs of the group the shim itself is in, where its runtimes' groups are (GroupMovePrimer). */
  ownGroupProcs?: string;
  hasUnshare: boolean;
  hasMkfsExt4: boolean;
}

/** The strongest isolation the host allows, or the portable one when asked for. */
export function chooseIsolation(wish: IsolationWish, facts: HostFacts): IsolationPlan {
  if (wish === 'portable' || !facts.isRoot) return { memory: 'rss-polling', tmp: 'directory' };
  const memory: MemoryIsolation = facts.cgroupV1Parent
    ? 'cgroup-v1'
    : facts.cgroupV2Parent
      ? 'cgroup-v2'
      : 'rss-polling';
  const tmp: TmpIsolation = facts.hasUnshare && facts.hasMkfsExt4 ? 'loop-mount' : 'directory';
  return { memory, tmp };
}

// Host detection and sandbox set-up use synchronous calls: they are a few small files, and the
// runtime's spawn waits on them, which at start-up goes faster without thread-pool round trips.

function canWrite(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function readSmallFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Writes a file that only some kernels have (swap limits): absent is fine. */
function writeOptional(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch {
    // not on this kernel
  }
}

/** Whether `command` is an executable on PATH (file checks only: no shell is started). */
function onPath(command: string): boolean {
  for (const dir of (
    process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  ).split(':')) {
    if (!dir) continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

const CGROUP_V1_MEMORY = '/sys/fs/cgroup/memory';
const CGROUP_V2_ROOT = '/sys/fs/cgroup';

/**
 * The cgroup v1 memory directory to nest the runtimes' groups in: the shim's own group, so that
 * whatever limits the shim (a pod) also covers its runtimes.
 */
function cgroupV1Parent(ownGroup: string | undefined): string | undefined {
  if (!canWrite(join(CGROUP_V1_MEMORY, 'cgroup.procs'))) return undefined;
  if (ownGroup && canWrite(ownGroup)) return ownGroup;
  return CGROUP_V1_MEMORY;
}

/** cgroup v2: groups directly under the root, where the memory controller is delegated to children. */
function cgroupV2Parent(): string | undefined {
  const subtree = readSmallFile(join(CGROUP_V2_ROOT, 'cgroup.subtree_control'));
  if (!subtree.split(/\s+/).includes('memory') || !canWrite(CGROUP_V2_ROOT)) return undefined;
  return CGROUP_V2_ROOT;
}

/**
 * The shim's own group, from /proc/self/cgroup: in the memory hierarchy (v1) or the unified one
 * (v2, the line `0::/path`).
 */
export function ownGroupPath(procSelfCgroup: string, version: 'v1' | 'v2'): string | undefined {
  const pattern = version === 'v1' ? /^\d+:([^:]*,)?memory(,[^:]*)?:/ : /^0::/;
  const line = procSelfCgroup.split('\n').find((l) => pattern.test(l));
  return line?.slice(line.lastIndexOf(':') + 1) || undefined;
}

/** The directory of the shim's own group, in the hierarchy `version` names. */
function ownGroupDir(procSelfCgroup: string, version: 'v1' | 'v2'): string | undefined {
  const path = ownGroupPath(procSelfCgroup, version);
  return path && join(version === 'v1' ? CGROUP_V1_MEMORY : CGROUP_V2_ROOT, path);
}

/** The default state dirs: `hearth-shim-<pid>-<random>` in the system's temp dir. */
const STATE_DIR_PREFIX = 'hearth-shim-';

/**
 * Removes the default state dirs of shims that are gone without removing theirs (SIGKILL leaves
 * no time to clean up; with loop-mounted /tmp each holds an image of several MB). Run after the
 * runtimes are spawned: it is no part of a cold start.
 */
export async function removeStaleStateDirs(parent = tmpdir()): Promise<void> {
  const { readdir, rm } = fsPromises();
  const names = await readdir(parent).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(STATE_DIR_PREFIX)) continue;
    const owner = /^(\d+)-/.exec(name.slice(STATE_DIR_PREFIX.length))?.[1];
    if (!owner || processExists(Number(owner))) continue;
    await rm(join(parent, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Groups left behind by shims that were killed outright (SIGKILL leaves no time to clean up). */
function removeStaleGroups(parent: string): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const owner = /^hearth-(\d+)-\d+$/.exec(name)?.[1];
    if (!owner || processExists(Number(owner))) continue;
    try {
      rmdirSync(join(parent, name));
    } catch {
      // still in use, or removed meanwhile
    }
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function detectHostFacts(): HostFacts {
  const isRoot = process.getuid?.() === 0;
  if (!isRoot) return { isRoot, hasUnshare: false, hasMkfsExt4: false };
  const procSelfCgroup = readSmallFile('/proc/self/cgroup');
  const ownV1Group = ownGroupDir(procSelfCgroup, 'v1');
  const v1 = cgroupV1Parent(ownV1Group);
  const v2 = v1 ? undefined : cgroupV2Parent();
  const hasUnshare = onPath('unshare');
  const hasMkfsExt4 = onPath('mkfs.ext4');
  const facts: HostFacts = { isRoot, hasUnshare, hasMkfsExt4 };
  const parent = v1 ?? v2;
  if (parent) removeStaleGroups(parent);
  if (v1) facts.cgroupV1Parent = v1;
  else if (v2) facts.cgroupV2Parent = v2;
  // Whether the shim may write it is for GroupMovePrimer.open to find out.
  const ownDir = v1 ? ownV1Group : v2 && ownGroupDir(procSelfCgroup, 'v2');
  if (ownDir) facts.ownGroupProcs = join(ownDir, 'cgroup.procs');
  return facts;
}

// The launcher joins the memory cgroup and mounts the private /tmp before it becomes the runtime,
// so that nothing of the runtime ever runs outside its limits. Exit 125: the sandbox failed.
// It also makes the /tmp filesystem when asked to (a new one at every reset), outside the memory
// group, so that the image's pages are not counted as the function's memory.
// A runtime of Hearth's own (early) starts booting while /tmp is made and mounted in the
// background, in its mount namespace: its bootstrap waits for the status on fd 3 before it loads
// any of the function's code (TMP_READY_FD_VARIABLE), which takes mkfs and the mount off the cold
// start. Otherwise (another runtime, no mkfifo, the code or the runtime under /tmp) the steps
// run in turn.
// Code or a runtime under /tmp (a test, a quick try, a checkout in a temp dir) would vanish under
// the new /tmp. The working directory (the code) and fd 3 (the runtime's directory, opened before
// the mount) still reach the originals, so both are bound back at their paths.
const LAUNCH_SCRIPT = [
  'cg="$1"; img="$2"; rt="$3"; mb="$4"; fresh="$5"; early="$6"; shift 6',
  'make_tmp() {',
  '  if [ -n "$fresh" ] || [ ! -e "$img" ]; then',
  '    rm -f "$img" && mkfs.ext4 -q -F -m 0 -O ^has_journal,^resize_inode -E lazy_itable_init=1,nodiscard "$img" "${mb}M" > /dev/null || return 1',
  '  fi',
  '  mount -t ext4 -o loop,nosuid,nodev "$img" /tmp && chmod 1777 /tmp',
  '}',
  'join_group() { if [ -n "$cg" ]; then echo $$ > "$cg" || exit 125; fi; }',
  'if [ -z "$img" ]; then join_group; exec "$@"; fi',
  'cd -P . || exit 125',
  'case "$PWD" in /tmp/*) early="";; esac',
  'case "$rt" in /tmp/*) early="";; *) rt="";; esac',
  'if [ -n "$early" ] && command -v mkfifo > /dev/null; then',
  // A name of this launch's own (nothing to remove first), unlinked by the background job (the
  // fd stays): no rm on the runtime's way.
  '  ready="${img%/*}/tmp-ready-$$"',
  '  mkfifo -m 600 "$ready" && exec 3<>"$ready" || exit 125',
  '  ( ( rm -f "$ready"; make_tmp; echo $? >&3 ) & )',
  '  join_group',
  `  export ${TMP_READY_FD_VARIABLE}=3`,
  '  exec "$@"',
  'fi',
  `unset ${TMP_READY_FD_VARIABLE}`,
  'if [ -n "$rt" ]; then exec 3<"$rt" || exit 125; fi',
  'make_tmp || exit 125',
  'join_group',
  'cwd="$PWD"; case "$cwd" in /tmp/*) mkdir -p "$cwd" && mount --no-canonicalize --bind . "$cwd" && cd "$cwd" || exit 125;; esac',
  'if [ -n "$rt" ]; then mkdir -p "$rt" && mount --no-canonicalize --bind /proc/self/fd/3 "$rt" || exit 125; exec 3<&-; fi',
  'exec "$@"',
].join('\n');

/** The command line that starts `command` inside the sandbox (pure: the paths are given). */
export function launchCommand(
  target: { command: string; args: string[]; runtimeDir?: string; waitsForTmp?: boolean },
  sandbox: { cgroupProcsFile?: string; tmpImage?: string; tmpImageMb?: number; newTmpImage?: boolean },
): { command: string; args: string[] } {
  if (!sandbox.cgroupProcsFile && !sandbox.tmpImage) return { command: target.command, args: target.args };
  const shell = [
    'sh',
    '-c',
    LAUNCH_SCRIPT,
    'hearth-launch',
    sandbox.cgroupProcsFile ?? '',
    sandbox.tmpImage ?? '',
    target.runtimeDir ?? '',
    sandbox.tmpImageMb ? String(sandbox.tmpImageMb) : '',
    sandbox.newTmpImage ? '1' : '',
    target.waitsForTmp ? '1' : '',
  ];
  const argv = [...shell, target.command, ...target.args];
  if (sandbox.tmpImage) return { command: 'unshare', args: ['-m', '--propagation', 'private', ...argv] };
  return { command: argv[0]!, args: argv.slice(1) };
}

/** A descriptor on a cgroup file, or undefined where it cannot be opened (no such group, no permission). */
function openOrUndefined(path: string, flags: string): number | undefined {
  try {
    return openSync(path, flags);
  } catch {
    return undefined;
  }
}

/**
 * Moving a process into a cgroup waits for an RCU grace period (the kernel's
 * cgroup_threadgroup_rwsem: 7-12 ms on our machines) unless another move came just before: for
 * some tens of milliseconds after one, the next takes well under a millisecond. The launcher's
 * move of the runtime into its memory group is on the cold start's path, so as the shim spawns
 * the launcher it moves itself into the group it is already in (nothing changes), written from
 * the thread pool so that its event loop does not wait. The launcher moves a few milliseconds
 * later (after unshare and sh) and finds the wait over. A failed write only costs the speed-up.
 */
export class GroupMovePrimer {
  private readonly pid = String(process.pid);
  private constructor(private readonly fd: number) {}

  static open(ownGroupProcs: string): GroupMovePrimer | undefined {
    const fd = openOrUndefined(ownGroupProcs, 'w');
    return fd === undefined ? undefined : new GroupMovePrimer(fd);
  }

  prime(): void {
    write(this.fd, this.pid, () => undefined);
  }
}

/** Bytes in a cgroup file such as memory.max_usage_in_bytes, re-read in place. */
class CgroupCounter {
  private readonly buffer = Buffer.alloc(64);
  private constructor(private readonly fd: number) {}

  static open(path: string): CgroupCounter | undefined {
    const fd = openOrUndefined(path, 'r+');
    return fd === undefined ? undefined : new CgroupCounter(fd);
  }

  read(): number {
    const length = readSync(this.fd, this.buffer, 0, this.buffer.length, 0);
    return Number(this.buffer.toString('latin1', 0, length).trim()) || 0;
  }

  reset(): void {
    try {
      writeSync(this.fd, '0', 0);
    } catch {
      // Kernels before 6.12 do not reset cgroup v2's memory.peak: the peak then stays the highest.
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** How much memory the runtime's processes use, and whether the limit killed them. */
export interface MemoryMeter {
  /** Highest usage in bytes since the last reset. */
  peakBytes(): number;
  resetPeak(): void;
  /** Counts the kernel's OOM kills so far (cgroups), or the shim's own kills (polling). */
  oomKills(): number;
}

/** One runtime slot's sandbox: its memory group and its private /tmp. */
export class Sandbox {
  private constructor(
    readonly plan: IsolationPlan,
    private readonly dir: string,
    readonly tmpImage: string | undefined,
    readonly tmpDir: string | undefined,
    private readonly cgroupDir: string | undefined,
    private readonly peak: CgroupCounter | undefined,
    private readonly storageMb: number,
    /** The tmp directory is the instance's own /tmp (HEARTH_TMP_DIR): wipe its contents, keep it. */
    private readonly sharedTmp: { keep: string | undefined } | undefined,
    private readonly primer: GroupMovePrimer | undefined,
  ) {}

  private tmpImageDue = true;

  /**
   * Creates the slot's cgroup (limit `memoryMb`) and /tmp (capacity `storageMb`) under `stateDir`.
   * With `tmpDir` (HEARTH_TMP_DIR) and /tmp by directory, that directory is the slot's /tmp
   * instead: the instance's own /tmp, watched and emptied in place (never removed itself).
   * `primer` is shared by the shim's sandboxes.
   */
  static async create(
    plan: IsolationPlan,
    facts: HostFacts,
    stateDir: string,
    slot: number,
    limits: { memoryMb: number; storageMb: number },
    host: { tmpDirSetting?: string; primer?: GroupMovePrimer },
  ): Promise<Sandbox> {
    const { tmpDirSetting } = host;
    const dir = join(stateDir, `slot-${slot}`);
    mkdirSync(dir, { recursive: true });
    let cgroupDir: string | undefined;
    let peak: CgroupCounter | undefined;
    const limitBytes = String(limits.memoryMb * 1024 * 1024);
    const groupName = `hearth-${process.pid}-${slot}`;
    if (plan.memory === 'cgroup-v1' && facts.cgroupV1Parent) {
      cgroupDir = join(facts.cgroupV1Parent, groupName);
      mkdirSync(cgroupDir, { recursive: true });
      writeFileSync(join(cgroupDir, 'memory.limit_in_bytes'), limitBytes);
      // Without swap accounting this file is absent; with it, swap must not stretch the limit.
      writeOptional(join(cgroupDir, 'memory.memsw.limit_in_bytes'), limitBytes);
      peak = CgroupCounter.open(join(cgroupDir, 'memory.max_usage_in_bytes'));
    } else if (plan.memory === 'cgroup-v2' && facts.cgroupV2Parent) {
      cgroupDir = join(facts.cgroupV2Parent, groupName);
      mkdirSync(cgroupDir, { recursive: true });
      writeFileSync(join(cgroupDir, 'memory.max'), limitBytes);
      writeOptional(join(cgroupDir, 'memory.swap.max'), '0');
      peak =
        CgroupCounter.open(join(cgroupDir, 'memory.peak')) ??
        CgroupCounter.open(join(cgroupDir, 'memory.current'));
    }
    let tmpImage: string | undefined;
    let tmpDir: string | undefined;
    let sharedTmp: { keep: string | undefined } | undefined;
    if (plan.tmp === 'loop-mount') tmpImage = join(dir, 'tmp.ext4');
    else if (tmpDirSetting) {
      tmpDir = tmpDirSetting;
      // A state dir inside it (the default one, under the shim's own temp dir) survives wipes.
      const inside = relative(tmpDirSetting, stateDir);
      const keep =
        inside && !inside.startsWith('..') && !isAbsolute(inside) ? inside.split('/')[0] : undefined;
      sharedTmp = { keep };
    } else tmpDir = join(dir, 'tmp');
    const sandbox = new Sandbox(
      plan,
      dir,
      tmpImage,
      tmpDir,
      cgroupDir,
      peak,
      limits.storageMb,
      sharedTmp,
      host.primer,
    );
    // A /tmp image is made by the runtime's launcher (launchSettings); a directory is made here.
    if (!tmpImage) await sandbox.resetTmp();
    return sandbox;
  }

  get cgroupProcsFile(): string | undefined {
    return this.cgroupDir && join(this.cgroupDir, 'cgroup.procs');
  }

  /** Called as the runtime's launcher is spawned: its move into the memory group is next. */
  primeGroupMove(): void {
    this.primer?.prime();
  }

  /**
   * The sandbox as the runtime's launcher takes it (launchCommand). A new /tmp filesystem, due at
   * first and after each reset, is then the launcher's to make: it is asked for once.
   */
  launchSettings(): {
    cgroupProcsFile?: string;
    tmpImage?: string;
    tmpImageMb?: number;
    newTmpImage?: boolean;
  } {
    if (!this.tmpImage) return { cgroupProcsFile: this.cgroupProcsFile };
    const newTmpImage = this.tmpImageDue;
    this.tmpImageDue = false;
    return {
      cgroupProcsFile: this.cgroupProcsFile,
      tmpImage: this.tmpImage,
      tmpImageMb: this.storageMb,
      newTmpImage,
    };
  }

  /** True when the runtime's /tmp is the instance's own directory, not a TMPDIR the shim made. */
  get tmpIsShared(): boolean {
    return this.sharedTmp !== undefined;
  }

  /**
   * An empty /tmp of the configured size for the next runtime: a fresh filesystem (no journal,
   * lazy inode tables: about 10 ms whatever the size, made by the launcher), or an emptied directory.
   */
  async resetTmp(): Promise<void> {
    const { mkdir, readdir, rm } = fsPromises();
    if (this.tmpImage) {
      this.tmpImageDue = true;
    } else if (this.tmpDir && this.sharedTmp) {
      // The instance's own /tmp (a mount point on Kubernetes): empty it, leave the directory.
      await mkdir(this.tmpDir, { recursive: true });
      const keep = this.sharedTmp.keep;
      for (const name of await readdir(this.tmpDir)) {
        if (name !== keep) await rm(join(this.tmpDir, name), { recursive: true, force: true });
      }
    } else if (this.tmpDir) {
      await rm(this.tmpDir, { recursive: true, force: true });
      await mkdir(this.tmpDir, { recursive: true, mode: 0o1777 });
    }
  }

  /**
   * True when /tmp is at its capacity. With the loop mount, the runtime's own view of /tmp is
   * reached through /proc/<pid>/root; there a full filesystem leaves a few blocks at most.
   */
  async tmpFull(pid: number): Promise<boolean> {
    if (this.tmpImage) {
      try {
        const stats = statfsSync(`/proc/${pid}/root/tmp`);
        return stats.bavail * stats.bsize < 2 * 1024 * 1024;
      } catch {
        return false;
      }
    }
    // Checked after every call: an empty /tmp (the common case) costs one small synchronous read.
    try {
      if (readdirSync(this.tmpDir!).length === 0) return false;
    } catch {
      return false;
    }
    return (await directoryBytes(this.tmpDir!)) >= this.storageMb * 1024 * 1024;
  }

  memoryMeter(pgid: () => number | undefined): MemoryMeter {
    const peak = this.peak;
    const cgroupDir = this.cgroupDir;
    if (peak && cgroupDir) {
      const eventsFile = this.plan.memory === 'cgroup-v1' ? 'memory.oom_control' : 'memory.events';
      return {
        peakBytes: () => peak.read(),
        resetPeak: () => peak.reset(),
        oomKills() {
          const text = readSmallFile(join(cgroupDir, eventsFile));
          return Number(/^oom_kill (\d+)/m.exec(text)?.[1] ?? 0);
        },
      };
    }
    return new RssMeter(pgid);
  }

  /** Kills whatever is left in the cgroup (processes that left the runtime's process group). */
  killStragglers(): void {
    if (!this.cgroupDir) return;
    const procs = readSmallFile(join(this.cgroupDir, 'cgroup.procs'));
    for (const pid of procs.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }

  async destroy(): Promise<void> {
    const { rm, rmdir } = fsPromises();
    this.peak?.close();
    if (this.cgroupDir) {
      // The kernel removes a group only once its last process is gone, a moment after SIGKILL.
      for (let attempt = 0; attempt < 50; attempt++) {
        this.killStragglers();
        try {
          await rmdir(this.cgroupDir);
          break;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') break;
          await sleep(20);
        }
      }
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** One runtime slot as prepared: its sandbox and the invocations its runtime takes at once. */
export interface PreparedSlot {
  sandbox: Sandbox;
  capacity: number;
}

/** The isolation chosen for this host and one sandbox per runtime slot, ready for its runtime. */
export interface PreparedIsolation {
  plan: IsolationPlan;
  /** The shim's state directory (`HEARTH_STATE_DIR`, or a fresh temp dir). */
  stateDir: string;
  slots: PreparedSlot[];
}

/** Detects what the host offers and prepares the instance's runtime slots, a sandbox for each. */
export async function prepareIsolation(config: ShimConfig): Promise<PreparedIsolation> {
  const facts = detectHostFacts();
  const plan = chooseIsolation(config.isolation, facts);
  const stateDir = config.stateDir ?? mkdtempSync(join(tmpdir(), `${STATE_DIR_PREFIX}${process.pid}-`));
  const limits = { memoryMb: config.memoryMb, storageMb: config.ephemeralStorageMb };
  const usesGroups = plan.memory === 'cgroup-v1' || plan.memory === 'cgroup-v2';
  const primer = usesGroups && facts.ownGroupProcs ? GroupMovePrimer.open(facts.ownGroupProcs) : undefined;
  const host = { tmpDirSetting: config.tmpDir, primer };
  const slots = await Promise.all(
    runtimeCapacities(config).map(async (capacity, slot) => ({
      sandbox: await Sandbox.create(plan, facts, stateDir, slot, limits, host),
      capacity,
    })),
  );
  return { plan, stateDir, slots };
}

/** Bytes a directory tree takes on disk. */
async function directoryBytes(dir: string): Promise<number> {
  const { readdir, stat } = fsPromises();
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(path);
    else
      total += await stat(path).then(
        (s) => s.blocks * 512,
        () => 0,
      );
  }
  return total;
}

/**
 * Without cgroups: the resident memory of the runtime's processes (the runtime and its
 * descendants, found through /proc/<pid>/task/<tid>/children), sampled by whoever polls
 * `sample()`; the highest sample is the peak. Only the runtime's own few /proc files are read,
 * never the whole of /proc. After a reset the peak starts from the last sample, so a call too
 * short to be sampled still reports what the warm runtime holds.
 */
export class RssMeter implements MemoryMeter {
  private peak = 0;
  private last = 0;
  kills = 0;
  constructor(private readonly pgid: () => number | undefined) {}

  peakBytes(): number {
    return this.peak;
  }

  resetPeak(): void {
    this.peak = this.last;
  }

  oomKills(): number {
    return this.kills;
  }

  /** Current RSS of the runtime's process tree in bytes; also raises the peak. */
  sample(): number {
    const root = this.pgid();
    if (root === undefined) return 0;
    let total = 0;
    const seen = new Set<number>();
    const pending = [root];
    while (pending.length > 0 && seen.size < 4096) {
      const pid = pending.pop()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      const rssPages = readRssPages(pid);
      if (rssPages === undefined) continue;
      total += rssPages * PAGE_SIZE;
      for (const child of childrenOf(pid)) pending.push(child);
    }
    this.last = total;
    if (total > this.peak) this.peak = total;
    return total;
  }
}

const PAGE_SIZE = 4096;
const procBuffer = Buffer.alloc(4096);

/** Reads a small /proc file into the shared buffer; undefined when the process is gone. */
function readProc(path: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const length = readSync(fd, procBuffer, 0, procBuffer.length, 0);
    return procBuffer.toString('latin1', 0, length);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Resident pages of a process (the second field of /proc/<pid>/statm). */
function readRssPages(pid: number): number | undefined {
  const statm = readProc(`/proc/${pid}/statm`);
  if (statm === undefined) return undefined;
  const start = statm.indexOf(' ') + 1;
  return Number(statm.slice(start, statm.indexOf(' ', start))) || 0;
}

/** A process's children, as its threads list them (processes started from any thread count). */
function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const children: number[] = [];
  for (const task of tasks) {
    const text = readProc(`/proc/${pid}/task/${task}/children`);
    if (!text) continue;
    for (const child of text.split(' ')) if (child) children.push(Number(child));
  }
  return children;
}
