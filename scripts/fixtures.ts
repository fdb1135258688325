/**
 * `npm run fixtures`: regenerates test/fixtures/storage and
 * test/fixtures/scenario.json.
 *
 * It serves a fresh temporary root with the real registry (distribution 2.x,
 * `docker-registry` on PATH or $REGSWEEP_TEST_REGISTRY_BIN), pushes one small
 * scenario through the HTTP API, stops the registry and copies the storage
 * tree (the directory holding docker/registry/v2) into the fixtures. Every
 * byte pushed is derived from a seed string, so running it again writes the
 * same files with the same digests.
 *
 * scenario.json names what was pushed by role (digests, tags, references),
 * so tests state expectations in terms of roles, never hard-coded digests.
 *
 * git keeps neither empty directories nor mtimes, so the copy leaves out
 * empty directories (what a fresh clone holds is what this writes) and tests
 * must not depend on times. Every repository has a tag, so each one's
 * `_manifests/tags` directory survives in git (registry 2.x garbage-collect
 * aborts without it).
 *
 * Options: `--out DIR` writes DIR/storage and DIR/scenario.json instead.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import {
  type Descriptor,
  type Platform,
  type PushedImage,
  RegistryClient,
  blobBytes,
  blobSize,
  digestOf,
  pushImage,
  pushIndex,
  startRegistry,
} from './registryClient.js';

/** One manifest the scenario pushed. */
export interface FixtureManifest {
  repository: string;
  digest: string;
  mediaType: string;
  kind: 'image' | 'index';
  /** Tags whose current link names it once the scenario is pushed; [] when untagged. */
  tags: string[];
  /** Image: its config blob. */
  config?: string;
  /** Image: its layer blobs, in manifest order. */
  layers?: string[];
  /** List or index: its child manifests. */
  children?: string[];
  /** Referrer: the manifest its `subject` names. */
  subject?: string;
  /**
   * What garbage-collect marks through this revision: the manifest's own blob
   * plus its config and layers (image) or its children (list, index).
   */
  blobs: string[];
}

export interface FixtureScenario {
  description: string;
  /** Every repository, sorted. */
  repositories: string[];
  /** Every tag as pushed last, sorted by repository then tag. */
  tags: Array<{ repository: string; tag: string; digest: string }>;
  /** Every manifest, by role. */
  manifests: Record<string, FixtureManifest>;
  /** Blobs with a role of their own. */
  blobs: {
    /** A layer in two repositories (app's first build and team/web:latest). */
    sharedLayer: { digest: string; size: number; users: string[] };
    /** Uploaded to `app`, referenced by no manifest. */
    orphan: { digest: string; size: number };
  };
}

const DESCRIPTION =
  'Pushed through the real registry by scripts/fixtures.ts (npm run fixtures); regenerate rather than edit. ' +
  'Roles: app history (latest pushed three times, stable, a fallback signature tag on the current latest and one on the first build), ' +
  'multi:1.0 (Docker manifest list, children by digest), signed:v1 (OCI index, children by digest, an SBOM referrer by digest), ' +
  'nested team/web and team/web/api, a layer shared by app and team/web, an orphan upload in app.';

/** A few hundred bytes (160 … 399), from the seed: small enough to commit, distinct per seed. */
function smallBlob(seed: string): Buffer {
  return blobBytes(seed, 160 + (blobSize(seed) % 240));
}

function fallbackTag(subject: Descriptor, suffix: string): string {
  return `sha256-${subject.digest.slice('sha256:'.length)}.${suffix}`;
}

class Recorder {
  readonly manifests: Record<string, FixtureManifest> = {};

  image(role: string, repository: string, pushed: PushedImage, subject?: Descriptor): Descriptor {
    const config = pushed.config.digest;
    const layers = pushed.layers.map((l) => l.digest);
    this.add(role, {
      repository,
      digest: pushed.descriptor.digest,
      mediaType: pushed.descriptor.mediaType,
      kind: 'image',
      tags: [],
      config,
      layers,
      ...(subject ? { subject: subject.digest } : {}),
      blobs: [pushed.descriptor.digest, config, ...layers],
    });
    return pushed.descriptor;
  }

  index(role: string, repository: string, pushed: Descriptor, children: Descriptor[]): Descriptor {
    const digests = children.map((c) => c.digest);
    this.add(role, { repository, digest: pushed.digest, mediaType: pushed.mediaType, kind: 'index', tags: [], children: digests, blobs: [pushed.digest, ...digests] });
    return pushed;
  }

