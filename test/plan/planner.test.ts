import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/apply/apply.js';
import type { Digest } from '../../src/model.js';
import { makeRules } from '../../src/plan/policy.js';
import { type Selector, parseSelector } from '../../src/plan/selectors.js';
import { TreeWriter, type Written, seededBytes } from '../../scripts/sampleTree.js';
import { keepsUntagged, planPurge, predictCollect, scan } from '../support/inventory.js';
import { sampleTreeEachTest } from '../support/tree.js';

let root: string;
let w: TreeWriter;
sampleTreeEachTest((tree) => ({ root, w } = tree));

async function planOf(selectors: Selector[] = [], version = '2.8.2') {
  const inventory = await scan(root);
  const plan = planPurge(inventory, { selectors });
  const predicted = predictCollect(inventory, plan, version);
  return { inventory, plan, predicted };
}

const removed = (plan: { manifests: Iterable<{ repository: string; digest: string }> }): string[] =>
  [...plan.manifests].map((m) => `${m.repository}@${m.digest}`).sort();

/** The blobs an image wrote: its manifest, config and layers (read back from the manifest). */
async function blobsOf(image: Written): Promise<Digest[]> {
  const doc = JSON.parse(await fs.readFile(w.layout.pathFor({ kind: 'blobData', digest: image.digest }), 'utf8'));
  return [image.digest, doc.config.digest, ...doc.layers.map((l: { digest: Digest }) => l.digest)].sort();
}

