/**
 * Proves the registry harness against the real binary: what it pushes is
 * stored where DOMAIN.md says, and `pullWhole` both passes intact content and
 * fails on a missing blob.
 */
import { mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  MediaTypes,
  RegistryClient,
  blobBytes,
  digestOf,
  pushImage,
  pushIndex,
  registryBinary,
  startRegistry,
  type PushedImage,
  type RunningRegistry,
} from '../../scripts/registryClient.js';

const TIMEOUT = 60_000;
const bin = registryBinary();

function hex(digest: string): string {
  return digest.replace(/^sha256:/, '');
}

/** Every digest a whole pull of `image` must fetch. */
function imageDigests(image: PushedImage): string[] {
  return [image.descriptor.digest, image.config.digest, ...image.layers.map((l) => l.digest)];
}

describe('blobBytes', () => {
  test('is deterministic, seed-dependent and sized as asked', () => {
    expect(blobBytes('a').equals(blobBytes('a'))).toBe(true);
    expect(blobBytes('a').equals(blobBytes('b'))).toBe(false);
    expect(blobBytes('a', 1234)).toHaveLength(1234);
    const size = blobBytes('a').length;
    expect(size).toBeGreaterThanOrEqual(100);
    expect(size).toBeLessThan(3000);
  });
});

