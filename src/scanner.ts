/**
 * Reads a storage root into an Inventory: every repository (nested ones too),
 * its tags and revisions, the manifests those revisions name, and every blob
 * with its size. It only reads; what it cannot understand becomes a Problem
 * attached to the repository, never a guess.
 */
import type { Dirent } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { mapLimit } from './concurrency.js';
import {
  type Digest,
  Layout,
  digestFromHex,
  isRepositoryName,
  isTagName,
  parseDigest,
} from './layout.js';
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
  concurrency?: number;
  /** Also read push times (tag retention rules need them; they cost a stat per link). */
  times?: boolean;
  onProgress?: ProgressSink;
  phase?: 'scan' | 'rescan';
}

export const DEFAULT_CONCURRENCY = 16;

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Directory entries, or [] when the directory does not exist (an empty repository has no revisions dir). */
async function entries(dir: string): Promise<Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
}

type LinkRead = { digest: Digest } | { missing: true } | { corrupt: string };

async function readLink(file: string): Promise<LinkRead> {
  let content: string;
  try {
    content = await fs.readFile(file, 'latin1');
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

/** Is `dir` a registry root (it holds docker/registry/v2)? */
export async function isRegistryRoot(root: string): Promise<boolean> {
  try {
    return (await fs.stat(new Layout(root).pathFor({ kind: 'v2' }))).isDirectory();
  } catch {
    return false;
  }
}

interface FoundRepository {
  name: string;
  hasLayers: boolean;
  hasManifests: boolean;
}

/**
 * Walks repositories/ for directories holding `_layers` (registry 2.x) or
 * `_manifests` (3.x). `_`-prefixed directories are the registry's own, since
 * no name component can start with `_`; everything else may nest further.
 */
async function findRepositories(layout: Layout, problems: Problem[]): Promise<FoundRepository[]> {
  const found: FoundRepository[] = [];
  const base = layout.pathFor({ kind: 'repositories' });
  const walk = async (dir: string, parts: string[]): Promise<void> => {
    const list = await entries(dir);
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
    await Promise.all(children.map((child) => walk(path.join(dir, child), [...parts, child])));
  };
  await walk(base, []);
  return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function scanRevisions(layout: Layout, repo: RepositoryState): Promise<void> {
  const dir = layout.pathFor({ kind: 'revisions', name: repo.name });
  for (const entry of await entries(dir)) {
    const where = path.join(dir, entry.name);
    const digest = digestFromHex(entry.name);
    if (!entry.isDirectory() || !digest) {
      repo.problems.push({ repository: repo.name, path: where, message: 'unexpected entry among revisions', blocksGc: true });
      continue;
    }
    const link = await readLink(layout.pathFor({ kind: 'revisionLink', name: repo.name, digest }));
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

async function mtimeOf(file: string): Promise<number | undefined> {
  try {
    return (await fs.stat(file)).mtimeMs;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

async function scanTags(layout: Layout, repo: RepositoryState, times: boolean): Promise<void> {
  const dir = layout.pathFor({ kind: 'tags', name: repo.name });
  let list: Dirent[];
  try {
    list = await fs.readdir(dir, { withFileTypes: true });
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
    const current = await readLink(layout.pathFor({ kind: 'tagCurrentLink', name: repo.name, tag: tag.name }));
    if ('missing' in current) {
      repo.problems.push({ repository: repo.name, path: where, message: `tag ${tag.name} has no current link` });
    } else if ('corrupt' in current) {
      repo.problems.push({ repository: repo.name, path: where, message: `current link of tag ${tag.name} ${describeCorrupt(current.corrupt)}` });
    } else {
      tag.current = current.digest;
      if (times) tag.pushedMs = await mtimeOf(layout.pathFor({ kind: 'tagCurrentLink', name: repo.name, tag: tag.name }));
    }
    const indexDir = layout.pathFor({ kind: 'tagIndex', name: repo.name, tag: tag.name });
    for (const item of await entries(indexDir)) {
      const digest = digestFromHex(item.name);
      const itemPath = path.join(indexDir, item.name);
      if (!item.isDirectory() || !digest) {
        repo.problems.push({ repository: repo.name, path: itemPath, message: `unexpected entry in the index of tag ${tag.name}` });
        continue;
      }
      const link = await readLink(layout.pathFor({ kind: 'tagIndexEntryLink', name: repo.name, tag: tag.name, digest }));
      if ('missing' in link) continue;
      if ('corrupt' in link || link.digest !== digest) {
        const what = 'corrupt' in link ? describeCorrupt(link.corrupt) : `names ${link.digest}, not the digest of its directory`;
        repo.problems.push({ repository: repo.name, path: itemPath, message: `index link of tag ${tag.name} ${what}` });
        continue;
      }
      tag.index.push(digest);
      if (times) {
        const mtime = await mtimeOf(layout.pathFor({ kind: 'tagIndexEntryLink', name: repo.name, tag: tag.name, digest }));
        if (mtime !== undefined) (tag.indexTimes ??= {})[digest] = mtime;
      }
    }
    tag.index.sort();
    repo.tags.push(tag);
  }
}

type ManifestRead = { manifest: ParsedManifest } | { missing: true } | { error: string };

async function readManifest(layout: Layout, digest: Digest): Promise<ManifestRead> {
  let raw: Buffer;
  try {
    raw = await fs.readFile(layout.pathFor({ kind: 'blobData', digest }));
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

async function scanBlobs(layout: Layout, concurrency: number, problems: Problem[]): Promise<Map<Digest, number>> {
  const blobs = new Map<Digest, number>();
  const base = layout.pathFor({ kind: 'blobAlgorithm' });
  const prefixes = (await entries(base)).filter((e) => e.isDirectory()).map((e) => e.name);
  await mapLimit(prefixes, concurrency, async (prefix) => {
    const prefixDir = path.join(base, prefix);
    for (const entry of await entries(prefixDir)) {
      const digest = digestFromHex(entry.name);
      const data = path.join(prefixDir, entry.name, 'data');
      let size: number;
      try {
        size = (await fs.stat(data)).size;
      } catch (error) {
        if (isMissing(error)) continue; // no data file: garbage-collect does not count it as a blob either
        throw error;
      }
      if (!digest || entry.name.slice(0, 2) !== prefix) {
        problems.push({ path: data, message: 'blob data at an unexpected path; garbage-collect aborts on it', blocksGc: true });
        continue;
      }
      blobs.set(digest, size);
    }
  });
  return blobs;
}

export async function scan(root: string, options: ScanOptions = {}): Promise<Inventory> {
  const layout = new Layout(root);
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const problems: Problem[] = [];
  const found = await findRepositories(layout, problems);
  const phase = options.phase ?? 'scan';
  let scanned = 0;
  const repositories = await mapLimit(found, concurrency, async (f): Promise<RepositoryState> => {
    const repo: RepositoryState = { ...f, hasTagsDir: false, tags: [], revisions: [], problems: [] };
    await Promise.all([scanRevisions(layout, repo), scanTags(layout, repo, options.times ?? false)]);
    if (repo.hasManifests && !repo.hasLayers && repo.revisions.length > 0) {
      repo.problems.push({
        repository: repo.name,
        message: 'has manifests but no _layers: registry 2.x garbage-collect does not see it and would delete its blobs, 3.x aborts',
        blocksGc: true,
      });
    }
    options.onProgress?.({ phase, done: ++scanned, total: found.length, unit: 'repositories' });
    return repo;
  });

  const wanted = [...new Set(repositories.flatMap((r) => r.revisions))].sort();
  const reads = await mapLimit(wanted, concurrency, (digest) => readManifest(layout, digest));
  const manifests = new Map<Digest, ParsedManifest>();
  const unreadable = new Map<Digest, ManifestRead>();
  wanted.forEach((digest, i) => {
    const read = reads[i] as ManifestRead;
    if ('manifest' in read) manifests.set(digest, read.manifest);
    else unreadable.set(digest, read);
  });
  for (const repo of repositories) {
    for (const digest of repo.revisions) {
      const read = unreadable.get(digest);
      if (!read) continue;
      if ('missing' in read) {
        // garbage-collect skips a revision whose blob is gone; anything that needs it is already broken.
        repo.problems.push({ repository: repo.name, message: `manifest ${digest} is linked but its blob is missing` });
      } else if ('error' in read) {
        repo.problems.push({ repository: repo.name, message: `manifest ${digest} is unreadable: ${read.error}`, blocksGc: true });
      }
    }
  }

  const blobs = await scanBlobs(layout, concurrency, problems);
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
