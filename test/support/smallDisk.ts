/**
 * Small filesystems for the tests of a full disk and of data across
 * filesystems (issue 22): a tmpfs of a few MiB with few inodes, filled to the
 * last byte or to the last inode by files outside the storage root, and bind
 * mounts. Every mount made here is tracked and undone by `unmountAll()` (in
 * an afterEach/afterAll), lazily (`umount -l`) as a last resort, so a failing
 * test never leaves a mount behind.
 *
 * On tmpfs, as measured here (Linux 6.18): with no byte free a new empty file
 * or directory can still be made (they take an inode, no page) but no byte can
 * be written; with no inode free nothing can be created at all.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { blobBytes } from './tmp.js';

/** What fills a disk: its bytes, its inodes, or both. */
export type Fill = 'bytes' | 'inodes' | 'both';

/** Each way to fill a disk, with the words a test's name gives it. */
export const FILLS: ReadonlyArray<readonly [string, Fill]> = [
  ['no byte free', 'bytes'],
  ['no inode free', 'inodes'],
  ['no byte and no inode free', 'both'],
];

interface FreeSpace {
  /** Bytes an unprivileged writer may still use. */
  bytes: number;
  inodes: number;
}

/** The free bytes and inodes of the filesystem holding `dir`. */
function freeSpace(dir: string): FreeSpace {
  const st = fs.statfsSync(dir);
  return { bytes: st.bavail * st.bsize, inodes: st.ffree };
}

/** Mount points made here that are still mounted, newest last. */
const mounts: string[] = [];
/** Mount point directories made here, removed once unmounted. */
const madeDirs = new Set<string>();

function umount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    // Busy (a process still has a file open there): detach it now, the kernel frees it when the last user goes.
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
}

