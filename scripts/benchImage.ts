/**
 * A benchmark tree too large to write file by file (millions of files and as
 * many directories: more than this disk or its page cache holds), as a
 * read-only squashfs image: the tree's tar stream piped into tar2sqfs
 * (squashfs-tools-ng), then loop-mounted. The image is built once and reused
 * while its spec and format are unchanged. Needs root (mount) and tar2sqfs.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { type TreeSpec, type TreeStats, packBenchTree } from './benchTree.js';

/** What this machine lacks to build or mount the image; the benchmark then skips the size. */
export class MissingPrerequisite extends Error {}

export interface BenchImage {
  /** The storage root: the mount point, holding docker/registry/v2. */
  root: string;
  files: number;
  revisions: number;
  unmount(): void;
}

// In RAM the image costs no disk reads, the disk here being slow.
const SHM_DIR = '/dev/shm/regsweep-bench';
// Room for the image (about 1 GB at a million revisions) and a margin.
const SHM_ROOM = 4 * 2 ** 30;

/**
 * lz4 decompresses fastest of the compressors the kernel mounts (zstd takes
 * longer to build, gzip to read). One job: for files this small, handing each
 * to a compressor thread costs more than it saves, and the tree generator
 * needs the other core.
 */
const FORMAT = ['--compressor', 'lz4', '--num-jobs', '1'];

export async function mountBenchImage(dir: string, name: string, spec: TreeSpec): Promise<BenchImage> {
  if (process.getuid?.() !== 0) throw new MissingPrerequisite('mounting the image needs root');
  const imageDir = imageDirFor(dir, name);
  const image = path.join(imageDir, `${name}.sqfs`);
  const marker = path.join(imageDir, `${name}.json`);
  // As /proc/self/mounts spells it, symbolic links resolved.
  const mountPoint = path.join(fs.realpathSync(dir), `${name}.mnt`);
  // A run interrupted before its finally leaves the image mounted; rebuilding under it would corrupt what it reads.
  if (isMountPoint(mountPoint)) unmount(mountPoint);
  const stats = reusable(marker, image, spec) ?? (await build(image, marker, spec));
  mount(image, mountPoint);
  return { root: mountPoint, files: stats.files, revisions: stats.revisions, unmount: () => unmount(mountPoint) };
}

/** /dev/shm when it already holds this image or has room for one, else the bench directory. */
function imageDirFor(benchDir: string, name: string): string {
  if (fs.existsSync(path.join(SHM_DIR, `${name}.json`))) return SHM_DIR;
  let free = 0;
  try {
    const s = fs.statfsSync('/dev/shm');
    free = s.bavail * s.bsize;
  } catch {}
  if (free < SHM_ROOM) return benchDir;
  fs.mkdirSync(SHM_DIR, { recursive: true });
  return SHM_DIR;
}

interface Marker {
  spec: TreeSpec;
  format: string[];
  stats: TreeStats;
}

function reusable(marker: string, image: string, spec: TreeSpec): TreeStats | undefined {
  if (!fs.existsSync(marker) || !fs.existsSync(image)) return undefined;
  const saved = JSON.parse(fs.readFileSync(marker, 'utf8')) as Marker;
  const same = JSON.stringify({ spec: saved.spec, format: saved.format }) === JSON.stringify({ spec, format: FORMAT });
  return same ? saved.stats : undefined;
}

async function build(image: string, marker: string, spec: TreeSpec): Promise<TreeStats> {
  requireTar2sqfs();
  fs.rmSync(marker, { force: true });
  const partial = `${image}.partial`;
  process.stderr.write(`building ${image} (${spec.repositories} repositories × ${spec.tagsPerRepository} tags × ${spec.revisionsPerTag} revisions)…\n`);
  const started = process.hrtime.bigint();
  try {
    const stats = await tarToSquashfs(spec, partial);
    fs.renameSync(partial, image);
    fs.writeFileSync(marker, JSON.stringify({ spec, format: FORMAT, stats } satisfies Marker));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    process.stderr.write(`  built in ${seconds.toFixed(0)} s: ${stats.files.toLocaleString('en')} files, ${(fs.statSync(image).size / 2 ** 30).toFixed(2)} GiB\n`);
    return stats;
  } finally {
    fs.rmSync(partial, { force: true });
  }
}

function requireTar2sqfs(): void {
  try {
    execFileSync('tar2sqfs', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new MissingPrerequisite('building the image needs tar2sqfs (apt-get install squashfs-tools-ng)');
  }
}

/**
 * The tree's tar stream through tar2sqfs into `image`. tar2sqfs exits 0 on an
 * archive cut short, so success is the archive finalized and fully written as
 * well as tar2sqfs's exit status.
 */
async function tarToSquashfs(spec: TreeSpec, image: string): Promise<TreeStats> {
  const child = spawn('tar2sqfs', [...FORMAT, '--quiet', '--no-skip', '--force', image], { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const archive = tar.pack();
  try {
    const [stats, , code] = await Promise.all([packBenchTree(archive, spec), pipeline(archive, child.stdin), exited]);
    if (code === 0) return stats;
  } catch (e) {
    // Stop tar2sqfs before the caller removes its output, or it goes on filling RAM with an unlinked file.
    archive.destroy();
    child.kill();
    await exited.catch(() => undefined);
    // A broken pipe only says that tar2sqfs stopped reading; its own exit says why.
    if (!child.exitCode) throw e;
  }
  throw new Error(`tar2sqfs failed (${child.exitCode ?? child.signalCode}): ${err.slice(0, 400)}`);
}

function mount(image: string, mountPoint: string): void {
  fs.mkdirSync(mountPoint, { recursive: true });
  const started = process.hrtime.bigint();
  try {
    execFileSync('mount', ['-t', 'squashfs', '-o', 'loop,ro', image, mountPoint], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    fs.rmdirSync(mountPoint);
    throw err;
  }
  process.stderr.write(`  mounted ${image} on ${mountPoint} in ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(0)} ms\n`);
}

/** A writable view of a mounted image, for a real run on it: the image stays as it is. */
export interface WritableTree {
  root: string;
  unmount(): void;
}

/**
 * An overlay over the mounted image whose changes go to a tmpfs of their own
 * (no inode limit: a real run's removals leave a whiteout per entry, millions
 * of them). `redirect_dir` lets the run rename directories the image holds,
 * as its swaps do; a hard link (a twin) copies its file up first.
 */
export function writableOverlay(image: BenchImage, dir: string, name: string): WritableTree {
  const base = path.join(fs.realpathSync(dir), `${name}.rw`);
  const changes = `${base}.changes`;
  for (const m of [base, changes]) if (isMountPoint(m)) unmount(m);
  fs.mkdirSync(changes, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16g,nr_inodes=0', 'regsweep-bench', changes], { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    for (const d of ['upper', 'work']) fs.mkdirSync(path.join(changes, d));
    fs.mkdirSync(base, { recursive: true });
    const options = `lowerdir=${image.root},upperdir=${changes}/upper,workdir=${changes}/work,redirect_dir=on`;
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', options, base], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    unmount(changes);
    throw err;
  }
  return {
    root: base,
    unmount: () => {
      unmount(base);
      unmount(changes);
    },
  };
}

function unmount(mountPoint: string): void {
  // `mount -o loop` set the loop device to detach itself on unmount.
  execFileSync('umount', [mountPoint], { stdio: ['ignore', 'ignore', 'pipe'] });
  fs.rmdirSync(mountPoint);
}

function isMountPoint(dir: string): boolean {
  return fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some((line) => line.split(' ')[1] === dir);
}
