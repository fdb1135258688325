/**
 * Walks a whole storage tree, streaming: repositories are scanned (in threads
 * when asked) a bounded number ahead and handed to a visitor one at a time in
 * name order, so memory holds a handful of repositories, never the tree.
 * Blobs come in parts, as their prefix directories are read.
 */
import type { Counts, FoundRepository, Problem } from '../../model.js';
import { Layout } from '../layout.js';
import { type RepositoryScan, type ScanOptions, type TreeSource, type TreeVisitor, type WalkResult, visitRepository } from '../source.js';
import { blobPrefixes, findRepositories } from './scan.js';
import { type ScanPool, openScanPool } from './scanPool.js';

/** Repositories scanned ahead of the one being handed out, per thread: enough to keep threads busy, few enough to bound memory. */
const LOOKAHEAD_PER_THREAD = 8;

/** Blob prefix directories (of 256) in one unit of work. */
const PREFIXES_PER_UNIT = 16;

/**
 * A storage root on a filesystem. `pool`: threads already started
 * (openScanPool), used by every walk instead of starting their own and left
 * open for the caller to close (a run starts them once, while it still
 * resolves its target).
 */
export function filesystemSource(root: string, pool?: ScanPool): TreeSource {
  return { where: new Layout(root).root, walk: (options, visitor) => walkTree(root, options, visitor, pool) };
}

function byPath(a: Problem, b: Problem): number {
  return (a.path ?? '') < (b.path ?? '') ? -1 : 1;
}

/** Reads the blob prefix directories in units; each part goes to the visitor, its problems into `problems`. */
function walkBlobs(pool: ScanPool, root: string, recentAfter: number, visitor: TreeVisitor, problems: Problem[]): Promise<void> {
  const prefixes = blobPrefixes(root);
  const units: Array<Promise<void>> = [];
  for (let i = 0; i < prefixes.length; i += PREFIXES_PER_UNIT) {
    units.push(
      pool.blobs(root, prefixes.slice(i, i + PREFIXES_PER_UNIT), recentAfter).then((part) => {
        problems.push(...part.problems);
        visitor.blobs(part);
      }),
    );
  }
  return Promise.all(units).then(() => undefined);
}

/** Scans the repositories through the pool, a bounded number ahead, and hands them out in name order. */
function walkRepositories(pool: ScanPool, root: string, found: readonly FoundRepository[], options: ScanOptions, visitor: TreeVisitor, counts: Counts): Promise<void> {
  const phase = options.phase ?? 'scan';
  return new Promise<void>((resolve, reject) => {
    const ready = new Map<number, RepositoryScan>();
    let submitted = 0;
    let handed = 0;
    let failed = false;
    const fail = (error: unknown): void => {
      failed = true;
      reject(error);
    };
    const handOut = (): void => {
      try {
        while (!failed && ready.has(handed)) {
          const scan = ready.get(handed) as RepositoryScan;
          ready.delete(handed++);
          visitRepository(scan, counts, visitor);
          options.onProgress?.({ phase, done: handed, total: found.length, unit: 'repositories' });
        }
      } catch (error) {
        fail(error);
        return;
      }
      if (failed) return;
      while (submitted < found.length && submitted - handed < pool.threads * LOOKAHEAD_PER_THREAD) {
        const index = submitted++;
        pool.repository(root, found[index] as FoundRepository, options.times ?? false).then((scanned) => {
          ready.set(index, scanned);
          handOut();
        }, fail);
      }
      if (handed === found.length) resolve();
    };
    handOut();
  });
}

/**
 * Walks the tree. Returns the counts of repositories, tags and manifests, and
 * the problems outside any repository (blob problems listed by path, since
 * blob parts arrive in any order and two runs must read alike).
 */
export async function walkTree(root: string, options: ScanOptions, visitor: TreeVisitor, started?: ScanPool): Promise<WalkResult> {
  const layout = new Layout(root);
  const treeProblems: Problem[] = [];
  const found = findRepositories(layout, treeProblems);
  visitor.found?.(found);
  const pool = started ?? openScanPool(Math.max(1, Math.min(options.concurrency ?? 1, found.length)));
  const counts: Counts = { repositories: 0, tags: 0, manifests: 0 };
  const blobProblems: Problem[] = [];
  try {
    // Both awaited together, so a failure in either is never an unhandled rejection.
    await Promise.all([walkRepositories(pool, layout.root, found, options, visitor, counts), walkBlobs(pool, layout.root, options.recentAfter ?? Infinity, visitor, blobProblems)]);
  } finally {
    if (pool !== started) await pool.close();
  }
  return { counts, problems: [...treeProblems, ...blobProblems.sort(byPath)] };
}