describe('planner scenarios', () => {
  it('keeps the untagged children of a tagged manifest list and removes an old untagged image', async () => {
    const amd = await w.image('app', { seed: 'amd64' });
    const arm = await w.image('app', { seed: 'arm64' });
    const list = await w.index('app', [amd, arm], { tag: 'latest' });
    const old = await w.image('app', { seed: 'old' });
    const { plan, predicted } = await planOf();
    expect(removed(plan)).toEqual([`app@${old.digest}`]);
    expect(plan.manifests.at(0)?.reason).toBe('untagged');
    // Exactly the old image's manifest, config and layers are swept; the children's layers stay.
    expect(predicted.digests).toEqual(await blobsOf(old));
    expect(predicted.blockedBy).toEqual([]);
    expect(list.digest).toMatch(/^sha256:/);
  });

  it('keeps referrers of a kept OCI index, recursively', async () => {
    const a = await w.image('signed', { seed: 'a', format: 'oci' });
    const b = await w.image('signed', { seed: 'b', format: 'oci' });
    const index = await w.index('signed', [a, b], { tag: 'v1', format: 'oci' });
    const sig = await w.image('signed', { seed: 'sig', subject: index, layers: 1 });
    const sigOfSig = await w.image('signed', { seed: 'sigsig', subject: sig, layers: 1 });
    const { plan, predicted, inventory } = await planOf();
    expect([...plan.manifests]).toEqual([]);
    expect(predicted.blobs).toBe(0);
    // The referrers are kept on purpose and untagged: --delete-untagged would remove them.
    expect(keepsUntagged(inventory, plan)).toBe(true);
    expect(sigOfSig.digest).not.toBe(sig.digest);
  });

  it('removes the referrer of a removed image together with it', async () => {
    await w.image('app', { seed: 'current', tag: 'latest' });
    const old = await w.image('app', { seed: 'old', format: 'oci' });
    const sig = await w.image('app', { seed: 'old-sig', subject: old, layers: 1 });
    const { plan, predicted } = await planOf();
    expect(removed(plan)).toEqual([`app@${old.digest}`, `app@${sig.digest}`].sort());
    expect(predicted.digests).toEqual([...(await blobsOf(old)), ...(await blobsOf(sig))].sort());
  });

  it('keeps a digest two tags share and removes only the history entry that is not current', async () => {
    const d0 = await w.image('app', { seed: 'd0', tag: 'stable' });
    const d1 = await w.image('app', { seed: 'd1' });
    await w.tag('app', 'v1', d0.digest);
    await w.tag('app', 'v1', d1.digest); // v1 moved from d0 to d1; its index names both
    await w.tag('app', 'also', d1.digest);
    const { plan, predicted } = await planOf();
    expect([...plan.manifests]).toEqual([]);
    expect([...plan.indexEntries]).toEqual([{ repository: 'app', tag: 'v1', digest: d0.digest, reason: 'history' }]);
    expect(predicted.blobs).toBe(0);
  });

  it('counts a layer shared across repositories as freed only when no kept manifest in any repository uses it', async () => {
    const base = await w.blob(seededBytes('base', 3000), 'application/vnd.docker.image.rootfs.diff.tar.gzip');
    const gone = await w.image('one', { seed: 'gone', shared: [base] });
    await w.image('one', { seed: 'kept1', tag: 'latest' });
    await w.image('two', { seed: 'kept2', shared: [base], tag: 'latest' });
    const { plan, predicted } = await planOf();
    expect(removed(plan)).toEqual([`one@${gone.digest}`]);
    expect(predicted.digests).not.toContain(base.digest);
    expect(predicted.digests).toEqual((await blobsOf(gone)).filter((d) => d !== base.digest));
  });

  it('finds nested repositories a, a/b and a/b/c and purges each', async () => {
    const olds: string[] = [];
    for (const name of ['a', 'a/b', 'a/b/c']) {
      await w.image(name, { seed: `${name}-new`, tag: 'latest' });
      olds.push(`${name}@${(await w.image(name, { seed: `${name}-old` })).digest}`);
    }
    const { inventory, plan } = await planOf();
    expect(inventory.repositories.map((r) => r.name)).toEqual(['a', 'a/b', 'a/b/c']);
    expect(removed(plan)).toEqual(olds.sort());
  });

  it('purges a repository without a tags directory and never touches the missing directory', async () => {
    const byDigest = await w.image('digests', { seed: 'only' });
    const { inventory, plan } = await planOf();
    expect(inventory.repositories[0]?.hasTagsDir).toBe(false);
    expect(removed(plan)).toEqual([`digests@${byDigest.digest}`]);
    await applyPlan(root, plan);
    await expect(fs.stat(w.layout.pathFor({ kind: 'tags', name: 'digests' }))).rejects.toThrow(/ENOENT/);
    await expect(fs.stat(w.layout.pathFor({ kind: 'revisionDir', name: 'digests', digest: byDigest.digest }))).rejects.toThrow(/ENOENT/);
  });

  it('keeps an emptied _manifests/tags directory', async () => {
    const img = await w.image('app', { seed: 'x', tag: 'gone' });
    await fs.rm(w.layout.pathFor({ kind: 'tag', name: 'app', tag: 'gone' }), { recursive: true });
    const { plan } = await planOf();
    expect(removed(plan)).toEqual([`app@${img.digest}`]);
    await applyPlan(root, plan);
    expect((await fs.stat(w.layout.pathFor({ kind: 'tags', name: 'app' }))).isDirectory()).toBe(true);
  });

  it('spares a repository with a corrupt or empty tag link and purges the others', async () => {
    await w.image('bad', { seed: 'b1', tag: 'latest' });
    const badOld = await w.image('bad', { seed: 'b0' });
    await w.writeRaw({ kind: 'tagCurrentLink', name: 'bad', tag: 'latest' }, '');
    await w.image('good', { seed: 'g1', tag: 'latest' });
    const goodOld = await w.image('good', { seed: 'g0' });
    const { plan, predicted } = await planOf();
    expect(removed(plan)).toEqual([`good@${goodOld.digest}`]);
    expect(plan.spared.map((s) => s.repository)).toEqual(['bad']);
    expect(plan.spared[0]?.problems[0]?.message).toMatch(/current link of tag latest is empty/);
    // The spared repository's untagged image stays marked, so none of its blobs is predicted.
    for (const d of await blobsOf(badOld)) expect(predicted.digests).not.toContain(d);
  });

  it('spares a repository with an unknown media type, and garbage-collect is unsafe', async () => {
    await w.manifest('odd', { schemaVersion: 2, mediaType: 'application/vnd.example.thing+json', blobs: [] }, 'x');
    await w.image('odd', { seed: 'o', tag: 'latest' });
    await w.image('fine', { seed: 'f1', tag: 'latest' });
    const fineOld = await w.image('fine', { seed: 'f0' });
    const { plan, predicted } = await planOf();
    expect(plan.spared[0]?.repository).toBe('odd');
    expect(plan.spared[0]?.problems[0]?.message).toMatch(/unknown media type application\/vnd.example.thing\+json/);
    expect(removed(plan)).toEqual([`fine@${fineOld.digest}`]);
    expect(predicted.blockedBy.length).toBeGreaterThan(0);
    expect(predicted.blobs).toBe(0);
  });

  it('spares a repository whose revision link is corrupt', async () => {
    const img = await w.image('app', { seed: 'x', tag: 'latest' });
    await w.writeRaw({ kind: 'revisionLink', name: 'app', digest: img.digest }, `${img.digest}\n`);
    const { plan, predicted } = await planOf();
    expect(plan.spared[0]?.problems[0]?.message).toMatch(/revision link holds/);
    expect(predicted.blockedBy[0]?.message).toMatch(/revision link holds/);
  });

  it('spares a repository whose tag link holds a digest followed by more than a link can hold', async () => {
    // The scan reads a link with one read into a bounded buffer: what lies past the digest must still make it corrupt.
    const img = await w.image('app', { seed: 'x', tag: 'latest' });
    await w.image('app', { seed: 'old' });
    await w.writeRaw({ kind: 'tagCurrentLink', name: 'app', tag: 'latest' }, `${img.digest}${' '.repeat(100_000)}x`);
    const { plan } = await planOf();
    expect([...plan.manifests]).toEqual([]);
    expect(plan.spared[0]?.problems[0]?.message).toMatch(/current link of tag latest holds ".*…", not a sha256 digest/);
  });

  it('reads a manifest larger than the scan\'s read buffer whole', async () => {
    // 600 layers make a manifest of over 100 KiB; read only in part, it would not hash to its digest and its repository would be spared.
    const big = await w.image('big', { seed: 'big', tag: 'latest', layers: 600, layerSize: 8 });
    const old = await w.image('big', { seed: 'old', layers: 600, layerSize: 8 });
    expect(big.size).toBeGreaterThan(64 * 1024);
    const { plan, predicted } = await planOf();
    expect(plan.spared).toEqual([]);
    expect(removed(plan)).toEqual([`big@${old.digest}`]);
    expect([...predicted.digests].sort()).toEqual(await blobsOf(old));
  });

  it('spares a repository whose tag names a manifest that is not a revision (an already broken tag)', async () => {
    const img = await w.image('app', { seed: 'x', tag: 'latest' });
    const other = await w.image('app', { seed: 'y' });
    await fs.rm(w.layout.pathFor({ kind: 'revisionDir', name: 'app', digest: img.digest }), { recursive: true });
    const { plan } = await planOf();
    expect([...plan.manifests]).toEqual([]);
    expect(plan.spared[0]?.problems[0]?.message).toMatch(/tag latest needs .* not a revision/);
    expect(other.digest).toBeDefined();
  });

  it('predicts orphan blobs that nothing references', async () => {
    await w.image('app', { seed: 'x', tag: 'latest' });
    const orphan = await w.blob(seededBytes('orphan', 777));
    const { plan, predicted } = await planOf();
    expect([...plan.manifests]).toEqual([]);
    expect(predicted.digests).toEqual([orphan.digest]);
    expect(predicted.bytes).toBe(777);
  });

  it('with REPOSITORY selectors, plans only those repositories', async () => {
    await w.image('one', { seed: '1', tag: 'latest' });
    const old1 = await w.image('one', { seed: '1old' });
    await w.image('two', { seed: '2', tag: 'latest' });
    await w.image('two', { seed: '2old' });
    const { plan } = await planOf([parseSelector('one')]);
    expect(removed(plan)).toEqual([`one@${old1.digest}`]);
  });

  it('with REPOSITORY:TAG, plans only that tag history and the revisions it leaves unneeded', async () => {
    const v1old = await w.image('app', { seed: 'v1-old', tag: 'v1' });
    await w.image('app', { seed: 'v1-new', tag: 'v1' });
    const v2old = await w.image('app', { seed: 'v2-old', tag: 'v2' });
    await w.image('app', { seed: 'v2-new', tag: 'v2' });
    const stray = await w.image('app', { seed: 'stray' });
    const { plan } = await planOf([parseSelector('app:v1')]);
    expect(removed(plan)).toEqual([`app@${v1old.digest}`]);
    expect([...plan.indexEntries]).toEqual([{ repository: 'app', tag: 'v1', digest: v1old.digest, reason: 'untagged' }]);
    expect(removed(plan)).not.toContain(`app@${v2old.digest}`);
    expect(removed(plan)).not.toContain(`app@${stray.digest}`);
  });

  it('on registry 3.x, a schema1 manifest that stays makes garbage-collect unsafe', async () => {
    const layer = await w.blob(seededBytes('s1', 100));
    await w.linkLayer('legacy', layer.digest);
    const s1 = await w.manifest('legacy', { schemaVersion: 1, name: 'legacy', tag: 'old', fsLayers: [{ blobSum: layer.digest }], history: [] }, 'x');
    await w.tag('legacy', 'old', s1.digest);
    expect((await planOf([], '2.8.2')).predicted.blockedBy).toEqual([]);
    expect((await planOf([], '3.0.0')).predicted.blockedBy[0]?.message).toMatch(/schema1/);
  });
});

describe('retention in the planner', () => {
  it('a fallback tag whose subject was never pushed is left alone', async () => {
    await w.image('app', { seed: 'x', tag: 'latest' });
    const sig = await w.image('app', { seed: 'orphan-sig', format: 'oci', layers: 1 });
    await w.tag('app', `sha256-${'cd'.repeat(32)}.sig`, sig.digest);
    const inventory = await scan(root, { times: true });
    const plan = planPurge(inventory, { policy: { rules: [], fallback: makeRules({ keep: 0 }) } });
    expect(plan.tags.map((t) => t.tag)).toEqual([]);
    expect([...plan.manifests]).toEqual([]);
  });
});
