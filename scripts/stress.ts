/**
 * `npm run stress -- --seeds N [--first S] [--versions 2.8.2,3.0.0] [--keep-failures DIR]`:
 * proof by difference of `--gc builtin` against the registry's own garbage-collect.
 * (`npm run stress -- --crash N` kills real runs instead: scripts/crash.ts;
 * `npm run stress -- --s3 --seeds N` runs the same scenarios on a radosgw
 * bucket against a disk: scripts/stressS3.ts.)
 *
 * For each seed and registry version:
 *  1. A seeded PRNG chooses a small scenario (nested repository names, tag
 *     history, Docker manifest lists and OCI indexes with children by digest,
 *     shared children and nested indexes, referrers and referrer chains,
 *     fallback tags, layers shared across repositories, foreign layers, orphan
 *     and unfinished uploads, untagged images, re-pointed tags, manifests and
 *     children of kept indexes deleted through the API, manifests copied to
 *     another repository) and a purge (none, --keep 1, --history 1, -x TAG,
 *     -x REPOSITORY), and pushes the scenario through the real registry of
 *     that version (the tree is written by the version that collects it).
 *  2. The tree is copied twice (`cp -a`, mtimes kept). On A:
 *     `regsweep --path A --yes --gc builtin --grace 0s --config <config naming A>`.
 *     On B: `regsweep --path B --yes --no-gc`, then the registry's own plain
 *     `garbage-collect` (never `--delete-untagged`).
 *  3. The two trees must hold the same blobs, the same revision links, tag
 *     links (current and index), uploads and every other file; A's `_layers`
 *     links must be those B held after the purge minus the ones naming a blob
 *     A swept (registry 3.x also drops some links of blobs that stay: see
 *     compareListings). regsweep's prediction on A must match what A lost.
 *  4. The registry serves A; every remaining tag and every remaining revision
 *     pulls whole (manifest, children, config and layers, every byte hashed).
 *     A pull that fails on A is tried on B: failing on both is the scenario's
 *     doing (an index whose child was deleted), failing on A only a difference.
 *
 * Each seed prints one line; a difference prints the exact entries on each
 * side. Exit 1 on any difference or failure, 2 on bad usage.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs as parseArgv } from 'node:util';
import { dump } from 'js-yaml';
import {
  type Descriptor,
  type Platform,
  MediaTypes,
  RegistryClient,
  blobBytes,
  digestOf,
  pushImage,
  pushIndex,
  registryBinary,
  startRegistry,
} from './registryClient.js';

// ---------------------------------------------------------------------------
// A seeded PRNG (sfc32, seeded from a hash of the seed)

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    const h = createHash('sha256').update(`regsweep-stress:${seed}`).digest();
    [this.a, this.b, this.c, this.d] = [h.readUInt32LE(0), h.readUInt32LE(4), h.readUInt32LE(8), h.readUInt32LE(12)];
    for (let i = 0; i < 12; i++) this.next();
  }

  /** A number in [0, 1). */
  next(): number {
    let { a, b, c, d } = this;
    const t0 = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    const t = (t0 + d) | 0;
    c = (c + t) | 0;
    [this.a, this.b, this.c, this.d] = [a, b, c, d];
    return (t >>> 0) / 4294967296;
  }

  /** A whole number in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from nothing');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as Array<[K, number]>;
    let x = this.next() * entries.reduce((sum, [, w]) => sum + w, 0);
    for (const [key, w] of entries) {
      x -= w;
      if (x < 0) return key;
    }
    return (entries[entries.length - 1] as [K, number])[0];
  }
}

// ---------------------------------------------------------------------------
// The scenario generator

export const FEATURES = [
  'images',
  'history',
  'untagged',
  'lists',
  'indexes',
  'nestedIndexes',
  'sharedChildren',
  'referrers',
  'referrerChains',
  'referrerIndexes',
  'fallbackTags',
  'danglingFallbackTags',
  'orphans',
  'orphansInNewRepositories',
  'unfinishedUploads',
  'repointed',
  'deleted',
  'deletedChildren',
  'deletedSubjects',
  'foreignLayers',
  'sharedLayers',
  'crossRepository',
] as const;
type Feature = (typeof FEATURES)[number];

/** What a seed pushed: its repositories, counts by feature, and the purge run on it. */
export interface TreeSummary {
  seed: number;
  repositories: string[];
  /** Live revisions pushed (repository@digest), deleted ones left out. */
  manifests: number;
  /** Tags as the scenario leaves them. */
  tags: number;
  features: Record<Feature, number>;
  /** The regsweep selection both sides run with (after the common flags). */
  purgeArgs: string[];
}

interface Pushed {
  digest: string;
  kind: 'image' | 'index';
  mediaType: string;
  /** Bytes of the manifest as pushed. */
  size: number;
  children: string[];
  subject?: string;
  deleted: boolean;
}

interface Repo {
  name: string;
  manifests: Map<string, Pushed>;
  tags: Map<string, string>;
}

const TAGS = ['latest', 'v1', 'v2', 'dev', 'stable'];
const REPOSITORY_CANDIDATES = ['a', 'a/b', 'a/b/c', 'e', 'e/f', 'g'];
const ARTIFACT_TYPES = ['application/vnd.dev.cosign.artifact.sig.v1+json', 'application/spdx+json', 'application/vnd.in-toto+json'];
const PLATFORMS: Platform[] = [
  { architecture: 'amd64', os: 'linux' },
  { architecture: 'arm64', os: 'linux' },
  { architecture: 'arm', os: 'linux', variant: 'v7' },
  { architecture: 's390x', os: 'linux' },
];

const ACTIONS = {
  tagged: 3,
  untagged: 1,
  list: 1.2,
  index: 1.5,
  referrer: 2.2,
  orphan: 0.8,
  upload: 0.4,
  repoint: 0.8,
  remove: 0.5,
  removeChild: 0.3,
  foreign: 0.4,
  copy: 0.8,
} as const;
type Action = keyof typeof ACTIONS;

/** A registry config's storage driver section, `{ s3: { … } }`; a filesystem root when absent. */
export type StorageDriver = Record<string, unknown>;

const hexOf = (digest: string): string => digest.slice(digest.indexOf(':') + 1);

class TreeGenerator {
  private readonly repos: Repo[] = [];
  private readonly features = Object.fromEntries(FEATURES.map((f) => [f, 0])) as Record<Feature, number>;
  private readonly sharedLayers: Buffer[];
  private counter = 0;

