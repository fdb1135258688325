/**
 * The bucket inventory on what the real registry writes: 2.8.2 and 3.0.0
 * serve with the `s3` driver on a radosgw bucket, the mixed scenario is pushed
 * through their HTTP API, and the inventory, finding the bucket from the very
 * config they served with, must see every pushed tag, manifest and blob, with
 * the sizes the registry reports, and no problem.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, registryBinary } from '../../../scripts/registryClient.js';
import type { Digest } from '../../../src/model.js';
import { type BucketClient, openBucketClient } from '../../../src/storage/s3/client.js';
import { type BucketInventory, inventoryBucket } from '../../../src/storage/s3/inventory.js';
import { storageDriver } from '../../../src/storage/s3/location.js';
import { RADOSGW_MISSING, type Radosgw, startRadosgw } from '../../support/radosgw.js';
import { startS3Registry } from '../../support/s3Registry.js';
import { type Scenario, pushMixedScenario } from '../../support/scenario.js';
import { registryV3Bin } from '../../support/registryV3.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

const V2_BIN = registryBinary();

const ACCEPT = ['application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json'].join(', ');

/** What the registry itself says of a reference: the manifest's digest, its size in bytes and its JSON. */
async function manifestOf(url: string, repository: string, ref: string): Promise<{ digest: string; size: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/v2/${repository}/manifests/${ref}`, { headers: { Accept: ACCEPT } });
  expect(res.status, `${repository}:${ref}`).toBe(200);
  const raw = Buffer.from(await res.arrayBuffer());
  return { digest: res.headers.get('docker-content-digest') as string, size: raw.length, body: JSON.parse(raw.toString('utf8')) as Record<string, unknown> };
}

/** The blob's size as the registry serves it (HEAD Content-Length). */
async function blobSize(url: string, repository: string, digest: string): Promise<number> {
  const res = await fetch(`${url}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' });
  expect(res.status, `${repository}@${digest}`).toBe(200);
  return Number(res.headers.get('content-length'));
}

function blobSizes(inventory: BucketInventory): Map<string, number> {
  const { digests, sizes } = inventory.blobs;
  return new Map(Array.from(sizes, (size, i) => [`sha256:${Buffer.from(digests.subarray(i * 32, i * 32 + 32)).toString('hex')}`, size]));
}

/** The blobs an image manifest references, as the registry's own JSON says them: config and layers (an index's children are manifests, checked as such). */
function layersOf(body: Record<string, unknown>): string[] {
  const config = (body.config as { digest?: string } | undefined)?.digest;
  const layers = Array.isArray(body.layers) ? body.layers.map((d) => (d as { digest: string }).digest) : [];
  return [...(config ? [config] : []), ...layers];
}

async function expectSeesEverything(url: string, scenario: Scenario, inventory: BucketInventory): Promise<void> {
  expect(inventory.problems).toEqual([]);
  for (const { repo } of inventory.repositories) expect(repo.problems, repo.name).toEqual([]);
  const sizes = blobSizes(inventory);
  const byName = new Map(inventory.repositories.map((r) => [r.repo.name, r]));
  const repositories = new Set([...scenario.tags, ...scenario.kept, ...scenario.removed].map((r) => r.repository));
  expect([...repositories].filter((r) => !byName.has(r))).toEqual([]);
  for (const { repository, tag } of scenario.tags) {
    const { digest } = await manifestOf(url, repository, tag);
    expect(byName.get(repository)?.repo.tags.find((t) => t.name === tag)?.current, `${repository}:${tag}`).toBe(digest);
  }
  for (const name of repositories) {
    const tags = await new RegistryClient(url).tags(name);
    expect(byName.get(name)?.repo.tags.map((t) => t.name).sort(), name).toEqual([...tags].sort());
  }
  for (const { repository, digest } of [...scenario.kept, ...scenario.removed]) {
    const scanned = byName.get(repository);
    expect(scanned?.repo.revisions, repository).toContain(digest);
    const read = scanned?.manifests.find(([d]) => d === digest)?.[1];
    expect(read && 'manifest' in read, `${repository}@${digest} parsed`).toBe(true);
    const { size, body } = await manifestOf(url, repository, digest);
    expect(sizes.get(digest), `${repository}@${digest}: the manifest's blob`).toBe(size);
    for (const blob of layersOf(body)) expect(sizes.get(blob), `${repository}: blob ${blob}`).toBe(await blobSize(url, repository, blob));
  }
}

const skip = RADOSGW_MISSING ? `radosgw tests skipped: ${RADOSGW_MISSING}` : undefined;

describe.skipIf(skip !== undefined)('the inventory of a bucket the real registry wrote', () => {
  let rgw: Radosgw;
  const clients: BucketClient[] = [];
  beforeAll(async () => {
    rgw = await startRadosgw();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await rgw?.stop();
  });

  const versions: Array<[string, string | undefined, string]> = [
    ['2.8.2', V2_BIN, 'registry-v2'],
    ['3.0.0', registryV3Bin, 'registry-v3'],
  ];
  for (const [version, bin, bucket] of versions) {
    it.skipIf(bin === undefined)(`${version}: every pushed tag, manifest and blob, at the sizes the registry serves`, async () => {
      await rgw.createBucket(bucket);
      const registry = await startS3Registry(bin as string, rgw, bucket, '/in/a/root');
      try {
        const scenario = await pushMixedScenario(new RegistryClient(registry.url));
        const found = storageDriver(registry.configText, {});
        if (found.driver !== 's3') throw new Error(`the registry's config reads as ${found.driver}`);
        const client = await openBucketClient(found.location);
        clients.push(client);
        const inventory = await inventoryBucket(client, { times: true });
        await expectSeesEverything(registry.url, scenario, inventory);
        // The orphan upload's blob is in the store though no manifest names it.
        expect(inventory.blobs.sizes.length).toBeGreaterThan(new Set([...scenario.kept, ...scenario.removed].map((r) => r.digest as Digest)).size);
        const tagsTimed = inventory.repositories.flatMap((r) => r.repo.tags);
        expect(tagsTimed.every((t) => typeof t.pushedMs === 'number' && t.pushedMs > Date.now() - 600_000)).toBe(true);
        console.log(`${version}: ${inventory.found.length} repositories, ${inventory.blobs.sizes.length} blobs, requests ${JSON.stringify(inventory.requests)}`);
      } finally {
        await registry.stop();
      }
    }, 120_000);
  }
});

it.skipIf(skip === undefined)(skip ?? 'radosgw is installed', () => {});
