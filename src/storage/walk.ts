/**
 * Walks a whole storage tree, streaming: repositories are scanned (in threads
 * when asked) a bounded number ahead and handed to a visitor one at a time in
 * name order, so memory holds a handful of repositories, never the tree.
 * Blobs come in parts, as their prefix directories are read.
 */
import type { BlobPart, Counts, Digest, FoundRepository, ParsedManifest, Phase, Problem, ProgressSink, RepositoryState } from '../model.js';
import { Layout } from './layout.js';
import { type RepositoryScan, blobPrefixes, findRepositories } from './scan.js';
import { type ScanPool, openScanPool } from './scanPool.js';

export interface ScanOptions {
  /** Threads that read the tree, this one included (default 1: this thread alone). */
  concurrency?: number;
  /**
   * Threads already started (openScanPool), used instead of starting them for
   * this walk and left open for the caller to close: a run starts them once,
   * while it still resolves its target, and every walk reuses them.
   */
  pool?: ScanPool;
  /** Also read push times (tag retention rules need them; they cost a stat per link). */
  times?: boolean;
  onProgress?: ProgressSink;
  phase?: Extract<Phase, 'scan' | 'rescan'>;
  /** Note blobs whose data is newer than this (ms since the epoch): regsweep's own sweep leaves them. */
  recentAfter?: number;
}

/** A scanned repository with its manifests read: the ones that could not be read are problems of the repository. */
interface SettledRepository {
  repo: RepositoryState;
  manifests: Map<Digest, ParsedManifest>;
}

/** What a walk over the tree hands out, as it goes. */
export interface TreeVisitor {
  /** Every repository, before any is scanned. */
  found?(repositories: readonly FoundRepository[]): void;
  /** Each repository once, in name order; it may be forgotten afterwards. */
  repository(settled: SettledRepository): void;
  /** Blobs of some prefix directories, in no particular order. Their problems are in the walk's result. */
  blobs(part: BlobPart): void;
}

export interface WalkResult {
  counts: Counts;
  /** Problems outside any repository: bad repository names, then blobs at unexpected paths, by path. */
  problems: Problem[];
}

/** Repositories scanned ahead of the one being handed out, per thread: enough to keep threads busy, few enough to bound memory. */
const LOOKAHEAD_PER_THREAD = 8;

/** Blob prefix directories (of 256) in one unit of work. */
const PREFIXES_PER_UNIT = 16;

function settle({ repo, manifests: reads }: RepositoryScan): SettledRepository {
  const manifests = new Map<Digest, ParsedManifest>();
  for (const [digest, read] of reads) {
    if ('manifest' in read) {
      manifests.set(digest, read.manifest);
    } else if ('missing' in read) {
      // garbage-collect skips a revision whose blob is gone; anything that needs it is already broken.
      repo.problems.push({ repository: repo.name, message: `manifest ${digest} is linked but its blob is missing` });
    } else {
      repo.problems.push({ repository: repo.name, message: `manifest ${digest} is unreadable: ${read.error}`, blocksGc: true });
    }
  }
  return { repo, manifests };
}

/** Hands a scanned repository to the visitor, counted: in name order, whichever storage it was read from. */
export function visitRepository(scan: RepositoryScan, counts: Counts, visitor: TreeVisitor): void {
  const settled = settle(scan);
  counts.repositories++;
  counts.tags += settled.repo.tags.length;
  counts.manifests += settled.repo.revisions.length;
  visitor.repository(settled);
}

/** A storage tree as the planner reads it: a filesystem root or a bucket, walked the same way. */
export interface TreeSource {
  /** Where the tree is, as reports and messages name it. */
  readonly where: string;
  walk(options: ScanOptions, visitor: TreeVisitor): Promise<WalkResult>;
}

/** A storage root on a filesystem. */
export function filesystemSource(root: string): TreeSource {
  return { where: new Layout(root).root, walk: (options, visitor) => walkTree(root, options, visitor) };
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
export async function walkTree(root: string, options: ScanOptions, visitor: TreeVisitor): Promise<WalkResult> {
  const layout = new Layout(root);
  const treeProblems: Problem[] = [];
  const found = findRepositories(layout, treeProblems);
  visitor.found?.(found);
  const pool = options.pool ?? openScanPool(Math.max(1, Math.min(options.concurrency ?? 1, found.length)));
  const counts: Counts = { repositories: 0, tags: 0, manifests: 0 };
  const blobProblems: Problem[] = [];
  try {
    // Both awaited together, so a failure in either is never an unhandled rejection.
    await Promise.all([walkRepositories(pool, layout.root, found, options, visitor, counts), walkBlobs(pool, layout.root, options.recentAfter ?? Infinity, visitor, blobProblems)]);
  } finally {
    if (pool !== options.pool) await pool.close();
  }
  return { counts, problems: [...treeProblems, ...blobProblems.sort(byPath)] };
}