describe.skipIf(!bin)(`registry harness against ${bin ?? 'no binary'}`, () => {
  let root: string;
  let registry: RunningRegistry | undefined;
  let client: RegistryClient;

  const v2 = (...parts: string[]): string => join(root, 'docker/registry/v2', ...parts);
  const revisionLink = (repo: string, digest: string): string =>
    v2('repositories', repo, '_manifests/revisions/sha256', hex(digest), 'link');
  const blobData = (digest: string): string => v2('blobs/sha256', hex(digest).slice(0, 2), hex(digest), 'data');

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'regsweep-harness-'));
    registry = await startRegistry(root);
    client = new RegistryClient(registry.url);
  }, TIMEOUT);

  afterAll(async () => {
    await registry?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  }, TIMEOUT);

  test(
    'pushes a docker image, an OCI index of untagged children and a referrer, and pulls them whole',
    async () => {
      // A tagged Docker schema2 image.
      const app = await pushImage(client, 'team/app', { tag: 'v1', seed: 'app-v1', layers: 3 });
      expect(app.descriptor.mediaType).toBe(MediaTypes.dockerManifest);
      expect(app.layers).toHaveLength(3);

      // An OCI index whose children exist only by digest; they share a base layer.
      const base = [blobBytes('multi-base')];
      const amd64 = await pushImage(client, 'multi', { seed: 'multi-amd64', format: 'oci', sharedLayers: base });
      const arm64 = await pushImage(client, 'multi', {
        seed: 'multi-arm64',
        format: 'oci',
        sharedLayers: base,
        platform: { architecture: 'arm64', os: 'linux' },
      });
      expect(amd64.layers[0]).toEqual(arm64.layers[0]);
      const index = await pushIndex(client, 'multi', {
        tag: 'latest',
        format: 'oci',
        children: [amd64.descriptor, { ...arm64.descriptor, platform: { architecture: 'arm64', os: 'linux' } }],
      });

      // A signature-like referrer of the index, pushed by digest only.
      const sig = await pushImage(client, 'multi', {
        seed: 'multi-sig',
        subject: index,
        artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
      });
      expect(sig.descriptor.mediaType).toBe(MediaTypes.ociManifest);
      expect(sig.config.mediaType).toBe(MediaTypes.ociEmpty);

      // Whole pulls fetch exactly the expected digests.
      expect(new Set(await client.pullWhole('team/app', 'v1'))).toEqual(new Set(imageDigests(app)));
      expect(new Set(await client.pullWhole('multi', 'latest'))).toEqual(
        new Set([index.digest, ...imageDigests(amd64), ...imageDigests(arm64)]),
      );
      expect(new Set(await client.pullWhole('multi', sig.descriptor.digest))).toEqual(new Set(imageDigests(sig)));

      // The registry keeps manifests byte for byte, `subject` included.
      const stored = await client.getManifest('multi', sig.descriptor.digest);
      expect(stored.status).toBe(200);
      expect(stored.body.equals(sig.manifest)).toBe(true);
      expect(JSON.parse(stored.body.toString('utf8')).subject).toEqual(index);
      const storedIndex = await client.getManifest('multi', 'latest');
      expect(storedIndex.mediaType).toBe(MediaTypes.ociIndex);
      expect(storedIndex.digest).toBe(index.digest);

      expect(await client.tags('team/app')).toEqual(['v1']);
      expect(await client.tags('multi')).toEqual(['latest']);
      expect(await client.tags('no/such/repo')).toEqual([]);
      expect(await client.catalog()).toEqual(expect.arrayContaining(['team/app', 'multi']));

      // On disk: a revision link per manifest, holding exactly the digest.
      for (const [repo, digest] of [
        ['team/app', app.descriptor.digest],
        ['multi', index.digest],
        ['multi', amd64.descriptor.digest],
        ['multi', arm64.descriptor.digest],
        ['multi', sig.descriptor.digest],
      ] as const) {
        expect(await readFile(revisionLink(repo, digest), 'utf8')).toBe(digest);
      }
      expect(await readFile(v2('repositories/team/app/_manifests/tags/v1/current/link'), 'utf8')).toBe(
        app.descriptor.digest,
      );
      for (const layer of app.layers) expect((await stat(blobData(layer.digest))).size).toBe(layer.size);
      expect((await readFile(blobData(sig.descriptor.digest))).equals(sig.manifest)).toBe(true);
    },
    TIMEOUT,
  );

  test(
    'deletes a manifest by digest',
    async () => {
      const kept = await pushImage(client, 'deletions', { tag: 'kept', seed: 'del-kept' });
      const doomed = await pushImage(client, 'deletions', { seed: 'del-doomed', format: 'oci' });
      expect(await readFile(revisionLink('deletions', doomed.descriptor.digest), 'utf8')).toBe(doomed.descriptor.digest);

      await client.deleteManifest('deletions', doomed.descriptor.digest);
      expect((await client.getManifest('deletions', doomed.descriptor.digest)).status).toBe(404);
      await expect(stat(revisionLink('deletions', doomed.descriptor.digest))).rejects.toMatchObject({ code: 'ENOENT' });
      // Deleting is by manifest only: blobs stay until garbage-collect.
      expect((await stat(blobData(doomed.descriptor.digest))).isFile()).toBe(true);
      await expect(client.deleteManifest('deletions', doomed.descriptor.digest)).rejects.toThrow(/404/);

      await client.pullWhole('deletions', 'kept');
      expect(await client.tags('deletions')).toEqual(['kept']);
      // Deleting a tagged manifest takes its tags with it.
      await client.deleteManifest('deletions', kept.descriptor.digest);
      expect((await client.getManifest('deletions', 'kept')).status).toBe(404);
      expect(await client.tags('deletions')).toEqual([]);
    },
    TIMEOUT,
  );

  test(
    'pullWhole fails when a layer blob is gone from disk',
    async () => {
      const image = await pushImage(client, 'broken', { tag: 'b', seed: 'broken-b' });
      await client.pullWhole('broken', 'b');
      const layer = image.layers[1]!;
      await unlink(blobData(layer.digest));

      // Restart so the in-memory blob-descriptor cache cannot vouch for the blob.
      await registry!.stop();
      registry = undefined;
      registry = await startRegistry(root);
      client = new RegistryClient(registry.url);

      expect(await client.blobStatus('broken', layer.digest, 'HEAD')).toBe(404);
      await expect(client.pullWhole('broken', 'b')).rejects.toThrow(
        new RegExp(`broken:b.*${layer.digest}.*404`),
      );
      // Unaffected content still pulls after the restart.
      expect((await client.getManifest('broken', 'b')).digest).toBe(digestOf(image.manifest));
    },
    TIMEOUT,
  );
});

describe('startRegistry with a log file', () => {
  test('a registry that ends before it is ready is reported with the tail of its log file, and a port taken meanwhile is retried', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regsweep-launch-'));
    try {
      // A stand-in binary that logs as the registry does when its port was taken, and counts its starts.
      const fake = join(dir, 'registry');
      const starts = join(dir, 'starts');
      await writeFile(fake, `#!/bin/sh\necho start >> ${starts}\necho 'level=fatal msg="listen tcp 127.0.0.1:5000: bind: address already in use"'\nexit 1\n`, { mode: 0o755 });
      const log = join(dir, 'registry.log');
      const failed = startRegistry(join(dir, 'root'), { bin: fake, log: { file: log, formatter: 'text' } });
      await expect(failed).rejects.toThrow(/exited with code 1 before it was ready:\n(?:.*\n)*.*address already in use/);
      expect((await readFile(starts, 'utf8')).trim().split('\n')).toHaveLength(3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