  constructor(
    /** The registry's `http://127.0.0.1:PORT`: everything is read back through it, whatever its storage driver. */
    private readonly url: string,
    private readonly client: RegistryClient,
    private readonly rng: Rng,
    private readonly seed: number,
  ) {
    this.sharedLayers = [0, 1, 2].map((i) => blobBytes(`stress-${seed}/shared-layer-${i}`));
  }

  async generate(): Promise<TreeSummary> {
    const names = REPOSITORY_CANDIDATES.filter(() => this.rng.chance(0.55));
    for (const name of REPOSITORY_CANDIDATES) if (names.length < 3 && !names.includes(name)) names.push(name);
    for (const name of names.sort()) this.repos.push({ name, manifests: new Map(), tags: new Map() });
    // Every repository gets a tag first: 2.x garbage-collect aborts on a repository without _manifests/tags.
    for (const repo of this.repos) await this.image(repo, { tag: 'latest' });
    const actions = this.rng.int(10, 18);
    for (let i = 0; i < actions; i++) await this.act(this.rng.weighted(ACTIONS), this.rng.pick(this.repos));
    const live = this.repos.flatMap((r) => [...r.manifests.values()].filter((m) => !m.deleted));
    return {
      seed: this.seed,
      repositories: this.repos.map((r) => r.name),
      manifests: live.length,
      tags: this.repos.reduce((n, r) => n + r.tags.size, 0),
      features: this.features,
      purgeArgs: this.purgeArgs(),
    };
  }

  private async act(action: Action, repo: Repo): Promise<void> {
    switch (action) {
      case 'tagged':
        return void (await this.image(repo, { tag: this.rng.pick(TAGS) }));
      case 'untagged':
        this.features.untagged++;
        return void (await this.image(repo, {}));
      case 'list':
        return void (await this.multiArch(repo, 'docker'));
      case 'index':
        return void (await this.multiArch(repo, 'oci'));
      case 'referrer':
        return this.referrer(repo);
      case 'orphan':
        return this.orphan(repo);
      case 'upload':
        return this.unfinishedUpload(this.rng.chance(0.25) ? this.newRepositoryName() : repo.name);
      case 'repoint':
        return this.repoint(repo);
      case 'remove':
        return this.remove(repo);
      case 'removeChild':
        return this.removeChild(repo);
      case 'foreign':
        return this.foreignImage(repo);
      case 'copy':
        return this.copyToOther(repo);
    }
  }

  private name(what: string): string {
    return `stress-${this.seed}/${what}-${this.counter++}`;
  }

  private live(repo: Repo, filter: (m: Pushed) => boolean = () => true): Pushed[] {
    return [...repo.manifests.values()].filter((m) => !m.deleted && filter(m));
  }

  /** Live, and so is every child below it: the registry accepts it pushed again, or as a child. */
  private intact(repo: Repo, m: Pushed): boolean {
    return !m.deleted && m.children.every((c) => {
      const child = repo.manifests.get(c);
      return child !== undefined && this.intact(repo, child);
    });
  }

  private record(repo: Repo, m: Omit<Pushed, 'deleted'>, tag?: string): Pushed {
    const pushed: Pushed = { ...m, deleted: false };
    repo.manifests.set(m.digest, pushed);
    if (tag) this.tag(repo, tag, m.digest);
    return pushed;
  }

  private tag(repo: Repo, tag: string, digest: string): void {
    const before = repo.tags.get(tag);
    if (before !== undefined && before !== digest) this.features.history++;
    repo.tags.set(tag, digest);
  }

  private async image(repo: Repo, opts: { tag?: string; subject?: Descriptor; platform?: Platform }): Promise<Pushed> {
    const shared = this.rng.chance(0.4) ? [this.rng.pick(this.sharedLayers)] : [];
    if (shared.length > 0 && !opts.subject) this.features.sharedLayers++;
    const artifact = opts.subject !== undefined && this.rng.chance(0.6);
    const pushed = await pushImage(this.client, repo.name, {
      seed: this.name(opts.subject ? 'referrer' : 'image'),
      tag: opts.tag,
      format: opts.subject || this.rng.chance(0.5) ? 'oci' : 'docker',
      layers: this.rng.int(1, 2),
      sharedLayers: opts.subject ? [] : shared,
      subject: opts.subject,
      artifactType: artifact ? this.rng.pick(ARTIFACT_TYPES) : undefined,
      platform: opts.platform,
    });
    if (!opts.subject) this.features.images++;
    const d = pushed.descriptor;
    return this.record(repo, { digest: d.digest, kind: 'image', mediaType: d.mediaType, size: d.size, children: [], subject: opts.subject?.digest }, opts.tag);
  }

  private async multiArch(repo: Repo, format: 'docker' | 'oci'): Promise<void> {
    const children: Pushed[] = [];
    for (let i = this.rng.int(1, 2); i > 0; i--) children.push(await this.image(repo, { platform: PLATFORMS[children.length] }));
    const images = this.live(repo, (m) => m.kind === 'image' && !m.subject && !children.includes(m));
    if (images.length > 0 && this.rng.chance(0.5)) {
      children.push(this.rng.pick(images));
      this.features.sharedChildren++;
    }
    const indexes = this.live(repo, (m) => m.kind === 'index' && !m.subject && this.intact(repo, m));
    if (format === 'oci' && indexes.length > 0 && this.rng.chance(0.4)) {
      children.push(this.rng.pick(indexes));
      this.features.nestedIndexes++;
    }
    const tag = this.rng.chance(0.7) ? this.rng.pick(TAGS) : undefined;
    const d = await pushIndex(this.client, repo.name, {
      tag,
      format,
      children: children.map((c, i) => ({ ...this.descriptor(c), platform: PLATFORMS[i % PLATFORMS.length] })),
    });
    this.features[format === 'docker' ? 'lists' : 'indexes']++;
    this.record(repo, { digest: d.digest, kind: 'index', mediaType: d.mediaType, size: d.size, children: children.map((c) => c.digest) }, tag);
  }

  /** A pushed manifest's descriptor. */
  private descriptor(m: Pushed): Descriptor {
    return { mediaType: m.mediaType, digest: m.digest, size: m.size };
  }