/** Undoes every mount made here, newest first (bind mounts before the tmpfs they point into), and removes the mount points made here. */
export function unmountAll(): void {
  const errors: unknown[] = [];
  for (const dir of mounts.splice(0).reverse()) {
    try {
      umount(dir);
    } catch (error) {
      errors.push(error);
    }
  }
  for (const dir of madeDirs) {
    try {
      fs.rmdirSync(dir); // empty once unmounted; never a recursive removal that could reach into a mount still there
      madeDirs.delete(dir);
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length > 0) throw new AggregateError(errors, 'unmountAll: some mounts could not be undone');
}

/** True when this process may mount a tmpfs (root with CAP_SYS_ADMIN): tried once, on a throwaway mount point. */
export function canMount(): boolean {
  if (process.getuid?.() !== 0) return false;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'regsweep-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,nr_inodes=16', 'tmpfs', dir], { stdio: 'pipe' });
    umount(dir);
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A tmpfs of `sizeKiB` KiB and `inodes` inodes on a fresh directory; undone by unmountAll(). */
export function mountTmpfs(sizeKiB: number, inodes: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'regsweep-small-disk-'));
  madeDirs.add(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k,nr_inodes=${inodes},mode=0755`, 'tmpfs', dir], { stdio: 'pipe' });
  mounts.push(dir);
  return dir;
}

/** Mounts `source` over `target` (`mount --bind`); undone by unmountAll() before the tmpfs it may point into. */
export function bindMount(source: string, target: string): void {
  execFileSync('mount', ['--bind', source, target], { stdio: 'pipe' });
  mounts.push(target);
}

/** True when `dir` is a mount point in this process's mount namespace. */
export function isMountPoint(dir: string): boolean {
  const real = fs.realpathSync(dir);
  // Field 5 of each line is the mount point, with spaces and the like escaped as \040 (octal).
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === real);
}

function isNoSpace(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOSPC';
}

/**
 * Writes `file` until the disk has no byte left (ENOSPC). Returns the bytes
 * written. The caller's disk must have inodes left for the file itself.
 */
function fillBytes(file: string): number {
  const fd = fs.openSync(file, 'wx');
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let written = 0;
  try {
    for (;;) written += fs.writeSync(fd, chunk); // a short write when the last pages go, then ENOSPC
  } catch (error) {
    if (!isNoSpace(error)) throw error;
  } finally {
    fs.closeSync(fd);
  }
  return written;
}

/** Creates empty files in the new directory `dir` until the disk has no inode left (ENOSPC). Returns how many. */
function fillInodes(dir: string): number {
  fs.mkdirSync(dir);
  let made = 0;
  try {
    for (;;) {
      fs.closeSync(fs.openSync(path.join(dir, String(made)), 'wx'));
      made++;
    }
  } catch (error) {
    if (!isNoSpace(error)) throw error;
  }
  return made;
}

export interface Fillers {
  /** What filled the disk, outside the storage root: one file of bytes, one directory of empty files, or both. */
  paths: string[];
  /** Bytes in the byte filler, and files in the inode filler (0 when not filled so). */
  bytes: number;
  files: number;
}

/**
 * Fills the disk holding `dir` (a directory on it, outside the storage root)
 * by `fill`, and checks it: no byte, no inode, or neither left, and not one
 * more file with one byte in it fits in `probe` (the storage root).
 */
export function fillDisk(dir: string, fill: Fill, probe: string): Fillers {
  const out: Fillers = { paths: [], bytes: 0, files: 0 };
  // Bytes first when both fill: empty files need no page, so the inode filler still fits on a disk with no byte free.
  if (fill === 'bytes' || fill === 'both') {
    out.paths.push(path.join(dir, 'filler-bytes'));
    out.bytes = fillBytes(path.join(dir, 'filler-bytes'));
  }
  if (fill === 'inodes' || fill === 'both') {
    out.paths.push(path.join(dir, 'filler-inodes'));
    out.files = fillInodes(path.join(dir, 'filler-inodes'));
  }
  const free = freeSpace(dir);
  if (fill !== 'inodes' && free.bytes !== 0) throw new Error(`fillDisk: ${free.bytes} bytes still free on ${dir}`);
  if (fill !== 'bytes' && free.inodes !== 0) throw new Error(`fillDisk: ${free.inodes} inodes still free on ${dir}`);
  const probed = probeWrite(probe);
  if (probed !== 'ENOSPC') throw new Error(`fillDisk: a file with one byte in ${probe} ${probed === undefined ? 'still fits' : `fails with ${probed}, not ENOSPC`}`);
  return out;
}

/** The fillers are whole: the byte filler has every byte it was given, the inode filler every file. */
export function fillersIntact(fillers: Fillers): boolean {
  for (const p of fillers.paths) {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (!st) return false;
    if (st.isFile() && st.size !== fillers.bytes) return false;
    if (st.isDirectory() && fs.readdirSync(p).length !== fillers.files) return false;
  }
  return true;
}

/**
 * Whether a new file with one byte in it can be made in `dir`: the errno code
 * it fails with (ENOSPC on a full disk), or undefined when it could, in which
 * case the probe is removed again. An empty file made before the write failed
 * is removed too.
 */
function probeWrite(dir: string): string | undefined {
  const file = path.join(dir, `.probe-${process.pid}`);
  try {
    fs.writeFileSync(file, 'x', { flag: 'wx' });
    fs.rmSync(file);
    return undefined;
  } catch (error) {
    fs.rmSync(file, { force: true });
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

/** Every path below `dir` (not following symbolic links) whose name starts with `prefix`, relative to `dir`. */
export function namesBelow(dir: string, prefix: string): string[] {
  const found: string[] = [];
  const walk = (at: string): void => {
    for (const e of fs.readdirSync(at, { withFileTypes: true })) {
      const p = path.join(at, e.name);
      if (e.name.startsWith(prefix)) found.push(path.relative(dir, p));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return found;
}

/**
 * What a real run on a full disk must show: exit 0, nothing on stderr, only
 * docker/ in the storage root; it swept, freed exactly what it predicted
 * (something), as the tree measured on its own says against `before`; and it
 * left the fillers whole and nothing on the disk but them and the directory
 * `store` that holds the storage root.
 */
export async function expectSweptExactly(run: { code: number | null; stdout: string; stderr: string }, where: { root: string; disk: string; store: string; fillers: Fillers; before: { blobs: number; bytes: number } }): Promise<void> {
  const outcome = { code: run.code, stderr: run.stderr, root: fs.readdirSync(where.root) };
  expect(outcome, `stdout: ${run.stdout.slice(0, 2000)}`).toEqual({ code: 0, stderr: '', root: ['docker'] });
  const report = JSON.parse(run.stdout) as { problems: unknown[]; gc: unknown; predicted: { blobs: number; bytes: number }; freed: unknown };
  expect(report.problems).toEqual([]);
  expect(report.gc).toMatchObject({ ran: true, exitCode: 0 });
  expect(report.predicted.blobs).toBeGreaterThan(0);
  expect(report.freed).toEqual(report.predicted);
  const after = await blobBytes(where.root);
  expect({ blobs: where.before.blobs - after.blobs, bytes: where.before.bytes - after.bytes }).toEqual(report.predicted);
  expect(fillersIntact(where.fillers)).toBe(true);
  expect(fs.readdirSync(where.disk).sort()).toEqual([...where.fillers.paths.map((p) => path.relative(where.disk, p)), where.store].sort());
}
