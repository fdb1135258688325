/**
 * A mixed registry pushed through the real HTTP API: history, multi-arch
 * lists and OCI indexes whose children are untagged, referrers with subjects,
 * a fallback signature tag, shared layers, nested repositories and an orphan
 * upload. It records what a correct purge must keep and what it must remove.
 */
import { type Descriptor, MediaTypes, RegistryClient, type RunningRegistry, blobBytes, pushImage, pushIndex, startRegistry } from '../../scripts/registryClient.js';

/**
 * The real registry on a test's storage root, served while the test pushes or
 * pulls and stopped while regsweep works on the tree (a `--path` target).
 * `root` is read at each start, so a `beforeAll` may set it.
 */
export class RegistryOnRoot {
  private running: RunningRegistry | undefined;

  constructor(
    private readonly root: () => string,
    private readonly bin: string | undefined,
  ) {}

  async serve(): Promise<RegistryClient> {
    this.running = await startRegistry(this.root(), { bin: this.bin });
    return new RegistryClient(this.running.url);
  }

  async stop(): Promise<void> {
    await this.running?.stop();
    this.running = undefined;
  }
}

interface Ref {
  repository: string;
  digest: string;
}

export interface Scenario {
  tags: Array<{ repository: string; tag: string }>;
  /** Digests that must still pull whole after the purge. */
  kept: Ref[];
  /** Digests the purge must remove (404 afterwards). */
  removed: Ref[];
}

export async function pushMixedScenario(client: RegistryClient): Promise<Scenario> {
  const s: Scenario = { tags: [], kept: [], removed: [] };
  const keep = (repository: string, d: Descriptor, tag?: string): void => {
    s.kept.push({ repository, digest: d.digest });
    if (tag) s.tags.push({ repository, tag });
  };
  const gone = (repository: string, d: Descriptor): void => {
    s.removed.push({ repository, digest: d.digest });
  };

  // History: `latest` pushed twice leaves the first image untagged.
  gone('team/web', (await pushImage(client, 'team/web', { tag: 'latest', seed: 'web-a' })).descriptor);
  keep('team/web', (await pushImage(client, 'team/web', { tag: 'latest', seed: 'web-b' })).descriptor, 'latest');
  keep('team/web', (await pushImage(client, 'team/web', { tag: 'v2', seed: 'web-c' })).descriptor, 'v2');
  // Nested names: `team` is a repository and a namespace at once.
  gone('team', (await pushImage(client, 'team', { tag: 'latest', seed: 'team-a' })).descriptor);
  keep('team', (await pushImage(client, 'team', { tag: 'latest', seed: 'team-b' })).descriptor, 'latest');
  keep('team/web/api', (await pushImage(client, 'team/web/api', { tag: 'v1', seed: 'api' })).descriptor, 'v1');

  // Multi-arch Docker lists: children pushed by digest only, sharing a base layer.
  const base = [blobBytes('multi-base', 2900)];
  const listOf = async (seed: string): Promise<{ list: Descriptor; children: Descriptor[] }> => {
    const children: Descriptor[] = [];
    for (const arch of ['amd64', 'arm64']) {
      const child = await pushImage(client, 'multi/app', { seed: `${seed}-${arch}`, sharedLayers: base, platform: { architecture: arch, os: 'linux' } });
      children.push(child.descriptor);
    }
    return { list: await pushIndex(client, 'multi/app', { tag: 'latest', children, format: 'docker' }), children };
  };
  const old = await listOf('multi-old');
  [old.list, ...old.children].forEach((d) => gone('multi/app', d));
  const now = await listOf('multi-new');
  keep('multi/app', now.list, 'latest');
  now.children.forEach((d) => keep('multi/app', d));

  // OCI index with a signature on the index, an SBOM on a child, and a fallback signature tag.
  const o1 = (await pushImage(client, 'oci/app', { seed: 'oci-1', format: 'oci' })).descriptor;
  const o2 = (await pushImage(client, 'oci/app', { seed: 'oci-2', format: 'oci' })).descriptor;
  const index = await pushIndex(client, 'oci/app', { tag: 'v1', children: [o1, o2], format: 'oci' });
  [o1, o2].forEach((d) => keep('oci/app', d));
  keep('oci/app', index, 'v1');
  keep('oci/app', (await pushImage(client, 'oci/app', { seed: 'oci-sig', subject: index, artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json' })).descriptor);
  keep('oci/app', (await pushImage(client, 'oci/app', { seed: 'oci-sbom', subject: o1, artifactType: 'application/spdx+json' })).descriptor);
  const fallback = `sha256-${index.digest.slice('sha256:'.length)}.sig`;
  keep('oci/app', (await pushImage(client, 'oci/app', { seed: 'oci-fallback-sig', tag: fallback, format: 'oci', layers: 1 })).descriptor, fallback);
  // An index without mediaType: the registry and regsweep identify it by shape.
  const bare = (await pushImage(client, 'oci/app', { seed: 'oci-bare', format: 'oci', omitMediaType: true })).descriptor;
  keep('oci/app', bare);
  keep('oci/app', await pushIndex(client, 'oci/app', { tag: 'bare', children: [bare], format: 'oci', omitMediaType: true }), 'bare');

  // A removed image takes its referrer with it.
  const h1 = (await pushImage(client, 'hist/app', { tag: 'latest', seed: 'hist-1', format: 'oci' })).descriptor;
  gone('hist/app', h1);
  gone('hist/app', (await pushImage(client, 'hist/app', { seed: 'hist-1-sig', subject: h1, artifactType: MediaTypes.ociEmpty })).descriptor);
  gone('hist/app', (await pushImage(client, 'hist/app', { tag: 'latest', seed: 'hist-2' })).descriptor);
  keep('hist/app', (await pushImage(client, 'hist/app', { tag: 'latest', seed: 'hist-3' })).descriptor, 'latest');

  // A base layer shared across repositories outlives the image removed in one of them.
  const shared = [blobBytes('shared-base', 2950)];
  gone('shared/one', (await pushImage(client, 'shared/one', { tag: 'latest', seed: 'one-a', sharedLayers: shared })).descriptor);
  keep('shared/one', (await pushImage(client, 'shared/one', { tag: 'latest', seed: 'one-b' })).descriptor, 'latest');
  keep('shared/two', (await pushImage(client, 'shared/two', { tag: 'latest', seed: 'two', sharedLayers: shared })).descriptor, 'latest');

  // An upload nothing references: garbage-collect sweeps it, and the prediction must count it.
  await client.pushBlob('uploads/only', blobBytes('orphan', 1234));
  return s;
}
