/**
 * Layout-exact storage trees at benchmark scale: repositories × tags ×
 * revisions of history, one tag in ten a multi-arch list, base layers shared
 * across repositories. One generator produces the files; two sinks write them:
 * straight to disk with synchronous calls (far faster than promises for a
 * million small files), or as a tar stream for a filesystem image too large
 * to write file by file. Paths come from the layout module.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Pack } from 'tar-stream';
import type { Digest } from '../src/model.js';
import { Layout, type PathSpec, hexOf } from '../src/storage/layout.js';
import { MediaTypes } from '../src/storage/manifest.js';

export interface TreeSpec {
  repositories: number;
  tagsPerRepository: number;
  /** Revisions each tag has had; the last one is current, the others are history. */
  revisionsPerTag: number;
  /** Every n-th tag is a multi-arch list of two images (default 10). */
  multiArchEvery?: number;
}

export interface TreeStats {
  repositories: number;
  tags: number;
  revisions: number;
  files: number;
}

/** One file of the tree: where the layout puts it, and what it holds. */
interface BenchFile {
  spec: PathSpec;
  content: string;
}

interface Blob {
  digest: Digest;
  size: number;
  mediaType: string;
}

const LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const CONFIG = 'application/vnd.docker.container.image.v1+json';

const emptyStats = (): TreeStats => ({ repositories: 0, tags: 0, revisions: 0, files: 0 });
const describe = (b: Blob) => ({ mediaType: b.mediaType, size: b.size, digest: b.digest });

function* file(stats: TreeStats, spec: PathSpec, content: string): Generator<BenchFile, void, undefined> {
  stats.files++;
  yield { spec, content };
}

function* blob(stats: TreeStats, content: string, mediaType: string): Generator<BenchFile, Blob, undefined> {
  const digest = `sha256:${createHash('sha256').update(content).digest('hex')}` as Digest;
  yield* file(stats, { kind: 'blobData', digest }, content);
  return { digest, size: Buffer.byteLength(content), mediaType };
}

function* image(stats: TreeStats, repository: string, seed: string, base: Blob): Generator<BenchFile, Blob, undefined> {
  const layer = yield* blob(stats, `layer ${seed} `.repeat(8), LAYER);
  const config = yield* blob(stats, JSON.stringify({ architecture: 'amd64', os: 'linux', seed }), CONFIG);
  // The base is linked once per repository, by benchFiles.
  for (const b of [layer, config]) yield* file(stats, { kind: 'layerLink', name: repository, digest: b.digest }, b.digest);
  const manifest = yield* blob(stats, JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.dockerManifest, config: describe(config), layers: [describe(base), describe(layer)] }), MediaTypes.dockerManifest);
  yield* file(stats, { kind: 'revisionLink', name: repository, digest: manifest.digest }, manifest.digest);
  stats.revisions++;
  return manifest;
}

/**
 * Every file of the tree, each path exactly once, so neither sink needs to
 * remember what it wrote (a tar archive may not name a path twice): the eight
 * base layers are the only shared blobs and come first, every other blob holds
 * its image's unique seed, and each repository links its base layer once.
 * `stats` counts as the files are produced.
 */
