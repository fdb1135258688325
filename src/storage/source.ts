/**
 * A storage tree as the planner reads it, whichever backend holds it: a
 * filesystem root (fs/source.ts) or a bucket (s3/source.ts). A walk hands
 * repositories to a visitor one at a time in name order, and blobs in parts.
 */
import type { BlobPart, Counts, Digest, FoundRepository, ParsedManifest, Phase, ProgressSink, Problem, RepositoryState } from '../model.js';
import type { ManifestRead } from './manifest.js';

/** A repository as a backend read it: its state, and the manifests its revisions name, as read. */
export interface RepositoryScan {
  repo: RepositoryState;
  manifests: Array<[Digest, ManifestRead]>;
}

export interface ScanOptions {
  /** Threads (a filesystem) or requests in flight (a bucket) that read the tree; a backend says its default. */
  concurrency?: number;
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

/** Requests a storage counts (a bucket's), in all and by operation. */
export interface RequestCount {
  total: number;
  byOperation: Record<string, number>;
}
