/**
 * Digests in use (`PlanOptions.pinned`) are roots like tags: the planner keeps
 * them, their index children and referrers, names those it would otherwise
 * have removed, and still removes every other untagged revision.
 */
import { expect, it } from 'vitest';
import type { Digest } from '../../src/model.js';
import { type Pinned, emptyPins, readPinList } from '../../src/plan/pins.js';
import { type PlanOptions, emptyPlan, planContext, planRepository } from '../../src/plan/planner.js';
import { planTree } from '../../src/plan/planTree.js';
import { parseSelector } from '../../src/plan/selectors.js';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { predictCollect, scan } from '../support/inventory.js';
import { sampleTreeEachTest } from '../support/tree.js';
import { filesystemSource } from '../../src/storage/fs/source.js';

let root: string;
let w: TreeWriter;
sampleTreeEachTest((tree) => ({ root, w } = tree));

/** Pins as a `--keep-digests` list would give them, every one used by `user`. */
function pins(lines: string[], user = 'container web-1'): Pinned {
  const pinned = emptyPins();
  readPinList(lines.join('\n'), { source: 'test', user }, pinned);
  return pinned;
}

/** The whole-inventory plan, what it notes in use, and the prediction; the streaming planTree must agree. */
async function planOf(options: PlanOptions) {
  const inventory = await scan(root);
  const plan = emptyPlan();
  const context = planContext(inventory.repositories.map((r) => r.name), options);
  for (const repo of inventory.repositories) planRepository(repo, inventory.manifests, context, plan);
  const streamed = await planTree(filesystemSource(root), options);
  expect(streamed.inUse).toEqual(context.inUse);
  expect([...streamed.plan.manifests]).toEqual([...plan.manifests]);
  const removed = [...plan.manifests].map((m) => `${m.repository}@${m.digest}`).sort();
  return { plan, inUse: context.inUse, removed, predicted: predictCollect(inventory, plan) };
}

it('keeps a pinned untagged image and names its users; other untagged revisions still go', async () => {
  const pinnedOld = await w.image('app', { seed: 'old' });
  const other = await w.image('app', { seed: 'other' });
  await w.image('app', { seed: 'new', tag: 'latest' });
  const { removed, inUse, plan } = await planOf({ pinned: pins([`localhost:5000/app@${pinnedOld.digest}`]) });
  expect(removed).toEqual([`app@${other.digest}`]);
  expect(inUse).toEqual([{ repository: 'app', digest: pinnedOld.digest, users: ['container web-1'] }]);
  expect(plan.spared).toEqual([]);
});

it('keeps the children of a pinned untagged index, and lists only the index', async () => {
  const amd = await w.image('multi', { seed: 'amd64' });
  const arm = await w.image('multi', { seed: 'arm64' });
  const list = await w.index('multi', [amd, arm]);
  const goneAmd = await w.image('multi', { seed: 'gone-amd64' });
  const gone = await w.index('multi', [goneAmd]);
  await w.image('multi', { seed: 'current', tag: 'v2' });
  const { removed, inUse, predicted } = await planOf({ pinned: pins([`multi:v1@${list.digest}`], 'service stack_app') });
  expect(removed).toEqual([`multi@${gone.digest}`, `multi@${goneAmd.digest}`].sort());
  expect(inUse).toEqual([{ repository: 'multi', digest: list.digest, users: ['service stack_app'] }]);
  // The pinned index and its children keep their blobs: only the gone ones are swept.
  expect(predicted.digests).toContain(gone.digest);
  expect(predicted.digests).not.toContain(list.digest);
  expect(predicted.digests).not.toContain(amd.digest);
});

it('keeps the referrers of a pinned digest', async () => {
  const old = await w.image('signed', { seed: 'old', format: 'oci' });
  const sig = await w.image('signed', { seed: 'old-sig', subject: old, layers: 1 });
  await w.image('signed', { seed: 'new', tag: 'latest' });
  const { removed, inUse } = await planOf({ pinned: pins([`signed@${old.digest}`]) });
  expect(removed).toEqual([]);
  expect(inUse.map((u) => u.digest)).toEqual([old.digest]);
  expect(sig.digest).not.toBe(old.digest);
});

it('a bare digest is kept in every repository that holds it; one a repository does not hold is ignored', async () => {
  const shared = await w.image('a', { seed: 'shared' });
  await w.linkRevision('b', shared.digest);
  await w.image('a', { seed: 'a-new', tag: 'latest' });
  await w.image('b', { seed: 'b-new', tag: 'latest' });
  const elsewhere = await w.image('c', { seed: 'c-old' });
  await w.image('c', { seed: 'c-new', tag: 'latest' });
  const absent = `sha256:${'f'.repeat(64)}` as Digest;
  const { removed, inUse, plan } = await planOf({ pinned: pins([shared.digest, `c@${absent}`, `nope/repo@${elsewhere.digest}`], 'file pins.txt') });
  expect(removed).toEqual([`c@${elsewhere.digest}`]);
  expect(inUse).toEqual([
    { repository: 'a', digest: shared.digest, users: ['file pins.txt'] },
    { repository: 'b', digest: shared.digest, users: ['file pins.txt'] },
  ]);
  expect(plan.spared).toEqual([]);
});

it('merges the users of a digest pinned by name and by digest alone', async () => {
  const old = await w.image('app', { seed: 'old' });
  await w.image('app', { seed: 'new', tag: 'latest' });
  const pinned = pins([`app@${old.digest}`]);
  readPinList(old.digest, { source: 'stdin', user: 'stdin' }, pinned);
  readPinList(`registry.example.com/app@${old.digest}`, { source: 'f', user: 'service s' }, pinned);
  const { inUse } = await planOf({ pinned });
  expect(inUse).toEqual([{ repository: 'app', digest: old.digest, users: ['container web-1', 'service s', 'stdin'] }]);
});

it('names nothing a tag keeps anyway, nor what the arguments leave alone', async () => {
  const tagged = await w.image('app', { seed: 'tagged', tag: 'latest' });
  const old = await w.image('other', { seed: 'old' });
  await w.image('other', { seed: 'new', tag: 'latest' });
  const pinned = pins([`app@${tagged.digest}`, `other@${old.digest}`]);
  expect((await planOf({ pinned })).inUse.map((u) => u.repository)).toEqual(['other']);
  // Only app is purged: other's pinned revision was never going.
  const { inUse, removed } = await planOf({ pinned, selectors: [parseSelector('app')] });
  expect(inUse).toEqual([]);
  expect(removed).toEqual([]);
});

it('a tag that goes leaves its manifest while something uses it', async () => {
  const v1 = await w.image('app', { seed: 'v1', tag: 'v1' });
  await w.image('app', { seed: 'v2', tag: 'v2' });
  const { plan, removed, inUse } = await planOf({ remove: [parseSelector('app:v1')], pinned: pins([`app@${v1.digest}`]) });
  expect(plan.tags.map((t) => t.tag)).toEqual(['v1']);
  expect(removed).toEqual([]);
  expect(inUse).toEqual([{ repository: 'app', digest: v1.digest, users: ['container web-1'] }]);
});