  /** A manifest's bytes as the registry serves them (exactly as pushed). */
  private async manifestBytes(repo: Repo, m: Pushed): Promise<Buffer> {
    const got = await this.client.getManifest(repo.name, m.digest);
    if (got.status !== 200 || digestOf(got.body) !== m.digest) throw new Error(`GET manifest ${repo.name}@${m.digest}: HTTP ${got.status}, ${digestOf(got.body)}`);
    return got.body;
  }

  /** A blob's bytes through the registry (its storage may be a bucket). */
  private async blob(repo: Repo, digest: string): Promise<Buffer> {
    const res = await fetch(`${this.url}/v2/${repo.name}/blobs/${digest}`, { redirect: 'error' });
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200 || digestOf(bytes) !== digest) throw new Error(`GET blob ${repo.name}@${digest}: HTTP ${res.status}`);
    return bytes;
  }

  private async referrer(repo: Repo): Promise<void> {
    if (this.rng.chance(0.12)) return this.danglingFallback(repo);
    const referrers = this.live(repo, (m) => m.subject !== undefined);
    const any = this.live(repo);
    // Everything here was deleted through the API: something to refer to first.
    if (any.length === 0) any.push(await this.image(repo, { tag: this.rng.pick(TAGS) }));
    const subject = referrers.length > 0 && this.rng.chance(0.35) ? this.rng.pick(referrers) : this.rng.pick(any);
    const fallback = this.rng.chance(0.4) ? `sha256-${hexOf(subject.digest)}${this.rng.pick(['.sig', '.att', '.sbom', ''])}` : undefined;
    if (fallback) this.features.fallbackTags++;
    this.features.referrers++;
    if (subject.subject) this.features.referrerChains++;
    if (this.rng.chance(0.2)) {
      // An OCI index that is itself a referrer, with one artifact child.
      const child = await this.image(repo, { subject: this.descriptor(subject) });
      const d = await pushIndex(this.client, repo.name, {
        tag: fallback,
        format: 'oci',
        subject: this.descriptor(subject),
        artifactType: this.rng.pick(ARTIFACT_TYPES),
        children: [this.descriptor(child)],
      });
      this.features.referrerIndexes++;
      this.record(repo, { digest: d.digest, kind: 'index', mediaType: d.mediaType, size: d.size, children: [child.digest], subject: subject.digest }, fallback);
      return;
    }
    await this.image(repo, { subject: this.descriptor(subject), tag: fallback });
  }

  /** A cosign-style signature under a fallback tag naming a digest that was never in the repository. */
  private async danglingFallback(repo: Repo): Promise<void> {
    const ghost = createHash('sha256').update(this.name('ghost')).digest('hex');
    const tag = `sha256-${ghost}.sig`;
    const pushed = await pushImage(this.client, repo.name, { seed: this.name('ghost-sig'), tag, format: 'oci', layers: 1 });
    this.features.danglingFallbackTags++;
    const d = pushed.descriptor;
    this.record(repo, { digest: d.digest, kind: 'image', mediaType: d.mediaType, size: d.size, children: [] }, tag);
  }

  /**
   * A name no manifest was pushed to: an upload there makes a directory with
   * `_layers` (finished) or `_uploads` (unfinished) and no `_manifests`.
   */
  private newRepositoryName(): string {
    return this.rng.pick(['a/b/c/d', 'x', 'e/f/g'].filter((n) => !this.repos.some((r) => r.name === n)));
  }

  /** A blob uploaded and never referenced (a push that died before its manifest), now and then into a new name. */
  private async orphan(repo: Repo): Promise<void> {
    const fresh = this.rng.chance(0.25);
    await this.client.pushBlob(fresh ? this.newRepositoryName() : repo.name, blobBytes(this.name('orphan')));
    this.features[fresh ? 'orphansInNewRepositories' : 'orphans']++;
  }

  /** An upload started and fed some bytes, never finished: it stays under _uploads. */
  private async unfinishedUpload(name: string): Promise<void> {
    const start = await fetch(`${this.url}/v2/${name}/blobs/uploads/`, { method: 'POST', redirect: 'error' });
    await start.body?.cancel();
    const location = start.headers.get('location');
    if (start.status !== 202 || !location) throw new Error(`start upload to ${name}: HTTP ${start.status}`);
    const url = new URL(location, this.url);
    if (url.origin !== new URL(this.url).origin) throw new Error(`upload redirected to ${url.href}`);
    const patch = await fetch(url, {
      method: 'PATCH',
      redirect: 'error',
      headers: { 'content-type': MediaTypes.octetStream },
      body: new Uint8Array(blobBytes(this.name('unfinished'))),
    });
    await patch.body?.cancel();
    if (patch.status !== 202) throw new Error(`PATCH upload to ${name}: HTTP ${patch.status}`);
    this.features.unfinishedUploads++;
  }

  /** An existing tag (or a new one) made to name another manifest already in the repository. */
  private async repoint(repo: Repo): Promise<void> {
    const tag = this.rng.pick([...repo.tags.keys(), ...TAGS].filter((t) => !t.startsWith('sha256-')));
    const target = this.live(repo, (m) => m.digest !== repo.tags.get(tag) && this.intact(repo, m));
    if (target.length === 0) return void (await this.image(repo, { tag }));
    const m = this.rng.pick(target);
    await this.client.pushManifest(repo.name, tag, await this.manifestBytes(repo, m), m.mediaType);
    this.features.repointed++;
    this.tag(repo, tag, m.digest);
  }

  /** DELETE through the API (revision link and every tag naming it); never a manifest some index lists. */
  private async remove(repo: Repo): Promise<void> {
    const listed = new Set([...repo.manifests.values()].flatMap((m) => m.children));
    const candidates = this.live(repo, (m) => !listed.has(m.digest));
    if (candidates.length === 0) return;
    // Often the subject of a referrer that stays: garbage-collect does not follow `subject`.
    const subjects = new Set(this.live(repo, (m) => m.subject !== undefined).map((m) => m.subject));
    const ofReferrers = candidates.filter((m) => subjects.has(m.digest));
    const m = this.rng.pick(ofReferrers.length > 0 && this.rng.chance(0.6) ? ofReferrers : candidates);
    await this.client.deleteManifest(repo.name, m.digest);
    m.deleted = true;
    for (const [tag, digest] of repo.tags) if (digest === m.digest) repo.tags.delete(tag);
    this.features[subjects.has(m.digest) ? 'deletedSubjects' : 'deleted']++;
  }

  /**
   * A Windows-style image with a foreign layer (`urls`, never uploaded by a
   * client). Half the time the same bytes are uploaded anyway, so a blob is
   * there that only a foreign descriptor references.
   */
  private async foreignImage(repo: Repo): Promise<void> {
    const foreign = blobBytes(this.name('foreign-layer'));
    if (this.rng.chance(0.5)) await this.client.pushBlob(repo.name, foreign);
    const own = { ...(await this.client.pushBlob(repo.name, blobBytes(this.name('layer')))), mediaType: MediaTypes.dockerLayer };
    const foreignDesc = { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digest: digestOf(foreign), size: foreign.length, urls: ['https://example.invalid/foreign-layer'] };
    const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'windows', rootfs: { type: 'layers', diff_ids: [foreignDesc.digest, own.digest] } }));
    const config = { ...(await this.client.pushBlob(repo.name, configBytes)), mediaType: MediaTypes.dockerConfig };
    const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.dockerManifest, config, layers: [foreignDesc, own] });
    const tag = this.rng.chance(0.6) ? this.rng.pick(TAGS) : undefined;
    const d = await this.client.pushManifest(repo.name, tag ?? digestOf(body), body, MediaTypes.dockerManifest);
    this.features.foreignLayers++;
    this.record(repo, { digest: d.digest, kind: 'image', mediaType: d.mediaType, size: d.size, children: [] }, tag);
  }

  /**
   * DELETE through the API a child of a list or index the repository keeps:
   * the parent then names a manifest that is no revision, so garbage-collect
   * marks the child's blob but not its config and layers (2.x and 3.x alike).
   * The parent no longer pulls, on either side.
   */
  private async removeChild(repo: Repo): Promise<void> {
    const listed = new Set(this.live(repo, (m) => m.kind === 'index').flatMap((m) => m.children));
    const candidates = this.live(repo, (m) => listed.has(m.digest));
    if (candidates.length === 0) return;
    const m = this.rng.pick(candidates);
    await this.client.deleteManifest(repo.name, m.digest);
    m.deleted = true;
    for (const [tag, digest] of repo.tags) if (digest === m.digest) repo.tags.delete(tag);
    this.features.deletedChildren++;
  }

  /** The same manifest (and its children, config and layers) pushed into another repository. */
  private async copyToOther(from: Repo): Promise<void> {
    const others = this.repos.filter((r) => r !== from);
    const candidates = this.live(from, (m) => !m.subject && this.intact(from, m));
    if (others.length === 0 || candidates.length === 0) return;
    const to = this.rng.pick(others);
    const tag = this.rng.chance(0.5) ? this.rng.pick(TAGS) : undefined;
    await this.copy(from, to, this.rng.pick(candidates), tag);
    this.features.crossRepository++;
  }

  private async copy(from: Repo, to: Repo, m: Pushed, tag: string | undefined): Promise<void> {
    const bytes = await this.manifestBytes(from, m);
    if (m.kind === 'index') {
      for (const child of m.children) {
        const pushed = from.manifests.get(child);
        if (!pushed) throw new Error(`${from.name}: child ${child} of ${m.digest} was never recorded`);
        if (!to.manifests.get(child) || to.manifests.get(child)?.deleted) await this.copy(from, to, pushed, undefined);
      }
    } else {
      const json = JSON.parse(bytes.toString('utf8')) as { config: Descriptor; layers: Array<Descriptor & { urls?: string[] }> };
      // A foreign layer is not pushed (its bytes may not even be here).
      const blobs = [json.config, ...json.layers.filter((l) => !l.urls?.length)];
      for (const blob of blobs) await this.client.pushBlob(to.name, await this.blob(from, blob.digest));
    }
    await this.client.pushManifest(to.name, tag ?? m.digest, bytes, m.mediaType);
    this.record(to, { digest: m.digest, kind: m.kind, mediaType: m.mediaType, size: m.size, children: m.children, subject: m.subject }, tag);
  }

  private purgeArgs(): string[] {
    const choice = this.rng.weighted({ none: 4, keep: 1, history: 1, removeTag: 1, removeRepository: 0.7 });
    const tagged = this.repos.filter((r) => [...r.tags.keys()].some((t) => !t.startsWith('sha256-')));
    switch (choice) {
      case 'none':
        return [];
      case 'keep':
        return ['--keep', '1'];
      case 'history':
        return ['--history', '1'];
      case 'removeTag': {
        if (tagged.length === 0) return [];
        const repo = this.rng.pick(tagged);
        return ['-x', `${repo.name}:${this.rng.pick([...repo.tags.keys()].filter((t) => !t.startsWith('sha256-')))}`];
      }
      case 'removeRepository':
        return ['-x', this.rng.pick(this.repos).name];
    }
  }
}