  private add(role: string, m: FixtureManifest): void {
    if (this.manifests[role]) throw new Error(`role ${role} recorded twice`);
    if (Object.values(this.manifests).some((o) => o.repository === m.repository && o.digest === m.digest)) {
      throw new Error(`role ${role}: ${m.repository}@${m.digest} already has a role (seeds must differ)`);
    }
    this.manifests[role] = m;
  }
}

const amd64: Platform = { architecture: 'amd64', os: 'linux' };
const arm64: Platform = { architecture: 'arm64', os: 'linux' };

/** Pushes the scenario into the registry at `url` and says what it pushed. */
export async function pushFixtureScenario(url: string): Promise<FixtureScenario> {
  const client = new RegistryClient(url);
  const r = new Recorder();
  const shared = smallBlob('shared-base-layer');
  const img = (repository: string, seed: string, extra: Partial<Parameters<typeof pushImage>[2]> = {}) =>
    pushImage(client, repository, { seed, layers: [smallBlob(`${seed}/layer`)], ...extra });

  // History: app:latest pushed three times. Each build is signed with a
  // fallback tag (cosign style: a plain OCI manifest tagged sha256-<hex>.sig).
  // The first build carries the layer team/web shares.
  const build1 = r.image('appHistory1', 'app', await img('app', 'app-build-1', { tag: 'latest', sharedLayers: [shared] }));
  const sig1Tag = fallbackTag(build1, 'sig');
  r.image('appSigOfHistory1', 'app', await img('app', 'app-build-1-sig', { tag: sig1Tag, format: 'oci' }));
  r.image('appHistory2', 'app', await img('app', 'app-build-2', { tag: 'latest' }));
  const build3 = r.image('appLatest', 'app', await img('app', 'app-build-3', { tag: 'latest' }));
  const sig3Tag = fallbackTag(build3, 'sig');
  r.image('appSigOfLatest', 'app', await img('app', 'app-build-3-sig', { tag: sig3Tag, format: 'oci' }));
  r.image('appStable', 'app', await img('app', 'app-stable', { tag: 'stable' }));
  // An upload nothing references (a push that never got to its manifest).
  const orphanBytes = smallBlob('orphan-upload');
  const orphan = await client.pushBlob('app', orphanBytes);

  // A multi-arch Docker manifest list whose children are pushed by digest only.
  const multiChildren = [
    r.image('multiAmd64', 'multi', await img('multi', 'multi-amd64', { platform: amd64 })),
    r.image('multiArm64', 'multi', await img('multi', 'multi-arm64', { platform: arm64 })),
  ];
  r.index('multiList', 'multi', await pushIndex(client, 'multi', { tag: '1.0', format: 'docker', children: multiChildren.map((c, i) => ({ ...c, platform: [amd64, arm64][i] })) }), multiChildren);

  // An OCI index, children by digest, and an SBOM referrer of the index by digest.
  const ociChildren = [
    r.image('ociAmd64', 'signed', await img('signed', 'signed-amd64', { platform: amd64, format: 'oci' })),
    r.image('ociArm64', 'signed', await img('signed', 'signed-arm64', { platform: arm64, format: 'oci' })),
  ];
  const index = r.index('ociIndex', 'signed', await pushIndex(client, 'signed', { tag: 'v1', format: 'oci', children: ociChildren.map((c, i) => ({ ...c, platform: [amd64, arm64][i] })) }), ociChildren);
  r.image('ociReferrer', 'signed', await img('signed', 'signed-sbom', { subject: index, artifactType: 'application/spdx+json' }), index);

  // Nested names: team/web and team/web/api are both repositories.
  r.image('webLatest', 'team/web', await img('team/web', 'team-web', { tag: 'latest', sharedLayers: [shared] }));
  r.image('apiV1', 'team/web/api', await img('team/web/api', 'team-web-api', { tag: 'v1' }));

  // Tags as the registry now holds them, and which manifest each names.
  const tags: FixtureScenario['tags'] = [];
  const repositories = [...new Set(Object.values(r.manifests).map((m) => m.repository))].sort();
  for (const repository of repositories) {
    for (const tag of (await client.tags(repository)).sort()) {
      const res = await client.getManifest(repository, tag);
      if (res.status !== 200 || !res.digest) throw new Error(`${repository}:${tag}: GET manifest answered ${res.status}`);
      tags.push({ repository, tag, digest: res.digest });
      const owner = Object.values(r.manifests).find((m) => m.repository === repository && m.digest === res.digest);
      if (!owner) throw new Error(`${repository}:${tag} names ${res.digest}, which has no role`);
      owner.tags.push(tag);
    }
    // garbage-collect 2.x aborts on a repository without _manifests/tags, and git keeps no empty directory.
    if (!tags.some((t) => t.repository === repository)) throw new Error(`repository ${repository} has no tag`);
  }

  const users = Object.entries(r.manifests)
    .filter(([, m]) => m.layers?.includes(digestOf(shared)))
    .map(([role]) => role)
    .sort();
  return {
    description: DESCRIPTION,
    repositories,
    tags,
    manifests: r.manifests,
    blobs: {
      sharedLayer: { digest: digestOf(shared), size: shared.length, users },
      orphan: { digest: orphan.digest, size: orphanBytes.length },
    },
  };
}

