/**
 * The pull index on a filesystem: `<root>/.regsweep-pulls`, beside docker/.
 *
 * A write never leaves a half index where the last whole one was: the text
 * goes to a temp file in the root (same directory, so the same filesystem),
 * is fsynced, renamed over the index (atomic), and the directory is fsynced so
 * the rename survives a power loss. A run killed mid-write leaves its temp
 * file and the previous index; the next write removes such temps.
 *
 * A root this process may not write (a dry run from a read-only mount, a
 * user that is not the storage's owner) is not an error: the index is read,
 * not written, and the caller reports that. A write that fails (a full disk)
 * leaves the previous index and says why, without failing the run.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { RegsweepError } from '../../errors.js';
import { errnoOf, errnoText, isMissing } from '../../util/errno.js';
import { failpoint } from '../../util/failpoint.js';
import { Layout } from '../layout.js';
import { PULL_INDEX_NAME, type PullIndexWrite } from '../pullIndexStore.js';

const TEMP_PREFIX = `${PULL_INDEX_NAME}.tmp-`;
/** A temp whose writer may still run (its pid is alive here, or it is in another pid namespace) is left alone this long. */
const STALE_TEMP_MS = 10 * 60_000;
/** What open(2) and rename(2) answer where this process may not write. */
const NOT_WRITABLE = new Set(['EROFS', 'EACCES', 'EPERM']);

function indexPath(root: string): string {
  return path.join(new Layout(root).root, PULL_INDEX_NAME);
}

/** The index's text, or undefined when there is none yet. Throws RegsweepError when it is there but cannot be read. */
export async function readPullIndexFile(root: string): Promise<string | undefined> {
  const file = indexPath(root);
  try {
    return await fs.readFile(file, 'utf8');
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw new RegsweepError(`cannot read the pull index ${file}: ${errnoText(error)}`, { cause: error });
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: a process of another user, alive.
    return errnoOf(error) === 'EPERM';
  }
}

/**
 * Temps a killed write left: their pid is gone, or they are old. A writer in
 * another pid namespace whose pid is free here loses its temp, and with it
 * that one write ('failed'): it writes again on its next run.
 */
async function removeStaleTemps(dir: string, own: string): Promise<void> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(TEMP_PREFIX) || path.join(dir, name) === own) continue;
    const file = path.join(dir, name);
    const pid = Number(/^(\d+)-/.exec(name.slice(TEMP_PREFIX.length))?.[1]);
    const mtime = (await fs.stat(file).catch(() => undefined))?.mtimeMs ?? 0;
    if (!Number.isInteger(pid) || !pidAlive(pid) || Date.now() - mtime > STALE_TEMP_MS) await fs.rm(file, { force: true }).catch(() => {});
  }
}

/** The directory's entry for the rename on disk; a filesystem that cannot sync a directory (EINVAL) has nothing more to do. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync().catch((error: unknown) => {
      if (errnoOf(error) !== 'EINVAL') throw error;
    });
  } finally {
    await handle.close();
  }
}

function outcome(error: unknown, file: string): PullIndexWrite {
  if (NOT_WRITABLE.has(errnoOf(error) ?? '')) return { state: 'read-only' };
  return { state: 'failed', problem: `cannot write the pull index ${file}: ${errnoText(error)}` };
}

/** Writes the index whole (temp, fsync, rename, fsync of the root) or not at all. */
export async function writePullIndexFile(root: string, text: string): Promise<PullIndexWrite> {
  const dir = new Layout(root).root;
  const file = path.join(dir, PULL_INDEX_NAME);
  const temp = path.join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(temp, 'wx', 0o644);
  } catch (error) {
    return outcome(error, file);
  }
  await removeStaleTemps(dir, temp);
  try {
    const bytes = Buffer.from(text, 'utf8');
    const half = bytes.length >> 1;
    await handle.writeFile(bytes.subarray(0, half));
    failpoint('pull-index-write');
    await handle.writeFile(bytes.subarray(half));
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(temp, file);
    await syncDirectory(dir);
    return { state: 'written' };
  } catch (error) {
    await handle?.close().catch(() => {});
    await fs.rm(temp, { force: true }).catch(() => {});
    return outcome(error, file);
  }
}