/**
 * Serves `root` with `bin` (or the storage `driver` names, e.g. an s3
 * bucket), pushes the scenario of `seed` and stops the registry. The
 * registry refuses manifests whose layers carry URLs unless
 * `validation.manifests.urls.allow` says otherwise, and startRegistry drops
 * REGISTRY_* variables: a wrapper script in `work` sets it.
 */
export async function buildTree(root: string, seed: number, bin: string, work: string, driver?: StorageDriver): Promise<TreeSummary> {
  const wrapper = path.join(work, 'registry-allowing-layer-urls');
  const quoted = `'${bin.replaceAll("'", `'\\''`)}'`;
  await fs.writeFile(wrapper, `#!/bin/sh\nREGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW='["^https://"]'\nexport REGISTRY_VALIDATION_MANIFESTS_URLS_ALLOW\nexec ${quoted} "$@"\n`, { mode: 0o755 });
  const registry = await startRegistry(root, { bin: wrapper, driver });
  try {
    return await new TreeGenerator(registry.url, new RegistryClient(registry.url), new Rng(seed), seed).generate();
  } finally {
    await registry.stop();
  }
}

// ---------------------------------------------------------------------------
// What a storage tree holds, read straight from the files

export interface Listing {
  /** Digests whose blobs/…/<hex>/data exists. */
  blobs: Set<string>;
  /** Anything else under blobs/ than <alg>/<2 hex>/<hex>/data (an emptied blob directory, a stray file). */
  blobOther: Set<string>;
  /** repository@digest of every revision link (` -> content` added when the link names another digest). */
  revisions: Set<string>;
  /** repository:tag -> digest of every current link. */
  tags: Set<string>;
  /** repository:tag@digest of every tag index entry. */
  tagIndex: Set<string>;
  /** repository@digest of every _layers link. */
  layers: Set<string>;
  /** Every file under _uploads, repository-relative, with a hash of its bytes. */
  uploads: Set<string>;
  /** Any other file under repositories/, and anything in the root beside docker/. */
  other: Set<string>;
}

