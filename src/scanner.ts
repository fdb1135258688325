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
  digestFromHex,
  isRepositoryName,
  isTagName,
  parseDigest,
} from './layout.js';
import { UsageError } from './errors.js';
import { ManifestError, type ParsedManifest, parseManifest } from './manifest.js';
import type { ProgressSink } from './progress.js';

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
  /** Worker threads (default 1: this thread alone). */
  concurrency?: number;
  /** Also read push times (tag retention rules need them; they cost a stat per link). */
  times?: boolean;
  onProgress?: ProgressSink;
  phase?: 'scan' | 'rescan';
}


function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Directory entries, or [] when the directory does not exist (an empty repository has no revisions dir). */
function entries(dir: string): Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
}

type LinkRead = { digest: Digest } | { missing: true } | { corrupt: string };

function readLink(file: string): LinkRead {
  let content: string;
  try {
    content = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (isMissing(error)) return { missing: true };
    throw error;
  }
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

function scanRevisions(layout: Layout, repo: RepositoryState): void {
  const dir = layout.pathFor({ kind: 'revisions', name: repo.name });
  for (const entry of entries(dir)) {
    const where = path.join(dir, entry.name);
    const digest = digestFromHex(entry.name);
    if (!entry.isDirectory() || !digest) {
      repo.problems.push({ repository: repo.name, path: where, message: 'unexpected entry among revisions', blocksGc: true });
      continue;
    }
    const link = readLink(layout.pathFor({ kind: 'revisionLink', name: repo.name, digest }));
    if ('missing' in link) {
      // garbage-collect only enumerates files named exactly `link`; a directory without one is ignored by it too.
      continue;
    }
    if ('corrupt' in link) {
      repo.problems.push({ repository: repo.name, path: where, message: `revision link ${describeCorrupt(link.corrupt)}`, blocksGc: true });
      continue;
    }
    if (link.digest !== digest) {
      repo.problems.push({ repository: repo.name, path: where, message: `revision link names ${link.digest}, not the digest of its directory`, blocksGc: true });
      continue;
    }
    repo.revisions.push(digest);
  }
  repo.revisions.sort();
}

function mtimeOf(file: string): number | undefined {
  return fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs;
}

function scanTags(layout: Layout, repo: RepositoryState, times: boolean): void {
  const dir = layout.pathFor({ kind: 'tags', name: repo.name });
  let list: Dirent[];
  try {
    list = fs.readdirSync(dir, { withFileTypes: true });
    repo.hasTagsDir = true;
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  for (const entry of list.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const where = path.join(dir, entry.name);
    if (!entry.isDirectory() || !isTagName(entry.name)) {
      repo.problems.push({ repository: repo.name, path: where, message: 'unexpected entry among tags' });
      continue;
    }
    const tag: TagState = { name: entry.name, index: [] };
    const current = readLink(layout.pathFor({ kind: 'tagCurrentLink', name: repo.name, tag: tag.name }));
    if ('missing' in current) {
      repo.problems.push({ repository: repo.name, path: where, message: `tag ${tag.name} has no current link` });
    } else if ('corrupt' in current) {
      repo.problems.push({ repository: repo.name, path: where, message: `current link of tag ${tag.name} ${describeCorrupt(current.corrupt)}` });
    } else {
      tag.current = current.digest;
      if (times) tag.pushedMs = mtimeOf(layout.pathFor({ kind: 'tagCurrentLink', name: repo.name, tag: tag.name }));
    }
    const indexDir = layout.pathFor({ kind: 'tagIndex', name: repo.name, tag: tag.name });
    for (const item of entries(indexDir)) {
      const digest = digestFromHex(item.name);
      const itemPath = path.join(indexDir, item.name);
      if (!item.isDirectory() || !digest) {
        repo.problems.push({ repository: repo.name, path: itemPath, message: `unexpected entry in the index of tag ${tag.name}` });
        continue;
      }
      const link = readLink(layout.pathFor({ kind: 'tagIndexEntryLink', name: repo.name, tag: tag.name, digest }));
      if ('missing' in link) continue;
      if ('corrupt' in link || link.digest !== digest) {
        const what = 'corrupt' in link ? describeCorrupt(link.corrupt) : `names ${link.digest}, not the digest of its directory`;
        repo.problems.push({ repository: repo.name, path: itemPath, message: `index link of tag ${tag.name} ${what}` });
        continue;
      }
      tag.index.push(digest);
      if (times) {
        const mtime = mtimeOf(layout.pathFor({ kind: 'tagIndexEntryLink', name: repo.name, tag: tag.name, digest }));
        if (mtime !== undefined) (tag.indexTimes ??= {})[digest] = mtime;
      }
    }
    tag.index.sort();
    repo.tags.push(tag);
  }
}

export type ManifestRead = { manifest: ParsedManifest } | { missing: true } | { error: string };

function readManifest(layout: Layout, digest: Digest): ManifestRead {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(layout.pathFor({ kind: 'blobData', digest }));
  } catch (error) {
    if (isMissing(error)) return { missing: true };
    return { error: (error as Error).message };
  }
  try {
    return { manifest: parseManifest(raw, digest) };
  } catch (error) {
    if (error instanceof ManifestError) return { error: error.message };
    throw error;
  }
}

/** Blobs under some of the 256 prefix directories, with the size of each one's data. */
export function scanBlobPrefixes(root: string, prefixes: readonly string[]): { blobs: Array<[Digest, number]>; problems: Problem[] } {
  const base = new Layout(root).pathFor({ kind: 'blobAlgorithm' });
  const blobs: Array<[Digest, number]> = [];
  const problems: Problem[] = [];
  for (const prefix of prefixes) {
    const prefixDir = path.join(base, prefix);
    for (const entry of entries(prefixDir)) {
      const digest = digestFromHex(entry.name);
      const data = path.join(prefixDir, entry.name, 'data');
      // No data file: garbage-collect does not count it as a blob either.
      const size = fs.statSync(data, { throwIfNoEntry: false })?.size;
      if (size === undefined) continue;
      if (!digest || entry.name.slice(0, 2) !== prefix) {
        problems.push({ path: data, message: 'blob data at an unexpected path; garbage-collect aborts on it', blocksGc: true });
        continue;
      }
      blobs.push([digest, size]);
    }
  }
  return { blobs, problems };
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
  const layout = new Layout(root);
  const repo: RepositoryState = { ...found, hasTagsDir: false, tags: [], revisions: [], problems: [] };
  scanRevisions(layout, repo);
  scanTags(layout, repo, times);
  if (repo.hasManifests && !repo.hasLayers && repo.revisions.length > 0) {
    repo.problems.push({
      repository: repo.name,
      message: 'has manifests but no _layers: registry 2.x garbage-collect does not see it and would delete its blobs, 3.x aborts',
      blocksGc: true,
    });
  }
  return { repo, manifests: repo.revisions.map((digest) => [digest, readManifest(layout, digest)]) };
}

/** Runs the units of work, in worker threads when asked for more than one. */
export interface ScanPool {
  repository(found: FoundRepository, times: boolean): Promise<RepositoryScan>;
  blobs(prefixes: string[]): Promise<{ blobs: Array<[Digest, number]>; problems: Problem[] }>;
  close(): Promise<void>;
}

function inlinePool(root: string): ScanPool {
  return {
    repository: async (found, times) => scanRepository(root, found, times),
    blobs: async (prefixes) => scanBlobPrefixes(root, prefixes),
    close: async () => {},
  };
}

export async function scan(root: string, options: ScanOptions = {}): Promise<Inventory> {
  const layout = new Layout(root);
  const problems: Problem[] = [];
  const found = findRepositories(layout, problems);
  const phase = options.phase ?? 'scan';
  const workers = Math.min(options.concurrency ?? 1, found.length);
  const pool = workers > 1 ? await (await import('./scanPool.js')).workerPool(layout.root, workers) : inlinePool(layout.root);
  let scanned = 0;
  let scans: RepositoryScan[];
  let blobParts: Array<{ blobs: Array<[Digest, number]>; problems: Problem[] }>;
  try {
    const prefixes = blobPrefixes(layout.root);
    const chunks: string[][] = [];
    for (let i = 0; i < prefixes.length; i += 16) chunks.push(prefixes.slice(i, i + 16));
    // Both awaited together, so a failure in either is never an unhandled rejection.
    [scans, blobParts] = await Promise.all([
      Promise.all(
        found.map(async (f) => {
          const result = await pool.repository(f, options.times ?? false);
          options.onProgress?.({ phase, done: ++scanned, total: found.length, unit: 'repositories' });
          return result;
        }),
      ),
      Promise.all(chunks.map((c) => pool.blobs(c))),
    ]);
  } finally {
    await pool.close();
  }

  // Each digest string once: results arrive as copies (and JSON.parse makes a string per occurrence),
  // and a digest is named by its blob, its revision links, tag histories and every manifest that uses it.
  const canonical = new Map<string, Digest>();
  const intern = (d: Digest): Digest => {
    const known = canonical.get(d);
    if (known) return known;
    canonical.set(d, d);
    return d;
  };
  const blobs = new Map<Digest, number>();
  for (const part of blobParts) {
    for (const [digest, size] of part.blobs) blobs.set(intern(digest), size);
    problems.push(...part.problems);
  }
  const repositories = scans.map((s) => s.repo);
  const manifests = new Map<Digest, ParsedManifest>();
  for (const { repo, manifests: reads } of scans) {
    repo.revisions = repo.revisions.map(intern);
    for (const tag of repo.tags) {
      tag.index = tag.index.map(intern);
      if (tag.current) tag.current = intern(tag.current);
    }
    for (const [digest, read] of reads) {
      if ('manifest' in read) {
        const m = read.manifest;
        const references = m.references.map(intern);
        manifests.set(intern(digest), {
          ...m,
          digest: intern(m.digest),
          references,
          children: m.kind === 'index' ? references : m.children,
          ...(m.subject ? { subject: intern(m.subject) } : {}),
        });
      } else if ('missing' in read) {
        // garbage-collect skips a revision whose blob is gone; anything that needs it is already broken.
        repo.problems.push({ repository: repo.name, message: `manifest ${digest} is linked but its blob is missing` });
      } else {
        repo.problems.push({ repository: repo.name, message: `manifest ${digest} is unreadable: ${read.error}`, blocksGc: true });
      }
    }
  }
  options.onProgress?.({ phase, done: blobs.size, unit: 'blobs' });
  return { root: layout.root, repositories, manifests, blobs, problems };
}

export interface Totals {
  repositories: number;
  tags: number;
  manifests: number;
  blobs: number;
  bytes: number;
}

export function totalsOf(inventory: Inventory): Totals {
  let bytes = 0;
  for (const size of inventory.blobs.values()) bytes += size;
  return {
    repositories: inventory.repositories.length,
    tags: inventory.repositories.reduce((n, r) => n + r.tags.length, 0),
    manifests: inventory.repositories.reduce((n, r) => n + r.revisions.length, 0),
    blobs: inventory.blobs.size,
    bytes,
  };
}
