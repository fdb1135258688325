/**
 * regsweep's own sweep (`--gc builtin`) on trees written file by file: it
 * removes exactly the predicted blobs and their `_layers` links, spares what a
 * revision pushed since the scan needs, stops on one it cannot read, and
 * leaves blobs newer than the grace out of the prediction.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TreeWriter, seededBytes } from '../../scripts/sampleTree.js';
import { applyPlan } from '../../src/apply/apply.js';
import { SweptBlobs, sweepBlobs, sweepLayerLinks } from '../../src/apply/blobSweep.js';
import { Remover, trashFor } from '../../src/apply/trash.js';
import type { Digest } from '../../src/model.js';
import { planTree } from '../../src/plan/planTree.js';
import { sampleTreeEachTest } from '../support/tree.js';
import { linksOfTaken } from '../support/layerLinks.js';
import { filesystemSource } from '../../src/storage/fs/source.js';

let root: string;
let w: TreeWriter;
sampleTreeEachTest((tree) => ({ root, w } = tree));

const HOUR = 3_600_000;

/** Every blob's data under the root, as digests. */
async function blobsLeft(): Promise<Digest[]> {
  const base = w.layout.pathFor({ kind: 'blobAlgorithm' });
  const out: Digest[] = [];
  for (const prefix of await fs.readdir(base)) for (const hex of await fs.readdir(path.join(base, prefix))) out.push(`sha256:${hex}`);
  return out.sort();
}

/** Plans with the builtin sweep, applies the plan, and returns what the sweep needs. */
async function planAndApply(recentAfter = Date.now() + HOUR) {
  const planned = await planTree(filesystemSource(root), { registryVersion: '2.8.2', builtin: true, recentAfter });
  const trash = trashFor(root);
  const remover = Remover.open(root, { trash });
  await applyPlan(root, planned.plan, { remover });
  return { planned, trash, options: { swept: planned.sweptDigests(), isMarked: planned.isMarked, sizeOf: planned.sizeOf, remover } };
}