type Category = keyof Listing;
const CATEGORIES: Category[] = ['blobs', 'blobOther', 'revisions', 'tags', 'tagIndex', 'layers', 'uploads', 'other'];

export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        const before = out.length;
        await walk(p);
        if (out.length === before) out.push(`${path.relative(dir, p)}/`);
      } else out.push(path.relative(dir, p));
    }
  };
  await walk(dir);
  return out;
}

const DIGEST_PATH = /^sha256\/([a-f0-9]{64})\/link$/;

async function classifyRepositoryFile(listing: Listing, base: string, rel: string): Promise<void> {
  const parts = rel.split('/');
  const at = parts.findIndex((p) => p.startsWith('_'));
  // Empty directories are not compared: the registry ignores them, and removals leave them
  // differently (registry 3.x empties `_layers/sha256/<hex>/`, regsweep removes it).
  if (rel.endsWith('/')) return;
  if (at <= 0) return void listing.other.add(`repositories/${rel}`);
  const repo = parts.slice(0, at).join('/');
  const kind = parts[at];
  const rest = parts.slice(at + 1).join('/');
  const content = async (): Promise<string> => (await fs.readFile(path.join(base, rel))).toString('utf8');
  if (kind === '_uploads') {
    listing.uploads.add(`${repo}/${rest} ${createHash('sha256').update(await content()).digest('hex').slice(0, 12)}`);
    return;
  }
  let m: RegExpExecArray | null;
  if (kind === '_layers' && (m = DIGEST_PATH.exec(rest))) return void listing.layers.add(withContent(`${repo}@sha256:${m[1]}`, `sha256:${m[1]}`, await content()));
  if (kind === '_manifests' && (m = /^revisions\/sha256\/([a-f0-9]{64})\/link$/.exec(rest))) {
    return void listing.revisions.add(withContent(`${repo}@sha256:${m[1]}`, `sha256:${m[1]}`, await content()));
  }
  if (kind === '_manifests' && (m = /^tags\/([^/]+)\/current\/link$/.exec(rest))) return void listing.tags.add(`${repo}:${m[1]} -> ${await content()}`);
  if (kind === '_manifests' && (m = /^tags\/([^/]+)\/index\/sha256\/([a-f0-9]{64})\/link$/.exec(rest))) {
    return void listing.tagIndex.add(withContent(`${repo}:${m[1]}@sha256:${m[2]}`, `sha256:${m[2]}`, await content()));
  }
  listing.other.add(`repositories/${rel}`);
}

function withContent(key: string, expected: string, content: string): string {
  return content === expected ? key : `${key} -> ${JSON.stringify(content)}`;
}

export async function listTree(root: string): Promise<Listing> {
  const listing = Object.fromEntries(CATEGORIES.map((c) => [c, new Set<string>()])) as unknown as Listing;
  const v2 = path.join(root, 'docker/registry/v2');
  for (const rel of await filesUnder(path.join(v2, 'blobs'))) {
    const m = /^sha256\/([a-f0-9]{2})\/([a-f0-9]{64})\/data$/.exec(rel);
    if (m && (m[2] as string).startsWith(m[1] as string)) listing.blobs.add(`sha256:${m[2]}`);
    // An emptied two-hex prefix directory is harmless and nobody promises to remove it.
    else if (!/^sha256\/[a-f0-9]{2}\/$/.test(rel)) listing.blobOther.add(`blobs/${rel}`);
  }
  const base = path.join(v2, 'repositories');
  for (const rel of await filesUnder(base)) await classifyRepositoryFile(listing, base, rel);
  for (const name of await fs.readdir(root)) if (name !== 'docker') listing.other.add(name);
  for (const name of await fs.readdir(v2)) if (name !== 'blobs' && name !== 'repositories') listing.other.add(`docker/registry/v2/${name}`);
  return listing;
}

// ---------------------------------------------------------------------------
// The comparison

export interface Difference {
  /** What differs: a listing category, or `prediction`, `pull`, `run`. */
  what: string;
  /** Entries only on A (regsweep --gc builtin). */
  onlyInA: string[];
  /** Entries only on B (regsweep --no-gc, then the registry's garbage-collect), or what was expected of A. */
  onlyInB: string[];
  note?: string;
}

export function setDifference(what: string, a: Set<string>, b: Set<string>, note?: string): Difference | undefined {
  const onlyInA = [...a].filter((x) => !b.has(x)).sort();
  const onlyInB = [...b].filter((x) => !a.has(x)).sort();
  return onlyInA.length + onlyInB.length > 0 ? { what, onlyInA, onlyInB, ...(note ? { note } : {}) } : undefined;
}

const blobOfLink = (link: string): string => link.slice(link.indexOf('@') + 1).split(' ')[0] as string;

/**
 * A against B, category by category. `_layers` is compared against what
 * builtin promises: the links B held after the purge (before the registry's
 * garbage-collect) minus those naming a blob A swept. Registry 2.x leaves
 * _layers alone; 3.x removes the links of swept blobs and also some links of
 * blobs that stay (those no manifest of the repository, nor of a repository
 * enumerated before it, marked), which builtin need not copy.
 */
function compareListings(a: Listing, b: Listing, purged: Listing): Difference[] {
  const out: Array<Difference | undefined> = [];
  for (const c of CATEGORIES) {
    if (c === 'layers') {
      const expected = new Set([...purged.layers].filter((l) => a.blobs.has(blobOfLink(l))));
      out.push(setDifference('layers', a.layers, expected, "B side: the purged tree's _layers links whose blob A kept"));
      // The registry only ever removes _layers links: one it added would be a flaw of this harness.
      const extra = [...b.layers].filter((l) => !purged.layers.has(l));
      if (extra.length > 0) out.push({ what: 'layers', onlyInA: [], onlyInB: extra, note: 'the registry added _layers links' });
    } else {
      out.push(setDifference(c, a[c], b[c]));
    }
  }
  return out.filter((d): d is Difference => d !== undefined);
}

