/**
 * Layout-exact storage trees at benchmark scale: repositories × tags ×
 * revisions of history, one tag in ten a multi-arch list, base layers shared
 * across repositories. Written with synchronous calls (far faster than
 * promises for a million small files) and paths from the layout module.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Digest, Layout, type PathSpec } from '../src/layout.js';
import { MediaTypes } from '../src/manifest.js';

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

interface Blob {
  digest: Digest;
  size: number;
  mediaType: string;
}

const LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const CONFIG = 'application/vnd.docker.container.image.v1+json';

export function writeBenchTree(root: string, spec: TreeSpec): TreeStats {
  const layout = new Layout(root);
  const stats: TreeStats = { repositories: 0, tags: 0, revisions: 0, files: 0 };
  const made = new Set<string>();
  const write = (spec: PathSpec, content: string | Buffer): void => {
    const file = layout.pathFor(spec);
    const dir = path.dirname(file);
    if (!made.has(dir)) {
      fs.mkdirSync(dir, { recursive: true });
      made.add(dir);
    }
    fs.writeFileSync(file, content);
    stats.files++;
  };
  const blob = (content: string | Buffer, mediaType: string): Blob => {
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}` as Digest;
    if (!fs.existsSync(layout.pathFor({ kind: 'blobData', digest }))) write({ kind: 'blobData', digest }, content);
    return { digest, size: Buffer.byteLength(content), mediaType };
  };
  const link = (kind: 'revisionLink' | 'layerLink', name: string, digest: Digest): void => write({ kind, name, digest }, digest);
  const describe = (b: Blob) => ({ mediaType: b.mediaType, size: b.size, digest: b.digest });

  const bases = Array.from({ length: 8 }, (_, i) => blob(`base layer ${i} `.repeat(40 + i), LAYER));
  const image = (repository: string, seed: string, base: Blob): Blob => {
    const layer = blob(`layer ${seed} `.repeat(8), LAYER);
    const config = blob(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }), CONFIG);
    for (const b of [base, layer, config]) link('layerLink', repository, b.digest);
    const manifest = blob(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.dockerManifest, config: describe(config), layers: [describe(base), describe(layer)] }), MediaTypes.dockerManifest);
    link('revisionLink', repository, manifest.digest);
    stats.revisions++;
    return manifest;
  };

  const every = spec.multiArchEvery ?? 10;
  for (let r = 0; r < spec.repositories; r++) {
    const repository = `team${r % 10}/app-${r}`;
    const base = bases[r % bases.length] as Blob;
    stats.repositories++;
    for (let t = 0; t < spec.tagsPerRepository; t++) {
      const tag = `v${t}.0.0`;
      stats.tags++;
      let current: Blob | undefined;
      for (let v = 0; v < spec.revisionsPerTag; v++) {
        const seed = `${repository}:${tag}#${v}`;
        if (t % every === 0) {
          const children = [image(repository, `${seed}/amd64`, base), image(repository, `${seed}/arm64`, base)];
          current = blob(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.dockerList, manifests: children.map(describe) }), MediaTypes.dockerList);
          link('revisionLink', repository, current.digest);
          stats.revisions++;
        } else {
          current = image(repository, seed, base);
        }
        write({ kind: 'tagIndexEntryLink', name: repository, tag, digest: current.digest }, current.digest);
      }
      write({ kind: 'tagCurrentLink', name: repository, tag }, (current as Blob).digest);
    }
  }
  return stats;
}