describe('sweepBlobs', () => {
  it('removes exactly the predicted blobs and their _layers links, into the trash', async () => {
    const kept = await w.image('app', { seed: 'new', tag: 'latest' });
    const old = await w.image('app', { seed: 'old' });
    await w.linkLayer('app', old.digest);
    const orphan = await w.blob(seededBytes('orphan', 300));
    const before = await blobsLeft();
    const { planned, trash, options } = await planAndApply();
    expect(options.swept).toContain(old.digest);
    expect(options.swept).toContain(orphan.digest);

    const linked = (await fs.readdir(w.layout.pathFor({ kind: 'layerAlgorithm', name: 'app' }))).filter((hex) => options.swept.includes(`sha256:${hex}`));
    expect(linked.length).toBeGreaterThan(0);

    const result = await sweepBlobs(root, options);
    // In the window only the blobs go; their links follow while the registry serves.
    expect((await fs.readdir(w.layout.pathFor({ kind: 'layerAlgorithm', name: 'app' }))).filter((hex) => linked.includes(hex))).toEqual(linked);
    const links = sweepLayerLinks(root, linksOfTaken(result), options.remover);

    expect(result).toMatchObject({ blobs: planned.predicted.blobs, bytes: planned.predicted.bytes, remarked: 0, spared: { blobs: 0, bytes: 0 }, problems: [] });
    expect(links).toEqual({ layerLinks: linked.length, dangling: 0 });
    const linksLeft = await fs.readdir(w.layout.pathFor({ kind: 'layerAlgorithm', name: 'app' }));
    expect(linksLeft.filter((hex) => options.swept.includes(`sha256:${hex}`))).toEqual([]);
    expect(linksLeft.length).toBeGreaterThan(0);
    expect(await blobsLeft()).toEqual(before.filter((d) => !options.swept.includes(d)));
    expect(await blobsLeft()).toContain(kept.digest);
    await expect(fs.stat(w.layout.pathFor({ kind: 'layerDir', name: 'app', digest: old.digest }))).rejects.toThrow();
    expect((await fs.readdir(path.join(trash, 'swept'))).length).toBe(result.blobs + links.layerLinks);
  });

  it("made before the window from the scan's own table, as a real run makes it, it takes the same blobs", async () => {
    await w.image('app', { seed: 'new', tag: 'latest' });
    // Blobs in every prefix directory.
    for (let i = 0; i < 600; i++) await w.blob(seededBytes(`orphan ${i}`, 20));
    const before = await blobsLeft();
    const { planned, options } = await planAndApply();
    const prepared = new SweptBlobs(planned.table, planned.sweeps);
    const result = await sweepBlobs(root, { ...options, swept: [], prepared });
    expect(result).toMatchObject({ blobs: planned.predicted.blobs, bytes: planned.predicted.bytes, problems: [] });
    expect(result.blobs).toBeGreaterThanOrEqual(600);
    expect(await blobsLeft()).toEqual(before.filter((d) => !options.swept.includes(d)));
    expect(options.swept.every((d) => result.taken.has(d.slice('sha256:'.length)))).toBe(true);
  });

  it('after the window, leaves the _layers link of a blob pushed again meanwhile', async () => {
    await w.image('app', { seed: 'new', tag: 'latest' });
    await w.image('app', { seed: 'old' });
    const { options } = await planAndApply();
    const result = await sweepBlobs(root, options);
    const layers = w.layout.pathFor({ kind: 'layerAlgorithm', name: 'app' });
    const linked = (await fs.readdir(layers)).filter((hex) => result.taken.has(hex));
    expect(linked.length).toBeGreaterThan(1);
    // The registry serves again, and a client pushes one of the swept blobs back: its data, then its link.
    const again = `sha256:${linked[0]}` as Digest;
    const data = w.layout.pathFor({ kind: 'blobData', digest: again });
    await fs.mkdir(path.dirname(data), { recursive: true });
    await fs.writeFile(data, 'pushed again');

    const links = sweepLayerLinks(root, linksOfTaken(result), options.remover);

    expect(links.layerLinks).toBe(linked.length - 1);
    expect((await fs.readdir(layers)).filter((hex) => result.taken.has(hex))).toEqual([linked[0]]);
    expect(await fs.readFile(w.layout.pathFor({ kind: 'layerLink', name: 'app', digest: again }), 'utf8')).toBe(again);
  });

  it('spares what a revision linked since the scan needs, and counts it', async () => {
    await w.image('app', { seed: 'new', tag: 'latest' });
    const old = await w.image('app', { seed: 'old' });
    const { options } = await planAndApply();
    // Pushed again between the scan and the sweep (the window re-reads the tree): its revision link is back.
    await w.linkRevision('other', old.digest);
    await fs.mkdir(w.layout.pathFor({ kind: 'layers', name: 'other' }), { recursive: true });

    const result = await sweepBlobs(root, options);

    const needed = [old.digest, ...JSON.parse(await fs.readFile(w.layout.pathFor({ kind: 'blobData', digest: old.digest }), 'utf8')).layers.map((l: { digest: Digest }) => l.digest)];
    expect(result.remarked).toBe(1);
    expect(result.spared.blobs).toBeGreaterThanOrEqual(needed.length);
    const left = await blobsLeft();
    for (const d of needed) expect(left).toContain(d);
    expect(result.blobs).toBe(options.swept.length - result.spared.blobs);
  });

  it('sweeps nothing when a revision linked since the scan cannot be read', async () => {
    await w.image('app', { seed: 'new', tag: 'latest' });
    await w.image('app', { seed: 'old' });
    const { options } = await planAndApply();
    const stray = await w.blob(Buffer.from('not a manifest'));
    await w.linkRevision('app', stray.digest);
    const before = await blobsLeft();

    const result = await sweepBlobs(root, options);

    expect(result.blobs).toBe(0);
    expect(result.problems[0]?.message).toMatch(/linked since the scan, cannot be read .*nothing was swept/);
    expect(await blobsLeft()).toEqual(before);
  });
});

describe('the grace', () => {
  it('leaves unreferenced blobs newer than the grace out of the prediction, and counts them', async () => {
    await w.image('app', { seed: 'new', tag: 'latest' });
    const fresh = await w.blob(seededBytes('upload in flight', 500));
    const old = await w.blob(seededBytes('old orphan', 200));
    const long = new Date(Date.now() - 2 * HOUR);
    await fs.utimes(w.layout.pathFor({ kind: 'blobData', digest: old.digest }), long, long);

    const { planned, options } = await planAndApply(Date.now() - HOUR);

    expect(options.swept).toEqual([old.digest]);
    expect(planned.predicted).toMatchObject({ blobs: 1, bytes: 200, recent: { blobs: 1, bytes: 500 } });
    expect((await sweepBlobs(root, options)).blobs).toBe(1);
    expect(await blobsLeft()).toContain(fresh.digest);
  });

  it("does not change the registry's own sweep: without builtin, recent blobs are predicted swept", async () => {
    await w.image('app', { seed: 'new', tag: 'latest' });
    await w.blob(seededBytes('upload in flight', 500));
    const planned = await planTree(filesystemSource(root), { registryVersion: '2.8.2', recentAfter: 0 });
    expect(planned.predicted).toMatchObject({ blobs: 1, bytes: 500 });
  });
});
