/**
 * Can a real run write where it will? It writes its lock, trash and quarantine
 * in the storage root, renames within `docker/registry/v2`, and removes from
 * `blobs` and `repositories` and each repository (garbage-collect as well). Each
 * may be a symlink or a mount point of another filesystem, so each is asked,
 * before the lock, the scan or any pause: a read-only mount otherwise fails
 * halfway, as a raw EROFS after the registry was paused.
 */
import fs from 'node:fs';
import { StorageNotWritableError } from '../../errors.js';
import { errnoOf, isMissing } from '../../util/errno.js';
import { Layout, type PathSpec } from '../layout.js';
import { findRepositories, requireRegistryRoot } from './scan.js';

/** Below the root, where a real run writes. A missing one is not checked: the scan says what the tree lacks. */
const WRITTEN: readonly PathSpec[] = [{ kind: 'v2' }, { kind: 'blobs' }, { kind: 'blobAlgorithm' }, { kind: 'repositories' }];

/** What needs to write: a real run (which a dry run can stand in for), or `--restore`. */
type Purpose = 'run' | 'restore';

function refusal(dir: string, error: unknown, purpose: Purpose): StorageNotWritableError {
  const needs = purpose === 'run' ? 'a real run must write there' : '--restore must write there';
  const orDryRun = purpose === 'run' ? ', or use --dry-run' : '';
  const code = errnoOf(error);
  if (code === 'EROFS') return new StorageNotWritableError(`${dir} is on a read-only filesystem: ${needs}; mount it read-write (or the volume without :ro)${orDryRun}`);
  if (code === 'EACCES') {
    const uid = process.getuid?.();
    return new StorageNotWritableError(`${dir} is not writable by this user${uid === undefined ? '' : ` (uid ${uid})`}: ${needs}; run as the storage's owner or root${orDryRun}`);
  }
  // EPERM (an immutable directory) and the rest: the code says more than a guess would.
  return new StorageNotWritableError(`${dir} is not writable (${code ?? (error as Error).message}): ${needs}; make it writable${orDryRun}`);
}

/**
 * Throws StorageNotWritableError naming the first directory a real run (or a
 * restore) writes and may not: the root, the fixed directories below it, then
 * each repository's (one of them can be another disk too). An access() each.
 * A root that is no registry's is refused first, as the scan would.
 */
export function requireWritableStorage(root: string, purpose: Purpose = 'run'): void {
  requireRegistryRoot(root);
  const layout = new Layout(root);
  const check = (dir: string): void => {
    try {
      fs.accessSync(dir, fs.constants.W_OK);
    } catch (error) {
      if (!isMissing(error)) throw refusal(dir, error, purpose);
    }
  };
  for (const dir of [layout.root, ...WRITTEN.map((spec) => layout.pathFor(spec))]) check(dir);
  // Bad names are the scan's to report; here they are only not checked.
  for (const repo of findRepositories(layout, [])) check(layout.pathFor({ kind: 'repository', name: repo.name }));
}
