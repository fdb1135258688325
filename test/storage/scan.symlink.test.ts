/**
 * A repository directory that is a symlink (moved to another disk) is scanned
 * like any other: the registry follows it, and a scan that did not would sweep
 * the blobs its tags need. A symlink leading back up the tree is not walked
 * again.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { findRepositories } from '../../src/storage/fs/scan.js';
import { planTree } from '../../src/plan/planTree.js';
import { Layout } from '../../src/storage/layout.js';
import { sampleTreeEachTest } from '../support/tree.js';
import type { TreeWriter } from '../../scripts/sampleTree.js';
import { filesystemSource } from '../../src/storage/fs/source.js';

let root: string;
let w: TreeWriter;
sampleTreeEachTest((tree) => ({ root, w } = tree));

it('scans a repository behind a symlink, and keeps the blobs its tags need', async () => {
  const base = await w.blob(Buffer.from('shared base layer'));
  await w.image('team/web', { seed: 'kept', tag: 'latest', shared: [base] });
  await w.image('team/web', { seed: 'old' });
  await w.image('other', { seed: 'other', tag: 'v1' });
  const layout = new Layout(root);
  const repo = layout.pathFor({ kind: 'repository', name: 'team/web' });
  const moved = path.join(root, 'elsewhere-web');
  await fs.rename(repo, moved);
  await fs.symlink(moved, repo);
  expect(findRepositories(layout, []).map((r) => r.name)).toEqual(['other', 'team/web']);
  const planned = await planTree(filesystemSource(root));
  expect([...planned.plan.manifests].map((m) => m.repository)).toEqual(['team/web']);
  // The kept tag's layers are marked: only the old image's own blobs go.
  expect(planned.isMarked(base.digest)).toBe(true);
  expect(planned.predicted.blobs).toBe(4); // its manifest, config and two layers
});

it('does not walk a symlink that leads back up the tree', async () => {
  await w.image('team/web', { seed: 'one', tag: 'latest' });
  const layout = new Layout(root);
  await fs.symlink('..', path.join(layout.pathFor({ kind: 'repository', name: 'team/web' }), 'loop'));
  await fs.symlink(layout.pathFor({ kind: 'repositories' }), path.join(layout.pathFor({ kind: 'repository', name: 'team' }), 'up'));
  const names = findRepositories(layout, []).map((r) => r.name);
  expect(names).toContain('team/web');
  expect(names.length).toBeLessThan(5);
});