function* benchFiles(spec: TreeSpec, stats: TreeStats): Generator<BenchFile, void, undefined> {
  const bases: Blob[] = [];
  for (let i = 0; i < 8; i++) bases.push(yield* blob(stats, `base layer ${i} `.repeat(40 + i), LAYER));
  const every = spec.multiArchEvery ?? 10;
  for (let r = 0; r < spec.repositories; r++) {
    const repository = `team${r % 10}/app-${r}`;
    const base = bases[r % bases.length] as Blob;
    stats.repositories++;
    yield* file(stats, { kind: 'layerLink', name: repository, digest: base.digest }, base.digest);
    for (let t = 0; t < spec.tagsPerRepository; t++) {
      const tag = `v${t}.0.0`;
      stats.tags++;
      let current: Blob | undefined;
      for (let v = 0; v < spec.revisionsPerTag; v++) {
        const seed = `${repository}:${tag}#${v}`;
        if (t % every === 0) {
          const children = [yield* image(stats, repository, `${seed}/amd64`, base), yield* image(stats, repository, `${seed}/arm64`, base)];
          current = yield* blob(stats, JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.dockerList, manifests: children.map(describe) }), MediaTypes.dockerList);
          yield* file(stats, { kind: 'revisionLink', name: repository, digest: current.digest }, current.digest);
          stats.revisions++;
        } else {
          current = yield* image(stats, repository, seed, base);
        }
        yield* file(stats, { kind: 'tagIndexEntryLink', name: repository, tag, digest: current.digest }, current.digest);
      }
      yield* file(stats, { kind: 'tagCurrentLink', name: repository, tag }, (current as Blob).digest);
    }
  }
}

export function writeBenchTree(root: string, spec: TreeSpec): TreeStats {
  const layout = new Layout(root);
  const stats = emptyStats();
  const made = new Set<string>();
  for (const { spec: where, content } of benchFiles(spec, stats)) {
    const target = layout.pathFor(where);
    const dir = path.dirname(target);
    if (!made.has(dir)) {
      fs.mkdirSync(dir, { recursive: true });
      made.add(dir);
    }
    fs.writeFileSync(target, content);
  }
  return stats;
}

// When the archive's reader fails, the archive destroys its entries in flight
// with the same error: the pipeline reports it, and an 'error' event nobody
// listens to on an entry would crash the process.
const quiet = (entry: NodeJS.WritableStream): void => void entry.on('error', () => undefined);

// Waiting on every entry would cost a promise per file; entries are written
// in order, so waiting on every n-th one holds the backlog to n files.
const ENTRIES_PER_WAIT = 1024;

/**
 * tar2sqfs (1.2) keeps a directory's entries in a sorted linked list that it
 * walks for every entry added: quadratic in the directory, and slowest when
 * the nodes lie scattered in memory. The blob directories are the big ones
 * (some 11,000 entries each at a million revisions). Added in path order, a
 * directory's list is walked in the order it was allocated: a tree of 100,000
 * revisions then built in 14 s instead of 63. Blobs are sorted by the first
 * hex digit of their digest into groups, the generator running once per
 * group, so that only one group's blobs are held at a time.
 */
const BLOB_GROUPS = '0123456789abcdef';

/**
 * Writes the tree into `tar` (then finalizes it) at the pace its reader takes
 * it: first every file but the blobs, in the generator's order, then the
 * blobs in path order. Only files are archived, under the paths Layout gives
 * relative to the root: the reader creates their parent directories (tar2sqfs
 * does), which spares holding millions of directory names to emit each once.
 */
export async function packBenchTree(tar: Pack, spec: TreeSpec): Promise<TreeStats> {
  // Relative paths do not depend on the root.
  const layout = new Layout('/');
  const mtime = new Date();
  let added = 0;
  const add = (name: string, content: string): Promise<void> | undefined => {
    const header = { name, mtime };
    if (++added % ENTRIES_PER_WAIT !== 0) return void quiet(tar.entry(header, content));
    return new Promise<void>((resolve, reject) => quiet(tar.entry(header, content, (err) => (err ? reject(err) : resolve()))));
  };
  let stats = emptyStats();
  for (const group of BLOB_GROUPS) {
    stats = emptyStats();
    const blobs: Array<{ name: string; content: string }> = [];
    for (const { spec: where, content } of benchFiles(spec, stats)) {
      if (where.kind !== 'blobData') {
        if (group === BLOB_GROUPS[0]) await add(layout.relativePathFor(where), content);
      } else if (hexOf(where.digest).startsWith(group)) {
        blobs.push({ name: layout.relativePathFor(where), content });
      }
    }
    blobs.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const { name, content } of blobs) await add(name, content);
  }
  tar.finalize();
  return stats;
}
