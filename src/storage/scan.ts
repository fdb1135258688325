/**
 * Reads a storage root into an Inventory: every repository (nested ones too),
 * its tags and revisions, the manifests those revisions name, and every blob
 * with its size. It only reads; what it cannot understand becomes a Problem
 * attached to the repository, never a guess.
 */
import type { Dirent } from 'node:fs';
import fs from 'node:fs';
import path from 'node:path';
import {
  type Digest,
  Layout,
  ScanPaths,
  digestFromHex,
  isRepositoryName,
  isTagName,
  parseDigest,
} from './layout.js';
import { UsageError } from '../errors.js';
import type { BlobPart } from '../plan/globalMark.js';
import { ManifestError, type ParsedManifest, parseManifest } from './manifest.js';
import type { ProgressSink } from '../progress.js';

export interface Problem {
  repository?: string;
  path?: string;
  message: string;
  /** The registry's garbage-collect would abort, or mis-mark, on this: collecting is unsafe until it is fixed. */
  blocksGc?: boolean;
}

export interface TagState {
  name: string;
  /** The digest of current/link; undefined when it is missing or corrupt (see problems). */
  current?: Digest;
  /** Digests in the tag's index/ (its history, the current one included). */
  index: Digest[];
  /** With ScanOptions.times: when the tag was last pushed (mtime of current/link). */
  pushedMs?: number;
  /** With ScanOptions.times: when the tag got each digest of its index (mtime of its link). */
  indexTimes?: Record<string, number>;
}

export interface RepositoryState {
  name: string;
  hasLayers: boolean;
  hasManifests: boolean;
  hasTagsDir: boolean;
  tags: TagState[];
  /** Manifests linked into the repository (`_manifests/revisions`). */
  revisions: Digest[];
  /** Why this repository must not be touched; empty when it is understood. */
  problems: Problem[];
}

export interface Inventory {
  root: string;
  repositories: RepositoryState[];
  /** Every readable manifest that some repository links as a revision. */
  manifests: Map<Digest, ParsedManifest>;
  /** Every blob under blobs/ and the size of its data. */
  blobs: Map<Digest, number>;
  /** Problems outside any one repository. */
  problems: Problem[];
}

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
  phase?: 'scan' | 'rescan';
}


