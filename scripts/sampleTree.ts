/**
 * Writes layout-exact storage trees directly, without a registry: the demo's
 * sample, the planner's test scenarios and the benchmark's large trees. Every
 * path comes from the layout module, so these trees are what the registry
 * itself would have written.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Digest } from '../src/model.js';
import { Layout, type PathSpec } from '../src/storage/layout.js';
import { MediaTypes, sha256Digest } from '../src/storage/manifest.js';

export interface Written {
  digest: Digest;
  size: number;
  mediaType: string;
}

export interface ImageOptions {
  seed: string;
  /** Number of own layers (default 2), made from the seed. */
  layers?: number;
  /** Layers shared with other images (written once, linked here). */
  shared?: Written[];
  format?: 'docker' | 'oci';
  subject?: Written;
  tag?: string;
  /** Size of each generated layer in bytes (default: 64 to 2111, from the seed). */
  layerSize?: number;
}

/** Deterministic bytes from a seed. */
export function seededBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset, 0, Math.min(block.length, size - offset));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

function seededSize(seed: string): number {
  return 64 + (createHash('sha256').update(`size:${seed}`).digest().readUInt16BE(0) % 2048);
}

export class TreeWriter {
  readonly layout: Layout;

  constructor(root: string) {
    this.layout = new Layout(root);
  }

  async init(): Promise<this> {
    await fs.mkdir(this.layout.pathFor({ kind: 'repositories' }), { recursive: true });
    await fs.mkdir(this.layout.pathFor({ kind: 'blobAlgorithm' }), { recursive: true });
    return this;
  }

  private async write(spec: PathSpec, content: string | Uint8Array): Promise<string> {
    const file = this.layout.pathFor(spec);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, content);
    return file;
  }

  /** Writes any file below the root (for corrupt-tree scenarios). */
  async writeRaw(spec: PathSpec, content: string | Uint8Array): Promise<string> {
    return this.write(spec, content);
  }

  async blob(bytes: Uint8Array, mediaType = 'application/octet-stream'): Promise<Written> {
    const digest = sha256Digest(bytes);
    await this.write({ kind: 'blobData', digest }, bytes);
    return { digest, size: bytes.length, mediaType };
  }

  async linkLayer(repository: string, digest: Digest): Promise<void> {
    await this.write({ kind: 'layerLink', name: repository, digest }, digest);
  }

  async linkRevision(repository: string, digest: Digest): Promise<void> {
    await this.write({ kind: 'revisionLink', name: repository, digest }, digest);
  }

  /** Points `tag` at `digest` the way a push does: current link and an index entry. */
  async tag(repository: string, tag: string, digest: Digest, mtime?: Date): Promise<void> {
    const current = await this.write({ kind: 'tagCurrentLink', name: repository, tag }, digest);
    const entry = await this.write({ kind: 'tagIndexEntryLink', name: repository, tag, digest }, digest);
    if (mtime) await Promise.all([fs.utimes(current, mtime, mtime), fs.utimes(entry, mtime, mtime)]);
  }

  /** Stores a manifest blob and links it as a revision of the repository. */
  async manifest(repository: string, doc: object, mediaType: string): Promise<Written> {
    const written = await this.blob(Buffer.from(JSON.stringify(doc, null, 3)), mediaType);
    await this.linkRevision(repository, written.digest);
    return written;
  }

  async image(repository: string, options: ImageOptions): Promise<Written> {
    const format = options.format ?? (options.subject ? 'oci' : 'docker');
    const layerType = format === 'oci' ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.docker.image.rootfs.diff.tar.gzip';
    const own: Written[] = [];
    for (let i = 0; i < (options.layers ?? 2); i++) {
      const seed = `${options.seed}/layer${i}`;
      own.push(await this.blob(seededBytes(seed, options.layerSize ?? seededSize(seed)), layerType));
    }
    const layers = [...(options.shared ?? []), ...own];
    const config = await this.blob(
      Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed: options.seed, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } })),
      format === 'oci' ? 'application/vnd.oci.image.config.v1+json' : 'application/vnd.docker.container.image.v1+json',
    );
    for (const b of [config, ...layers]) await this.linkLayer(repository, b.digest);
    const mediaType = format === 'oci' ? MediaTypes.ociManifest : MediaTypes.dockerManifest;
    const doc: Record<string, unknown> = { schemaVersion: 2, mediaType, config: descriptor(config), layers: layers.map(descriptor) };
    if (options.subject) doc.subject = descriptor(options.subject);
    const written = await this.manifest(repository, doc, mediaType);
    if (options.tag) await this.tag(repository, options.tag, written.digest);
    return written;
  }

  async index(repository: string, children: Written[], options: { tag?: string; format?: 'docker' | 'oci'; subject?: Written } = {}): Promise<Written> {
    const mediaType = options.format === 'oci' ? MediaTypes.ociIndex : MediaTypes.dockerList;
    const archs = ['amd64', 'arm64', 'arm', 'ppc64le', 's390x', '386'];
    const doc: Record<string, unknown> = {
      schemaVersion: 2,
      mediaType,
      manifests: children.map((c, i) => ({ ...descriptor(c), platform: { architecture: archs[i % archs.length], os: 'linux' } })),
    };
    if (options.subject) doc.subject = descriptor(options.subject);
    const written = await this.manifest(repository, doc, mediaType);
    if (options.tag) await this.tag(repository, options.tag, written.digest);
    return written;
  }
}

function descriptor(w: Written): { mediaType: string; digest: Digest; size: number } {
  return { mediaType: w.mediaType, digest: w.digest, size: w.size };
}