// ---------------------------------------------------------------------------
// Running regsweep and the registry

function findProjectRoot(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; ) {
    try {
      statSync(path.join(dir, 'package.json'));
      return dir;
    } catch {
      const up = path.dirname(dir);
      if (up === dir) throw new Error('no package.json above scripts/stress');
      dir = up;
    }
  }
}

const PROJECT = findProjectRoot();
export const REGSWEEP = path.join(PROJECT, 'bin/regsweep.js');

/** This environment without REGISTRY_* (they would override a config). */
export function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toUpperCase().startsWith('REGISTRY_')));
}

export interface Ran {
  command: string[];
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[]): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ command: [command, ...args], code, stdout, stderr }));
  });
}

export const regsweep = (args: string[]): Promise<Ran> => run(process.execPath, [REGSWEEP, ...args]);

async function writeConfig(file: string, root: string): Promise<void> {
  await fs.writeFile(file, dump({ version: 0.1, log: { level: 'warn' }, storage: { filesystem: { rootdirectory: root }, delete: { enabled: true } } }));
}

export async function copyTree(from: string, to: string): Promise<void> {
  const r = await run('cp', ['-a', from, to]);
  if (r.code !== 0) throw new Error(`cp -a ${from} ${to}: ${r.stderr.trim()}`);
}