function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** A directory listing, or [] when the directory does not exist (an empty repository has no revisions dir). */
function listOrEmpty<T>(list: () => T[]): T[] {
  try {
    return list();
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
}

function entries(dir: string): Dirent[] {
  return listOrEmpty(() => fs.readdirSync(dir, { withFileTypes: true }));
}

/** Names only, where the type is never looked at: a Dirent each is garbage by the hundred thousand. */
function names(dir: string): string[] {
  return listOrEmpty(() => fs.readdirSync(dir));
}

type LinkRead = { digest: Digest } | { missing: true } | { corrupt: string };

/**
 * One buffer per thread for the small files the scan reads by the hundred
 * thousand. readFileSync costs an fstat and a second read to find the end;
 * one read into a buffer larger than the file finds it at once, since a
 * regular file's read is short only at its end. That is two syscalls of five
 * per file, and the scan is bound by them.
 */
const readBuffer = Buffer.allocUnsafe(64 * 1024);

/** A descriptor to read `file` with, or undefined when it does not exist. */
function openIfExists(file: string): number | undefined {
  try {
    return fs.openSync(file, 'r');
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/**
 * The bytes of a file; undefined when it does not exist. A view of readBuffer
 * when they fit there, valid until the next read; when they fill it, the rest
 * is read through the same descriptor.
 */
function readBytes(file: string): Buffer | undefined {
  const fd = openIfExists(file);
  if (fd === undefined) return undefined;
  try {
    // Position null: from the current offset, so readFileSync(fd) goes on where this read stopped.
    const start = readBuffer.subarray(0, fs.readSync(fd, readBuffer, 0, readBuffer.length, null));
    if (start.length < readBuffer.length) return start;
    return Buffer.concat([start, fs.readFileSync(fd)]);
  } finally {
    fs.closeSync(fd);
  }
}

/** Longer than a link can be: its content is corrupt, and no more of it is needed to say so. */
const LINK_READ_LIMIT = 128;

function readLink(file: string): LinkRead {
  const fd = openIfExists(file);
  if (fd === undefined) return { missing: true };
  let length: number;
  try {
    length = fs.readSync(fd, readBuffer, 0, LINK_READ_LIMIT, null);
  } finally {
    fs.closeSync(fd);
  }
  // Decoded straight from the shared buffer: no Buffer view per link, and there are tens of thousands.
  const content = readBuffer.toString('utf8', 0, length);
  const digest = parseDigest(content);
  return digest ? { digest } : { corrupt: content };
}

function describeCorrupt(content: string): string {
  if (content.length === 0) return 'is empty';
  const shown = JSON.stringify(content.length > 80 ? `${content.slice(0, 80)}…` : content);
  return `holds ${shown}, not a sha256 digest`;
}

/** Refuses (exit 2) a directory that is not a registry root: one that does not hold docker/registry/v2. */
export function requireRegistryRoot(root: string): void {
  if (!fs.statSync(new Layout(root).pathFor({ kind: 'v2' }), { throwIfNoEntry: false })?.isDirectory()) {
    throw new UsageError(`${root} is not a registry storage root (no docker/registry/v2 below it)`);
  }
}

export interface FoundRepository {
  name: string;
  hasLayers: boolean;
  hasManifests: boolean;
}

/**
 * Walks repositories/ for directories holding `_layers` (registry 2.x) or
 * `_manifests` (3.x). `_`-prefixed directories are the registry's own, since
 * no name component can start with `_`; everything else may nest further.
 */
function findRepositories(layout: Layout, problems: Problem[]): FoundRepository[] {
  const found: FoundRepository[] = [];
  const base = layout.pathFor({ kind: 'repositories' });
  const walk = (dir: string, parts: string[]): void => {
    const list = entries(dir);
    const names = new Set(list.filter((e) => e.isDirectory()).map((e) => e.name));
    const hasLayers = names.has('_layers');
    const hasManifests = names.has('_manifests');
    if (parts.length > 0 && (hasLayers || hasManifests)) {
      const name = parts.join('/');
      if (isRepositoryName(name)) {
        found.push({ name, hasLayers, hasManifests });
      } else {
        problems.push({
          path: dir,
          message: `directory ${JSON.stringify(name)} looks like a repository but is not a valid repository name; garbage-collect aborts on it`,
          blocksGc: true,
        });
      }
    }
    // Every other directory is walked, valid name or not: garbage-collect walks it too and may meet a repository below it.
    const children = [...names].filter((n) => !n.startsWith('_')).sort();
    for (const child of children) walk(path.join(dir, child), [...parts, child]);
  };
  walk(base, []);
  return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function scanRevisions(paths: ScanPaths, repo: RepositoryState): void {
  const dir = paths.revisions;
  for (const entry of entries(dir)) {
    const digest = digestFromHex(entry.name);
    if (!entry.isDirectory() || !digest) {
      repo.problems.push({ repository: repo.name, path: ScanPaths.child(dir, entry.name), message: 'unexpected entry among revisions', blocksGc: true });
      continue;
    }
    const link = readLink(paths.revisionLink(digest));
    if ('missing' in link) {
      // garbage-collect only enumerates files named exactly `link`; a directory without one is ignored by it too.
      continue;
    }
    if ('corrupt' in link) {
      repo.problems.push({ repository: repo.name, path: ScanPaths.child(dir, entry.name), message: `revision link ${describeCorrupt(link.corrupt)}`, blocksGc: true });
      continue;
    }
    if (link.digest !== digest) {
      repo.problems.push({ repository: repo.name, path: ScanPaths.child(dir, entry.name), message: `revision link names ${link.digest}, not the digest of its directory`, blocksGc: true });
      continue;
    }
    repo.revisions.push(digest);
  }
  repo.revisions.sort();
}

function mtimeOf(file: string): number | undefined {
  return fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs;
}

function scanTags(paths: ScanPaths, repo: RepositoryState, times: boolean): void {
  const dir = paths.tags;
  let list: Dirent[];
  try {
    list = fs.readdirSync(dir, { withFileTypes: true });
    repo.hasTagsDir = true;
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  for (const entry of list.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!entry.isDirectory() || !isTagName(entry.name)) {
      repo.problems.push({ repository: repo.name, path: ScanPaths.child(dir, entry.name), message: 'unexpected entry among tags' });
      continue;
    }
    const tag: TagState = { name: entry.name, index: [] };
    const where = paths.tag(tag.name);
    const currentLink = ScanPaths.tagCurrentLink(where);
    const current = readLink(currentLink);
    if ('missing' in current) {
      repo.problems.push({ repository: repo.name, path: where, message: `tag ${tag.name} has no current link` });
    } else if ('corrupt' in current) {
      repo.problems.push({ repository: repo.name, path: where, message: `current link of tag ${tag.name} ${describeCorrupt(current.corrupt)}` });
    } else {
      tag.current = current.digest;
      if (times) tag.pushedMs = mtimeOf(currentLink);
    }
    const indexDir = ScanPaths.tagIndex(where);
    for (const item of entries(indexDir)) {
      const digest = digestFromHex(item.name);
      if (!item.isDirectory() || !digest) {
        repo.problems.push({ repository: repo.name, path: ScanPaths.child(indexDir, item.name), message: `unexpected entry in the index of tag ${tag.name}` });
        continue;
      }
      const linkPath = ScanPaths.tagIndexEntryLink(indexDir, digest);
      const link = readLink(linkPath);
      if ('missing' in link) continue;
      if ('corrupt' in link || link.digest !== digest) {
        const what = 'corrupt' in link ? describeCorrupt(link.corrupt) : `names ${link.digest}, not the digest of its directory`;
        repo.problems.push({ repository: repo.name, path: ScanPaths.child(indexDir, item.name), message: `index link of tag ${tag.name} ${what}` });
        continue;
      }
      tag.index.push(digest);
      if (times) {
        const mtime = mtimeOf(linkPath);
        if (mtime !== undefined) (tag.indexTimes ??= {})[digest] = mtime;
      }
    }
    tag.index.sort();
    repo.tags.push(tag);
  }
}

export type ManifestRead = { manifest: ParsedManifest } | { missing: true } | { error: string };

function readManifest(paths: ScanPaths, digest: Digest): ManifestRead {
  let raw: Buffer | undefined;
  try {
    raw = readBytes(paths.blobData(digest));
  } catch (error) {
    return { error: (error as Error).message };
  }
  if (raw === undefined) return { missing: true };
  try {
    return { manifest: parseManifest(raw, digest) };
  } catch (error) {
    if (error instanceof ManifestError) return { error: error.message };
    throw error;
  }
}

/**
 * The blobs of one prefix directory, appended to `hexes` and `sizes`. A
 * function of its own, apart from the packing: V8 optimizes a hot loop while
 * it runs, and code compiled before the packing ever ran was thrown away at
 * the end of every task and compiled again.
 */
function scanPrefix(base: string, prefix: string, hexes: string[], sizes: number[], problems: Problem[]): void {
  const prefixDir = ScanPaths.child(base, prefix);
  // The stat of data below says all that is needed of each entry.
  for (const name of names(prefixDir)) {
    const data = ScanPaths.blobDataIn(prefixDir, name);
    // No data file: garbage-collect does not count it as a blob either.
    const size = fs.statSync(data, { throwIfNoEntry: false })?.size;
    if (size === undefined) continue;
    if (!digestFromHex(name) || name.slice(0, 2) !== prefix) {
      problems.push({ path: data, message: 'blob data at an unexpected path; garbage-collect aborts on it', blocksGc: true });
      continue;
    }
    hexes.push(name);
    sizes.push(size);
  }
}

/** Blobs under some of the 256 prefix directories, with the size of each one's data, packed (32 bytes and a number each). */
export function scanBlobPrefixes(root: string, prefixes: readonly string[]): BlobPart {
  const base = new Layout(root).pathFor({ kind: 'blobAlgorithm' });
  const hexes: string[] = [];
  const sizes: number[] = [];
  const problems: Problem[] = [];
  for (const prefix of prefixes) scanPrefix(base, prefix, hexes, sizes, problems);
  const digests = Buffer.alloc(hexes.length * 32);
  for (let i = 0; i < hexes.length; i++) digests.write(hexes[i] as string, i * 32, 32, 'hex');
  return { digests, sizes: Float64Array.from(sizes), problems };
}

/** The digests and sizes of a BlobPart, as strings. */
export function* blobsIn(part: BlobPart): Generator<[Digest, number]> {
  for (let i = 0; i < part.sizes.length; i++) {
    const hex = Buffer.from(part.digests.buffer, part.digests.byteOffset + i * 32, 32).toString('hex');
    yield [`sha256:${hex}` as Digest, part.sizes[i] as number];
  }
}

export function blobPrefixes(root: string): string[] {
  return entries(new Layout(root).pathFor({ kind: 'blobAlgorithm' }))
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
}

export interface RepositoryScan {
  repo: RepositoryState;
  /** The manifests its revisions name, as read. */
  manifests: Array<[Digest, ManifestRead]>;
}

/** One repository: its revisions and tags, and the manifests its revisions name. The unit of parallel work. */
export function scanRepository(root: string, found: FoundRepository, times: boolean): RepositoryScan {
  const paths = new ScanPaths(new Layout(root), found.name);
  const repo: RepositoryState = { ...found, hasTagsDir: false, tags: [], revisions: [], problems: [] };
  scanRevisions(paths, repo);
  scanTags(paths, repo, times);
  if (repo.hasManifests && !repo.hasLayers && repo.revisions.length > 0) {
    repo.problems.push({
      repository: repo.name,
      message: 'has manifests but no _layers: registry 2.x garbage-collect does not see it and would delete its blobs, 3.x aborts',
      blocksGc: true,
    });
  }
  return { repo, manifests: repo.revisions.map((digest) => [digest, readManifest(paths, digest)]) };
}

/** A unit of scanning work, as the pool queues it and a worker receives it. */
export type ScanWork = { kind: 'repository'; root: string; found: FoundRepository; times: boolean } | { kind: 'blobs'; root: string; prefixes: string[] };

/** Runs one unit in this thread: what a worker does with a message, and what the main thread does with its share. */
export function runScanWork(work: ScanWork): RepositoryScan | BlobPart {
  return work.kind === 'repository' ? scanRepository(work.root, work.found, work.times) : scanBlobPrefixes(work.root, work.prefixes);
}

/** Runs the units of work, in worker threads when asked for more than one. */
export interface ScanPool {
  readonly threads: number;
  repository(root: string, found: FoundRepository, times: boolean): Promise<RepositoryScan>;
  blobs(root: string, prefixes: string[]): Promise<BlobPart>;
  close(): Promise<void>;
}

const inlinePool: ScanPool = {
  threads: 1,
  repository: async (root, found, times) => scanRepository(root, found, times),
  blobs: async (root, prefixes) => scanBlobPrefixes(root, prefixes),
  close: async () => {},
};

/**
 * Threads to scan with: this one, and concurrency − 1 workers. The workers
 * start at once and load their code while the caller goes on, so a run that
 * opens them before resolving its target does not wait for them later.
 */
export async function openScanPool(concurrency: number): Promise<ScanPool> {
  return concurrency > 1 ? (await import('./scanPool.js')).workerPool(concurrency, runScanWork) : inlinePool;
}

/** A scanned repository with its manifests read: the ones that could not be read are problems of the repository. */
export interface SettledRepository {
  repo: RepositoryState;
  manifests: Map<Digest, ParsedManifest>;
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

/** What a walk over the tree hands out, as it goes. */
export interface TreeVisitor {
  /** Every repository, before any is scanned. */
  found?(repositories: readonly FoundRepository[]): void;
  /** Each repository once, in name order; it may be forgotten afterwards. */
  repository(settled: SettledRepository): void;
  /** Blobs of some prefix directories, in no particular order. */
  blobs(part: BlobPart): void;
}

/** Repositories scanned ahead of the one being handed out, per thread: enough to keep threads busy, few enough to bound memory. */
const LOOKAHEAD_PER_THREAD = 8;

/**
 * Walks the tree, streaming: repositories are scanned (in threads when asked)
 * a bounded number ahead and handed to the visitor one at a time in name
 * order, so memory holds a handful of repositories, never the tree. Returns
 * the problems outside any repository that were found while finding them.
 */
export async function walkTree(root: string, options: ScanOptions, visitor: TreeVisitor): Promise<Problem[]> {
  const layout = new Layout(root);
  const problems: Problem[] = [];
  const found = findRepositories(layout, problems);
  visitor.found?.(found);
  const phase = options.phase ?? 'scan';
  const pool = options.pool ?? (await openScanPool(Math.max(1, Math.min(options.concurrency ?? 1, found.length))));
  const threads = pool.threads;
  try {
    const prefixes = blobPrefixes(layout.root);
    const blobWork: Array<Promise<void>> = [];
    for (let i = 0; i < prefixes.length; i += 16) {
      blobWork.push(pool.blobs(layout.root, prefixes.slice(i, i + 16)).then((part) => visitor.blobs(part)));
    }
    const repositories = new Promise<void>((resolve, reject) => {
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
            const scanned = ready.get(handed) as RepositoryScan;
            ready.delete(handed++);
            visitor.repository(settle(scanned));
            options.onProgress?.({ phase, done: handed, total: found.length, unit: 'repositories' });
          }
        } catch (error) {
          fail(error);
          return;
        }
        if (failed) return;
        while (submitted < found.length && submitted - handed < threads * LOOKAHEAD_PER_THREAD) {
          const index = submitted++;
          pool.repository(layout.root, found[index] as FoundRepository, options.times ?? false).then((scanned) => {
            ready.set(index, scanned);
            handOut();
          }, fail);
        }
        if (handed === found.length) resolve();
      };
      handOut();
    });
    // Both awaited together, so a failure in either is never an unhandled rejection.
    await Promise.all([repositories, Promise.all(blobWork)]);
  } finally {
    if (pool !== options.pool) await pool.close();
  }
  return problems;
}

export async function scan(root: string, options: ScanOptions = {}): Promise<Inventory> {
  const layout = new Layout(root);
  // Each digest string once: results arrive as copies (and JSON.parse makes a string per occurrence),
  // and a digest is named by its blob, its revision links, tag histories and every manifest that uses it.
  const canonical = new Map<string, Digest>();
  const intern = (d: Digest): Digest => {
    const known = canonical.get(d);
    if (known) return known;
    canonical.set(d, d);
    return d;
  };
  const repositories: RepositoryState[] = [];
  const manifests = new Map<Digest, ParsedManifest>();
  const blobs = new Map<Digest, number>();
  const blobProblems: Problem[] = [];
  const problems = await walkTree(layout.root, options, {
    repository({ repo, manifests: read }) {
      repo.revisions = repo.revisions.map(intern);
      for (const tag of repo.tags) {
        tag.index = tag.index.map(intern);
        if (tag.current) tag.current = intern(tag.current);
      }
      for (const [digest, m] of read) {
        const references = m.references.map(intern);
        manifests.set(intern(digest), {
          ...m,
          digest: intern(m.digest),
          references,
          children: m.kind === 'index' ? references : m.children,
          ...(m.subject ? { subject: intern(m.subject) } : {}),
        });
      }
      repositories.push(repo);
    },
    blobs(part) {
      for (const [digest, size] of blobsIn(part)) blobs.set(intern(digest), size);
      blobProblems.push(...part.problems);
    },
  });
  // Blob parts arrive in any order; their problems are listed by path so two scans read alike.
  problems.push(...blobProblems.sort((a, b) => ((a.path ?? '') < (b.path ?? '') ? -1 : 1)));
  options.onProgress?.({ phase: options.phase ?? 'scan', done: blobs.size, unit: 'blobs' });
  return { root: layout.root, repositories, manifests, blobs, problems };
}

export interface Totals {
  repositories: number;
  tags: number;
  manifests: number;
  blobs: number;
  bytes: number;
}
