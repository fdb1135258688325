/**
 * Reads one unit of a storage tree: a repository (its revisions, its tags and
 * the manifests its revisions name), or the blobs under some prefix
 * directories with their sizes. It only reads; what it cannot understand
 * becomes a Problem attached to the repository, never a guess. Each unit runs
 * in whichever thread takes it (scanPool.ts); walk.ts puts the units together.
 */
import type { Dirent } from 'node:fs';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../errors.js';
import type { BlobPart, Digest, FoundRepository, Problem, RepositoryState, TagState } from '../../model.js';
import { isMissing } from '../../util/errno.js';
import { Layout, ScanPaths, describeCorrupt, digestFromHex, isRepositoryName, isTagName } from '../layout.js';
import { type ManifestRead, manifestRead } from '../manifest.js';
import type { RepositoryScan } from '../source.js';
import { entries, isDirectoryEntry, mtimeOf, names, readBytes, readLink } from './read.js';

/** Refuses (exit 2) a directory that is not a registry root: one that does not hold docker/registry/v2. */
export function requireRegistryRoot(root: string): void {
  if (!fs.statSync(new Layout(root).pathFor({ kind: 'v2' }), { throwIfNoEntry: false })?.isDirectory()) {
    throw new UsageError(`${root} is not a registry storage root (no docker/registry/v2 below it)`);
  }
}

/**
 * Walks repositories/ for directories holding `_layers` (registry 2.x) or
 * `_manifests` (3.x). `_`-prefixed directories are the registry's own, since
 * no name component can start with `_`; everything else may nest further.
 */
export function findRepositories(layout: Layout, problems: Problem[]): FoundRepository[] {
  const found: FoundRepository[] = [];
  const base = layout.pathFor({ kind: 'repositories' });
  // Followed symlinks, by the directory they reach: one that leads back up the tree is not walked again.
  const above: string[] = [];
  const walk = (dir: string, parts: string[]): void => {
    const list = entries(dir);
    const names = new Set(list.filter((e) => isDirectoryEntry(dir, e)).map((e) => e.name));
    const linked = new Set(list.filter((e) => e.isSymbolicLink()).map((e) => e.name));
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
    for (const child of children) {
      const at = path.join(dir, child);
      if (!linked.has(child)) {
        walk(at, [...parts, child]);
        continue;
      }
      const real = fs.realpathSync(at);
      if (above.includes(real) || fs.realpathSync(dir).startsWith(`${real}${path.sep}`)) continue;
      above.push(real);
      walk(at, [...parts, child]);
      above.pop();
    }
  };
  walk(base, []);
  return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function scanRevisions(paths: ScanPaths, repo: RepositoryState): void {
  const dir = paths.revisions;
  for (const entry of entries(dir)) {
    const digest = digestFromHex(entry.name);
    if (!digest || !isDirectoryEntry(dir, entry)) {
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

/** The digests a tag ever had (its index/), with when it got each when `times` asks. */
function scanTagIndex(indexDir: string, tag: TagState, repo: RepositoryState, times: boolean): void {
  for (const item of entries(indexDir)) {
    const digest = digestFromHex(item.name);
    if (!digest || !isDirectoryEntry(indexDir, item)) {
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
    if (!isTagName(entry.name) || !isDirectoryEntry(dir, entry)) {
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
    scanTagIndex(ScanPaths.tagIndex(where), tag, repo, times);
    tag.index.sort();
    repo.tags.push(tag);
  }
}

function readManifest(paths: ScanPaths, digest: Digest): ManifestRead {
  let raw: Buffer | undefined;
  try {
    raw = readBytes(paths.blobData(digest));
  } catch (error) {
    return { error: (error as Error).message };
  }
  return manifestRead(raw, digest);
}

/** The blobs of one prefix directory: 32 bytes of digest and a size each, and which are recent (by their index here). */
interface PrefixBlobs {
  digests: Uint8Array;
  sizes: Float64Array;
  recent: number[];
}

/**
 * The blobs of one prefix directory, written straight into typed arrays as
 * large as the directory has entries: a unit of work on a million-revision
 * tree holds some 180,000 blobs, and a string and a boxed number per blob
 * until the end of the unit took 40 MiB more in the thread that ran it. A
 * function of its own, apart from the packing: V8 optimizes a hot loop while
 * it runs, and code compiled before the packing ever ran was thrown away at
 * the end of every task and compiled again.
 */
function scanPrefix(base: string, prefix: string, recentAfter: number, problems: Problem[]): PrefixBlobs {
  const prefixDir = ScanPaths.child(base, prefix);
  const list = names(prefixDir);
  const digests = new Uint8Array(list.length * 32);
  const sizes = new Float64Array(list.length);
  const recent: number[] = [];
  let count = 0;
  // The stat of data below says all that is needed of each entry.
  for (const name of list) {
    const data = ScanPaths.blobDataIn(prefixDir, name);
    // No data file: garbage-collect does not count it as a blob either.
    const stat = fs.statSync(data, { throwIfNoEntry: false });
    if (stat === undefined) continue;
    if (!digestFromHex(name) || name.slice(0, 2) !== prefix) {
      problems.push({ path: data, message: 'blob data at an unexpected path; garbage-collect aborts on it', blocksGc: true });
      continue;
    }
    if (stat.mtimeMs > recentAfter) recent.push(count);
    Buffer.from(digests.buffer, count * 32, 32).write(name, 'hex');
    sizes[count++] = stat.size;
  }
  return { digests: digests.subarray(0, count * 32), sizes: sizes.subarray(0, count), recent };
}

/**
 * Blobs under some of the 256 prefix directories, with the size of each one's
 * data, packed (32 bytes and a number each), and which have data newer than
 * `recentAfter` (ms since the epoch; Infinity notes none). The arrays are
 * their own buffers, so a worker can hand them over without a copy.
 */
export function scanBlobPrefixes(root: string, prefixes: readonly string[], recentAfter = Infinity): BlobPart {
  const base = new Layout(root).pathFor({ kind: 'blobAlgorithm' });
  const problems: Problem[] = [];
  const parts = prefixes.map((prefix) => scanPrefix(base, prefix, recentAfter, problems));
  const count = parts.reduce((n, p) => n + p.sizes.length, 0);
  const digests = new Uint8Array(count * 32);
  const sizes = new Float64Array(count);
  const recent: number[] = [];
  let at = 0;
  for (const part of parts) {
    digests.set(part.digests, at * 32);
    sizes.set(part.sizes, at);
    for (const i of part.recent) recent.push(at + i);
    at += part.sizes.length;
  }
  return { digests, sizes, recent, problems };
}

export function blobPrefixes(root: string): string[] {
  const dir = new Layout(root).pathFor({ kind: 'blobAlgorithm' });
  return entries(dir)
    .filter((e) => isDirectoryEntry(dir, e))
    .map((e) => e.name);
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
export type ScanWork = { kind: 'repository'; root: string; found: FoundRepository; times: boolean } | { kind: 'blobs'; root: string; prefixes: string[]; recentAfter: number };

/** Runs one unit in this thread: what a worker does with a message, and what the main thread does with its share. */
export function runScanWork(work: ScanWork): RepositoryScan | BlobPart {
  return work.kind === 'repository' ? scanRepository(work.root, work.found, work.times) : scanBlobPrefixes(work.root, work.prefixes, work.recentAfter);
}