/** A registry binary and the version it says it is. */
export interface RegistryBinary {
  version: string;
  bin: string;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * The registry binaries here, by version: `$REGSWEEP_TEST_REGISTRY_BIN` or
 * docker-registry/registry on PATH (2.8.2 on Debian), `$REGISTRY_V3_BIN`, and
 * ../shared/bin/registry-v3.0.0 beside the project.
 */
export async function findRegistries(): Promise<RegistryBinary[]> {
  const candidates = [registryBinary(), process.env['REGISTRY_V3_BIN'], path.join(PROJECT, '../shared/bin/registry-v3.0.0')];
  const found = new Map<string, string>();
  for (const bin of candidates) {
    if (!bin || !isExecutable(bin)) continue;
    const r = await run(bin, ['--version']);
    const version = (r.stdout.trim().split(/\s+/).pop() ?? '').replace(/^v/, '').replace(/\+.*$/, '');
    if (r.code === 0 && /^\d+\.\d+\.\d+/.test(version) && !found.has(version)) found.set(version, bin);
  }
  return [...found].map(([version, bin]) => ({ version, bin }));
}

/** Pulls every ref (`repository:tag` or `repository@digest`) whole from `root` (or `driver`'s storage) served by `bin`; the failures, each `ref: why`. */
export async function pullAll(root: string, bin: string, refs: string[], driver?: StorageDriver): Promise<{ ok: number; failed: string[] }> {
  const registry = await startRegistry(root, { bin, driver });
  try {
    const client = new RegistryClient(registry.url);
    const failed: string[] = [];
    for (const ref of refs) {
      const m = /^(.+?)([:@])(.+)$/.exec(ref) as RegExpExecArray;
      try {
        await client.pullWhole(m[1] as string, m[3] as string);
      } catch (error) {
        failed.push(`${ref}: ${(error as Error).message.split('\n')[0]}`);
      }
    }
    return { ok: refs.length - failed.length, failed };
  } finally {
    await registry.stop();
  }
}

/** Pulls refs whole from one side: how many pulled, and the failures, each `ref: why`. */
export type Puller = (refs: string[]) => Promise<{ ok: number; failed: string[] }>;

/**
 * Pulls every ref from A; what fails there is pulled from B too. A ref that
 * fails on A only is a difference; one that fails on both was broken by the
 * scenario itself (an index whose child was deleted through the API).
 */
export async function comparePulls(pullA: Puller, pullB: Puller, refs: string[]): Promise<{ ok: number; failedOnBoth: string[]; difference?: Difference }> {
  const onA = await pullA(refs);
  if (onA.failed.length === 0) return { ok: onA.ok, failedOnBoth: [] };
  const refOf = (failure: string): string => failure.slice(0, failure.indexOf(': '));
  const onB = await pullB(onA.failed.map(refOf));
  const failsOnB = new Set(onB.failed.map(refOf));
  const onlyA = onA.failed.filter((f) => !failsOnB.has(refOf(f)));
  const both = onA.failed.filter((f) => failsOnB.has(refOf(f))).map(refOf);
  return {
    ok: onA.ok,
    failedOnBoth: both,
    ...(onlyA.length > 0 ? { difference: { what: 'pull', onlyInA: onlyA, onlyInB: [], note: 'these fail on A and pull whole on B' } } : {}),
  };
}

/** Every tag and revision a tree holds, as refs to pull. */
export function pullRefs(listing: Listing): string[] {
  const tags = [...listing.tags].map((t) => t.split(' -> ')[0] as string);
  const revisions = [...listing.revisions].map((r) => r.split(' -> ')[0] as string);
  return [...tags.sort(), ...revisions.sort()];
}

// ---------------------------------------------------------------------------
// One seed

export interface SeedOptions {
  seed: number;
  registry: RegistryBinary;
  /** Copies the original tree, A, B and the reports here (DIR/<version>-seed-<seed>) on a difference. */
  keepFailures?: string;
  /**
   * Leaves out the registry's garbage-collect on B, so B is only purged: the
   * comparison must then find differences (proves it can fail).
   */
  skipRegistryGc?: boolean;
}

export interface SeedResult {
  seed: number;
  version: string;
  summary: TreeSummary;
  counts: { blobsBefore: number; blobsAfter: number; revisionsBefore: number; revisionsAfter: number; tagsAfter: number; layersPurged: number; layersA: number; layersB: number };
  differences: Difference[];
  /** Refs pulled whole from A; refs that fail on A and on B alike (broken by the scenario, e.g. a deleted child). */
  pulls: { ok: number; failedOnBoth: string[] };
  /** Problems the two regsweep runs reported (exit 1), for the record. */
  problems: { a: string[]; b: string[] };
  /** Where the trees were kept, on a difference with keepFailures. */
  keptAt?: string;
  durationMs: number;
}

interface Sides {
  work: string;
  orig: string;
  a: string;
  b: string;
  log: Record<string, string>;
}

export function problemsOf(ran: Ran): string[] {
  try {
    const report = JSON.parse(ran.stdout) as { problems?: Array<{ message?: string } | string> };
    return (report.problems ?? []).map((p) => (typeof p === 'string' ? p : (p.message ?? JSON.stringify(p))));
  } catch {
    return [];
  }
}

export function runFailure(what: string, ran: Ran): Difference {
  return { what: 'run', onlyInA: [], onlyInB: [], note: `${what} exited ${ran.code}: ${(ran.stderr || ran.stdout).trim().split('\n').slice(-5).join(' | ')}` };
}

interface BothSides {
  differences: Difference[];
  problems: SeedResult['problems'];
  predicted?: number;
  /** B after regsweep --no-gc, before the registry's garbage-collect. */
  purged: Listing;
}

/** regsweep --gc builtin on A; regsweep --no-gc then garbage-collect on B. Failures come back as differences. */
async function collectBothSides(s: Sides, opts: SeedOptions, purge: string[]): Promise<BothSides> {
  const { bin } = opts.registry;
  const [configA, configB] = [path.join(s.work, 'config-a.yml'), path.join(s.work, 'config-b.yml')];
  await writeConfig(configA, s.a);
  await writeConfig(configB, s.b);
  const ranA = await regsweep(['--path', s.a, '--yes', '--json', '--gc', 'builtin', '--grace', '0s', '--config', configA, '--registry-bin', bin, ...purge]);
  const ranB = await regsweep(['--path', s.b, '--yes', '--json', '--no-gc', '--registry-bin', bin, ...purge]);
  s.log['regsweep-a.json'] = `${ranA.command.join(' ')}\nexit ${ranA.code}\n${ranA.stderr}\n${ranA.stdout}`;
  s.log['regsweep-b.json'] = `${ranB.command.join(' ')}\nexit ${ranB.code}\n${ranB.stderr}\n${ranB.stdout}`;
  const differences: Difference[] = [];
  if (ranA.code !== 0 && ranA.code !== 1) differences.push(runFailure('regsweep on A (--gc builtin)', ranA));
  if (ranB.code !== 0 && ranB.code !== 1) differences.push(runFailure('regsweep on B (--no-gc)', ranB));
  const purged = await listTree(s.b);
  if (!opts.skipRegistryGc) {
    const gc = await run(bin, ['garbage-collect', configB]);
    s.log['garbage-collect-b.txt'] = `${gc.command.join(' ')}\nexit ${gc.code}\n${gc.stdout}${gc.stderr}`;
    if (gc.code !== 0) differences.push(runFailure(`${bin} garbage-collect on B`, gc));
  }
  let predicted: number | undefined;
  try {
    predicted = (JSON.parse(ranA.stdout) as { predicted?: { blobs?: number } }).predicted?.blobs;
  } catch {
    // A run that failed is reported above.
  }
  return { differences, problems: { a: problemsOf(ranA), b: problemsOf(ranB) }, predicted, purged };
}

async function keepTrees(s: Sides, opts: SeedOptions, text: string): Promise<string> {
  const dir = path.join(path.resolve(opts.keepFailures as string), `${opts.registry.version}-seed-${opts.seed}`);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  for (const [name, from] of [['original', s.orig], ['A-builtin', s.a], ['B-registry', s.b]] as const) {
    if (await fs.stat(from).then(() => true, () => false)) await copyTree(from, path.join(dir, name));
  }
  for (const [name, content] of Object.entries(s.log)) await fs.writeFile(path.join(dir, name), content);
  await fs.writeFile(path.join(dir, 'report.txt'), text);
  return dir;
}

/** Builds the seed's tree with the registry of that version, collects it both ways, compares, and pulls A whole. */
export async function runSeed(opts: SeedOptions): Promise<SeedResult> {
  const started = Date.now();
  const work = await fs.mkdtemp(path.join(os.tmpdir(), `regsweep-stress-${opts.registry.version}-${opts.seed}-`));
  const s: Sides = { work, orig: path.join(work, 'original'), a: path.join(work, 'a'), b: path.join(work, 'b'), log: {} };
  try {
    await fs.mkdir(s.orig);
    const summary = await buildTree(s.orig, opts.seed, opts.registry.bin, work);
    s.log['scenario.json'] = `${JSON.stringify(summary, null, 2)}\n`;
    await copyTree(s.orig, s.a);
    await copyTree(s.orig, s.b);
    const before = await listTree(s.orig);
    const sides = await collectBothSides(s, opts, summary.purgeArgs);
    const [a, b] = [await listTree(s.a), await listTree(s.b)];
    const differences = [...sides.differences, ...compareListings(a, b, sides.purged)];
    const swept = before.blobs.size - a.blobs.size;
    if (sides.predicted !== undefined && sides.predicted !== swept) {
      differences.push({ what: 'prediction', onlyInA: [], onlyInB: [], note: `regsweep on A predicted ${sides.predicted} blobs swept, A lost ${swept}` });
    }
    const { bin } = opts.registry;
    const pulls = await comparePulls((refs) => pullAll(s.a, bin, refs), (refs) => pullAll(s.b, bin, refs), pullRefs(a));
    if (pulls.difference) differences.push(pulls.difference);
    const result: SeedResult = {
      seed: opts.seed,
      version: opts.registry.version,
      summary,
      counts: {
        blobsBefore: before.blobs.size,
        blobsAfter: a.blobs.size,
        revisionsBefore: before.revisions.size,
        revisionsAfter: a.revisions.size,
        tagsAfter: a.tags.size,
        layersPurged: sides.purged.layers.size,
        layersA: a.layers.size,
        layersB: b.layers.size,
      },
      differences,
      pulls,
      problems: sides.problems,
      durationMs: 0,
    };
    if (differences.length > 0 && opts.keepFailures) result.keptAt = await keepTrees(s, opts, formatResult({ ...result, durationMs: Date.now() - started }));
    return { ...result, durationMs: Date.now() - started };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Reporting and the command line

export function featureList(f: Record<Feature, number>): string {
  return FEATURES.filter((k) => f[k] > 0)
    .map((k) => `${k} ${f[k]}`)
    .join(', ');
}

/** Every differing entry on each side, the sides named by `names` (`A (…)`, `B (…)`: the first word is the short name). */
export function differenceLines(differences: Difference[], names: [string, string]): string[] {
  const [a, b] = names.map((n) => n.split(' ')[0] as string);
  const lines: string[] = [];
  for (const d of differences) {
    lines.push(`  ${d.what}: ${d.onlyInA.length} only in ${names[0]}, ${d.onlyInB.length} only in ${names[1]}${d.note ? ` — ${d.note}` : ''}`);
    for (const x of d.onlyInA) lines.push(`    ${a} only: ${x}`);
    for (const x of d.onlyInB) lines.push(`    ${b} only: ${x}`);
  }
  return lines;
}

/** One line per seed, then on a difference every differing entry on each side. */
export function formatResult(r: SeedResult): string {
  const c = r.counts;
  const purge = r.summary.purgeArgs.length > 0 ? r.summary.purgeArgs.join(' ') : '(default purge)';
  const head =
    `${r.version} seed ${r.seed}: ${r.differences.length === 0 ? 'same' : 'DIFFERENT'} — ` +
    `${r.summary.repositories.length} repositories, ${c.revisionsBefore} revisions → ${c.revisionsAfter}, ${c.tagsAfter} tags, ` +
    `blobs ${c.blobsBefore} → ${c.blobsAfter}, _layers ${c.layersPurged} → A ${c.layersA} / B ${c.layersB}, ${r.pulls.ok} pulls whole${r.pulls.failedOnBoth.length ? ` (${r.pulls.failedOnBoth.length} broken on both sides)` : ''}; ${purge}; ${(r.durationMs / 1000).toFixed(1)} s`;
  const lines = [head, `  scenario: ${featureList(r.summary.features)}`];
  if (r.pulls.failedOnBoth.length > 0) lines.push(`  broken on both sides alike, by the scenario: ${r.pulls.failedOnBoth.join(', ')}`);
  if (r.problems.a.length + r.problems.b.length > 0) lines.push(`  problems reported: A ${JSON.stringify(r.problems.a)} B ${JSON.stringify(r.problems.b)}`);
  lines.push(...differenceLines(r.differences, ['A (builtin)', 'B (registry)']));
  if (r.keptAt) lines.push(`  trees kept in ${r.keptAt}`);
  return `${lines.join('\n')}\n`;
}

interface Args {
  seeds: number;
  first: number;
  versions: string[];
  keepFailures?: string;
  /** `--crash N`: N kill points per shape instead of the differential (scripts/crash.ts). */
  crash?: number;
  shapes: string[];
  pick: string;
  /** `--s3`: the scenarios on a radosgw bucket against the same on a disk (scripts/stressS3.ts). */
  s3: boolean;
}

function wholeNumber(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new Error(`--${name} needs a whole number, not ${value}`);
  return Number(value);
}

function parseArgs(argv: string[]): Args {
  const { values } = parseArgv({
    args: argv,
    options: { seeds: { type: 'string' }, first: { type: 'string' }, versions: { type: 'string' }, 'keep-failures': { type: 'string' }, crash: { type: 'string' }, shapes: { type: 'string' }, pick: { type: 'string' }, s3: { type: 'boolean' } },
  });
  if (values.s3 && values.crash !== undefined) throw new Error('--s3 and --crash do not go together');
  const shapes = (values.shapes ?? 'path,container').split(',').filter(Boolean);
  for (const shape of shapes) if (shape !== 'path' && shape !== 'container') throw new Error(`--shapes takes path and container, not ${shape}`);
  const pick = values.pick ?? 'uniform';
  if (pick !== 'uniform' && pick !== 'kinds') throw new Error(`--pick takes uniform or kinds, not ${pick}`);
  return {
    seeds: wholeNumber('seeds', values.seeds, 10),
    first: wholeNumber('first', values.first, 1),
    versions: (values.versions ?? '2.8.2,3.0.0').split(',').filter(Boolean),
    keepFailures: values['keep-failures'],
    crash: values.crash === undefined ? undefined : wholeNumber('crash', values.crash, 0),
    shapes,
    pick,
    s3: values.s3 ?? false,
  };
}

async function main(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (error) {
    console.error(`stress: ${(error as Error).message}\nusage: npm run stress -- [--s3] --seeds N [--first S] [--versions 2.8.2,3.0.0] [--keep-failures DIR]\n       npm run stress -- --crash N [--first S] [--shapes path,container] [--pick uniform|kinds] [--keep-failures DIR]`);
    return 2;
  }
  const registries = await findRegistries();
  const chosen = args.versions.map((v) => ({ v, r: registries.find((r) => r.version === v) }));
  for (const { v, r } of chosen) if (!r) console.log(`registry ${v}: no binary here, skipped`);
  const usable = chosen.flatMap(({ r }) => (r ? [r] : []));
  if (usable.length === 0) {
    console.error(`stress: none of ${args.versions.join(', ')} is here (found: ${registries.map((r) => `${r.version} ${r.bin}`).join(', ') || 'none'})`);
    return 2;
  }
  if (args.crash !== undefined) {
    const { crashMain } = await import('./crash.js');
    return crashMain({ kills: args.crash, first: args.first, shapes: args.shapes as Array<'path' | 'container'>, registry: usable[0] as RegistryBinary, pick: args.pick as 'uniform' | 'kinds', keepFailures: args.keepFailures });
  }
  if (args.s3) {
    const { s3Main } = await import('./stressS3.js');
    return s3Main({ seeds: args.seeds, first: args.first, registries: usable, keepFailures: args.keepFailures });
  }
  const different: string[] = [];
  const started = Date.now();
  for (const registry of usable) {
    console.log(`registry ${registry.version}: ${registry.bin}; seeds ${args.first} … ${args.first + args.seeds - 1}`);
    for (let seed = args.first; seed < args.first + args.seeds; seed++) {
      const result = await runSeed({ seed, registry, keepFailures: args.keepFailures }).catch((error: Error) => error);
      if (result instanceof Error) {
        console.log(`${registry.version} seed ${seed}: FAILED — ${result.message}`);
        different.push(`${registry.version} seed ${seed}`);
        continue;
      }
      process.stdout.write(formatResult(result));
      if (result.differences.length > 0) different.push(`${registry.version} seed ${seed}`);
    }
  }
  const total = args.seeds * usable.length;
  console.log(`${total - different.length} of ${total} seeds the same in ${((Date.now() - started) / 1000).toFixed(0)} s${different.length ? `; different: ${different.join(', ')}` : ''}`);
  return different.length > 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // Not a top-level await: --crash imports scripts/crash.ts, which imports this module, which must have finished loading.
  void main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
