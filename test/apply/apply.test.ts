import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { applyPlan, removeIndexEntries } from '../../src/apply/apply.js';
import { restoreJournal } from '../../src/apply/restore.js';
import { Remover, emptyTrash, trashFor } from '../../src/apply/trash.js';
import { parseSelector } from '../../src/plan/selectors.js';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { planPurge, scan } from '../support/inventory.js';
import { snapshot } from '../support/tmp.js';
import { sampleTreeEachTest } from '../support/tree.js';

let root: string;
let w: TreeWriter;
sampleTreeEachTest((tree) => ({ root, w } = tree));

async function planOf() {
  return { plan: planPurge(await scan(root)) };
}

describe('applyPlan', () => {
  it('writes a journal that restores every removed link', async () => {
    await w.image('app', { seed: 'new', tag: 'latest' });
    await w.image('app', { seed: 'old', tag: 'latest' });
    await w.image('app', { seed: 'new', tag: 'latest' });
    await w.image('app', { seed: 'stray' });
    const before = await snapshot(root);
    const { plan } = await planOf();
    expect(plan.manifests.length).toBe(2);
    const journal = `${root}.journal`;
    const result = await applyPlan(root, plan, { journal });
    expect(result.manifests.length).toBe(2);
    expect(await snapshot(root)).not.toEqual(before);
    const restored = await restoreJournal(root, journal);
    expect(restored.restored).toBe(3); // two revision links and one tag index link
    expect(await snapshot(root)).toEqual(before);
    await fs.rm(journal);
  });

  it('moves removals into a trash beside docker/, which emptyTrash deletes', async () => {
    await w.image('app', { seed: 'new', tag: 'latest' });
    const old = await w.image('app', { seed: 'old' });
    const { plan } = await planOf();
    const trash = trashFor(root);
    expect(path.dirname(trash)).toBe(root);
    const result = await applyPlan(root, plan, { trash });
    expect([...result.paths]).toEqual([w.layout.relativePathFor({ kind: 'revisionDir', name: 'app', digest: old.digest })]);
    expect(await fs.readdir(trash)).toEqual(['0']);
    expect(await fs.readFile(path.join(trash, '0', 'link'), 'utf8')).toBe(old.digest);
    expect((await scan(root)).repositories[0]?.revisions).not.toContain(old.digest);
    await emptyTrash(root);
    expect((await fs.readdir(root)).sort()).toEqual(['docker']);
  });

  it('skips a repository whose tag moved after the scan', async () => {
    await w.image('app', { seed: 'new', tag: 'latest' });
    const old = await w.image('app', { seed: 'old' });
    const { plan } = await planOf();
    await w.tag('app', 'latest', old.digest); // a push between the scan and the apply
    const result = await applyPlan(root, plan);
    expect([...result.manifests]).toEqual([]);
    expect(result.skipped[0]?.message).toMatch(/tag latest moved/);
    expect((await fs.stat(w.layout.pathFor({ kind: 'revisionLink', name: 'app', digest: old.digest }))).isFile()).toBe(true);
  });

  it("with onChange 'abort', a tag moved in one repository stops every removal", async () => {
    await w.image('app', { seed: 'new', tag: 'latest' });
    const old = await w.image('app', { seed: 'old' });
    await w.image('other', { seed: 'o-new', tag: 'latest' });
    await w.image('other', { seed: 'o-old' });
    const { plan } = await planOf();
    expect(plan.manifests).toHaveLength(2);
    await w.tag('app', 'latest', old.digest);
    const before = await snapshot(root);
    await expect(applyPlan(root, plan, { onChange: 'abort' })).rejects.toThrow(/nothing was removed \(app: tag latest moved since the scan/);
    expect(await snapshot(root)).toEqual(before);
  });

  it('skips a repository that gained a tag after the scan', async () => {
    await w.image('app', { seed: 'new', tag: 'latest' });
    const old = await w.image('app', { seed: 'old' });
    const { plan } = await planOf();
    await w.tag('app', 'rescued', old.digest);
    const result = await applyPlan(root, plan);
    expect(result.skipped[0]?.message).toMatch(/tag rescued appeared/);
  });

  it('-x of a repository is journaled link by link and restores whole', async () => {
    await w.image('team/web', { seed: 'w', tag: 'v1' });
    await w.image('team/web/api', { seed: 'a', tag: 'v1' });
    const before = await snapshot(root);
    const inventory = await scan(root);
    const plan = planPurge(inventory, { remove: [parseSelector('team/web')] });
    expect(plan.repositories).toEqual([{ repository: 'team/web', reason: 'named', nested: ['team/web/api'] }]);
    const journal = `${root}.journal`;
    await applyPlan(root, plan, { journal });
    expect(await fs.readdir(w.layout.pathFor({ kind: 'repository', name: 'team/web' }))).toEqual(['api']);
    await restoreJournal(root, journal);
    expect(await snapshot(root)).toEqual(before);
    await fs.rm(journal);
  });
});

describe('removeIndexEntries (after the window)', () => {
  it('takes the deferred history entries, but not one whose digest was pushed again since the window', async () => {
    const first = await w.image('app', { seed: 'one', tag: 'latest' });
    const second = await w.image('app', { seed: 'two', tag: 'latest' });
    await w.image('app', { seed: 'three', tag: 'latest' });
    const { plan } = await planOf();
    expect(plan.indexEntries.length).toBe(2);
    const trash = trashFor(root);
    const remover = Remover.open(root, { trash });
    try {
      const applied = await applyPlan(root, plan, { remover, deferIndexEntries: true });
      // In the window: the revisions go, the history entries wait.
      expect(applied.indexEntries.length).toBe(0);
      expect(applied.deferred.length).toBe(2);
      const entry = (digest: typeof first.digest) => w.layout.pathFor({ kind: 'tagIndexEntryLink', name: 'app', tag: 'latest', digest });
      await fs.stat(entry(first.digest));
      // The registry serves again; `second` is pushed by digest again (its revision link comes back).
      await w.linkRevision('app', second.digest);

      await removeIndexEntries(root, applied, remover);

      expect([...applied.indexEntries].map((e) => e.digest)).toEqual([first.digest]);
      await expect(fs.stat(entry(first.digest))).rejects.toThrow();
      expect(await fs.readFile(entry(second.digest), 'utf8')).toBe(second.digest);
      expect([...applied.paths]).toContain(w.layout.relativePathFor({ kind: 'tagIndexEntryDir', name: 'app', tag: 'latest', digest: first.digest }));
    } finally {
      remover.close();
    }
  });

  it('takes a history entry whose revision another tag keeps, but not once its tag names that digest again', async () => {
    // `kept` was latest before `newest`, and `stable` still names it: its revision stays, latest's history entry goes.
    const kept = await w.image('app', { seed: 'kept', tag: 'latest' });
    await w.tag('app', 'stable', kept.digest);
    const older = await w.image('web', { seed: 'older', tag: 'latest' });
    await w.tag('web', 'stable', older.digest);
    await w.image('app', { seed: 'newest', tag: 'latest' });
    await w.image('web', { seed: 'newer', tag: 'latest' });
    const { plan } = await planOf();
    expect(plan.manifests.length).toBe(0);
    expect([...plan.indexEntries].map((e) => `${e.repository}:${e.tag}@${e.digest} ${e.reason}`).sort()).toEqual([`app:latest@${kept.digest} history`, `web:latest@${older.digest} history`]);
    const remover = Remover.open(root, { trash: trashFor(root) });
    try {
      const applied = await applyPlan(root, plan, { remover, deferIndexEntries: true });
      // Since the window, web:latest was pushed back to `older`.
      await w.tag('web', 'latest', older.digest);

      await removeIndexEntries(root, applied, remover);

      expect([...applied.indexEntries].map((e) => e.digest)).toEqual([kept.digest]);
      const entry = (name: string, digest: typeof kept.digest) => w.layout.pathFor({ kind: 'tagIndexEntryLink', name, tag: 'latest', digest });
      await expect(fs.stat(entry('app', kept.digest))).rejects.toThrow();
      expect(await fs.readFile(entry('web', older.digest), 'utf8')).toBe(older.digest);
    } finally {
      remover.close();
    }
  });
});

describe('Remover', () => {
  it('never takes a missing trash for a removal: the rename fails and the directory stays', async () => {
    const old = await w.image('app', { seed: 'old' });
    const trash = trashFor(root);
    const remover = Remover.open(root, { trash });
    remover.prepareSwaps(w.layout.pathFor({ kind: 'blobAlgorithm' }), [{ dir: w.layout.pathFor({ kind: 'revisions', name: 'app' }) }]);
    await fs.rm(trash, { recursive: true });
    const dir = w.layout.pathFor({ kind: 'revisionDir', name: 'app', digest: old.digest });
    await expect(remover.linkDirectory(dir)).rejects.toThrow(/ENOENT/);
    await fs.stat(dir);
    remover.close();
  });
});

describe('restoreJournal', () => {
  it('refuses a journal with a line that is not JSON (exit 2) and restores nothing', async () => {
    await w.image('app', { seed: 'x', tag: 'latest' });
    const link = w.layout.relativePathFor({ kind: 'tagCurrentLink', name: 'app', tag: 'gone' });
    const journal = `${root}.journal`;
    await fs.writeFile(journal, `${JSON.stringify({ path: link, content: 'sha256:' + 'a'.repeat(64) })}\nnot json\n`);
    const before = await snapshot(root);
    const error = await restoreJournal(root, journal).catch((e: unknown) => e);
    expect(error).toMatchObject({ exitCode: 2, message: `${journal}:2: not a journal line` });
    expect(await snapshot(root)).toEqual(before);
    await fs.rm(journal);
  });

  it('refuses a journal that names a path outside the tree (exit 2) and restores nothing', async () => {
    await w.image('app', { seed: 'x', tag: 'latest' });
    const inside = w.layout.relativePathFor({ kind: 'tagCurrentLink', name: 'app', tag: 'gone' });
    const journal = `${root}.journal`;
    const lines = [{ path: inside, content: 'sha256:' + 'a'.repeat(64) }, { path: '../../etc/evil', content: 'x' }];
    await fs.writeFile(journal, lines.map((l) => JSON.stringify(l)).join('\n'));
    const before = await snapshot(root);
    const error = await restoreJournal(root, journal).catch((e: unknown) => e);
    expect(error).toMatchObject({ exitCode: 2, message: expect.stringMatching(new RegExp(`^${journal}:2: path outside the registry tree`)) });
    expect(await snapshot(root)).toEqual(before);
    await fs.rm(journal);
  });

  it('refuses a journal it cannot read (exit 2)', async () => {
    await expect(restoreJournal(root, `${root}.missing`)).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/cannot read journal .*ENOENT/) });
  });
});