/**
 * Copies the files below `from` to `to` (which must not exist), leaving out
 * directories with no file below them: git would not keep them either.
 * Returns the number of files copied.
 */
async function copyFiles(from: string, to: string): Promise<number> {
  let files = 0;
  for (const e of (await fs.readdir(from, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const src = path.join(from, e.name);
    const dst = path.join(to, e.name);
    if (e.isDirectory()) {
      files += await copyFiles(src, dst);
    } else if (e.isFile()) {
      await fs.mkdir(to, { recursive: true });
      await fs.copyFile(src, dst);
      await fs.chmod(dst, 0o644);
      files++;
    } else {
      throw new Error(`${src}: neither a file nor a directory`);
    }
  }
  return files;
}

/** Registry bookkeeping that must not reach the fixture: it differs on every run. */
async function assertNoUploadsLeft(root: string): Promise<void> {
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (!e.isDirectory()) continue;
      if (e.name === '_uploads') {
        const left = await fs.readdir(p);
        if (left.length > 0) throw new Error(`${p} still holds ${left.join(', ')}: an upload did not complete`);
      } else {
        await walk(p);
      }
    }
  };
  await walk(path.join(root, 'docker/registry/v2/repositories'));
}

export interface FixtureResult {
  scenario: FixtureScenario;
  files: number;
}

/** Pushes the scenario with the real registry and writes `outDir`/storage and `outDir`/scenario.json. */
export async function writeFixture(outDir: string, opts: { bin?: string } = {}): Promise<FixtureResult> {
  const root = await fs.mkdtemp(path.join(tmpdir(), 'regsweep-fixture-'));
  try {
    const registry = await startRegistry(root, opts);
    let scenario: FixtureScenario;
    try {
      scenario = await pushFixtureScenario(registry.url);
    } finally {
      await registry.stop();
    }
    await assertNoUploadsLeft(root);

    await fs.mkdir(outDir, { recursive: true });
    const storage = path.join(outDir, 'storage');
    const staging = path.join(outDir, `.storage-${process.pid}`);
    await fs.rm(staging, { recursive: true, force: true });
    const files = await copyFiles(root, staging);
    await fs.rm(storage, { recursive: true, force: true });
    await fs.rename(staging, storage);
    await fs.writeFile(path.join(outDir, 'scenario.json'), `${JSON.stringify(scenario, null, 2)}\n`);
    return { scenario, files };
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}

/** The directory holding package.json above this file (scripts/ when run from source, dist/scripts/ when built). */
async function projectRoot(): Promise<string> {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; ) {
    if (await fs.stat(path.join(dir, 'package.json')).then(() => true, () => false)) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('no package.json above scripts/fixtures');
    dir = up;
  }
}

async function main(argv: string[]): Promise<void> {
  const at = argv.indexOf('--out');
  if (at >= 0 && !argv[at + 1]) throw new Error('--out needs a directory');
  const outDir = at >= 0 ? path.resolve(argv[at + 1] as string) : path.join(await projectRoot(), 'test/fixtures');
  const { scenario, files } = await writeFixture(outDir);
  const manifests = Object.keys(scenario.manifests).length;
  console.log(`${path.join(outDir, 'storage')}: ${files} files, ${scenario.repositories.length} repositories, ${scenario.tags.length} tags, ${manifests} manifests`);
  console.log(`${path.join(outDir, 'scenario.json')}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    await main(process.argv.slice(2));
  } catch (err) {
    console.error(`fixtures: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
