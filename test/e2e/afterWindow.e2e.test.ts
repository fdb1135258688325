/**
 * `--gc builtin` leaves two things for after the window, while the registry
 * serves again: the tag history entries of removed revisions and the
 * `_layers` links of swept blobs. This holds the real registry (2.8.2, and
 * 3.0.0 where present) to the two facts that make that safe: it serves the
 * tree between the window and that cleanup as if they were gone (a link
 * without its blob is an unknown blob; nothing reads the history), and a push
 * of the swept image in that time survives the cleanup and pulls whole.
 */
import fs from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type PushedImage, RegistryClient, blobBytes, pushImage, registryBinary, startRegistry } from '../../scripts/registryClient.js';
import { applyPlan, removeIndexEntries } from '../../src/apply/apply.js';
import { sweepBlobs, sweepLayerLinks } from '../../src/apply/blobSweep.js';
import { Remover, emptyTrash, trashFor } from '../../src/apply/trash.js';
import { planTree } from '../../src/plan/planTree.js';
import { Layout } from '../../src/storage/layout.js';
import { tempDir } from '../support/tmp.js';
import { linksOfTaken } from '../support/layerLinks.js';
import { filesystemSource } from '../../src/storage/fs/source.js';
import { registryV3Bin } from '../support/registryV3.js';

const v2 = registryBinary();
const v3 = registryV3Bin;

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

const base = blobBytes('after-window-base', 900);

/** Pushes app:v1 twice (the first image, `old`, ends untagged; both share a base layer), then stops the registry. */
async function pushed(bin: string): Promise<{ root: string; old: PushedImage }> {
  const root = await tempDir();
  dirs.push(root);
  const registry = await startRegistry(root, { bin });
  try {
    const client = new RegistryClient(registry.url);
    const old = await pushImage(client, 'app', { tag: 'v1', seed: 'after-window-old', sharedLayers: [base] });
    await pushImage(client, 'app', { tag: 'v1', seed: 'after-window-new', sharedLayers: [base] });
    return { root, old };
  } finally {
    await registry.stop();
  }
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(() => true, () => false);
}

describe.each([
  ['2.8.2', v2],
  ['3.0.0', v3],
])('registry %s, between the window and the cleanup after it', (version, bin) => {
  it.skipIf(!bin)('serves the swept image as gone, takes it pushed again, and the cleanup leaves that push whole', async () => {
    const { root, old } = await pushed(bin as string);
    const layout = new Layout(root);
    const ownLayer = old.layers[1]?.digest as string;
    const planned = await planTree(filesystemSource(root), { registryVersion: version, builtin: true, recentAfter: Infinity });
    expect(planned.sweptDigests()).toContain(ownLayer);
    const trash = trashFor(root);
    const remover = Remover.open(root, { trash });
    try {
      // What the window does: the revision goes, then the blobs; the history entry and the links stay.
      const applied = await applyPlan(root, planned.plan, { remover, onChange: 'abort', deferIndexEntries: true });
      const swept = await sweepBlobs(root, { swept: planned.sweptDigests(), isMarked: planned.isMarked, sizeOf: planned.sizeOf, remover });
      expect(swept.blobs).toBe(planned.predicted.blobs);
      expect(planned.sweptDigests().every((d) => swept.taken.has(d.slice('sha256:'.length)))).toBe(true);
      const link = layout.pathFor({ kind: 'layerLink', name: 'app', digest: ownLayer as `sha256:${string}` });
      const history = layout.pathFor({ kind: 'tagIndexEntryLink', name: 'app', tag: 'v1', digest: old.descriptor.digest as `sha256:${string}` });
      expect(await exists(link)).toBe(true);
      expect(await exists(history)).toBe(true);

      const registry = await startRegistry(root, { bin: bin as string });
      try {
        const client = new RegistryClient(registry.url);
        // A link without its blob is no blob; the removed revision is no manifest; the tag serves whole.
        expect(await client.blobStatus('app', ownLayer, 'HEAD')).toBe(404);
        expect((await client.getManifest('app', old.descriptor.digest)).status).toBe(404);
        await client.pullWhole('app', 'v1');
        // The swept image pushed again in this time, by digest and to a tag.
        await pushImage(client, 'app', { tag: 'again', seed: 'after-window-old', sharedLayers: [base] });
      } finally {
        await registry.stop();
      }

      // The cleanup after the window: what the push wrote again stays.
      await removeIndexEntries(root, applied, remover);
      expect(sweepLayerLinks(root, linksOfTaken(swept), remover).layerLinks).toBe(0);
      expect(await exists(link)).toBe(true);
      expect(await exists(history)).toBe(true);
      expect([...applied.indexEntries]).toEqual([]);
    } finally {
      remover.close();
      await emptyTrash(root);
    }

    const registry = await startRegistry(root, { bin: bin as string });
    try {
      const client = new RegistryClient(registry.url);
      await client.pullWhole('app', 'again');
      await client.pullWhole('app', old.descriptor.digest);
      await client.pullWhole('app', 'v1');
    } finally {
      await registry.stop();
    }
  });
});
