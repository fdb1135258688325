/**
 * `--quarantine` and `--restore` on trees written file by file: a quarantine
 * outlives the emptying of the trash until it expires, and restoring from it
 * (the directory or a journal file) puts back blobs, `_layers` links,
 * revisions and tags byte for byte, mtimes kept; it never overwrites, and it
 * refuses, changing nothing, once the quarantine is gone.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TreeWriter, type Written } from '../../scripts/sampleTree.js';
import { applyPlan } from '../../src/apply/apply.js';
import { sweepBlobs, sweepLayerLinks } from '../../src/apply/blobSweep.js';
import { restoreJournal } from '../../src/apply/restore.js';
import { QUARANTINE_JOURNAL, Remover, emptyTrash, quarantineExpiry, trashFor } from '../../src/apply/trash.js';
import { planTree } from '../../src/plan/planTree.js';
import { parseSelector } from '../../src/plan/selectors.js';
import { runCli } from '../support/cli.js';
import { expectValidReport } from '../support/schema.js';
import { snapshot, tempDir } from '../support/tmp.js';
import { linksOfTaken } from '../support/layerLinks.js';
import { filesystemSource } from '../../src/storage/fs/source.js';

let root: string;
let w: TreeWriter;
let kept: Written;
let old: Written;

const DAY = 86_400_000;

beforeEach(async () => {
  root = await tempDir();
  w = await new TreeWriter(root).init();
  kept = await w.image('app', { seed: 'new', tag: 'latest' });
  old = await w.image('app', { seed: 'old', tag: 'old' });
  await w.linkLayer('app', old.digest);
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
  await fs.rm(`${root}.journal`, { force: true });
});

/** The registry's tree alone: the quarantine beside it is not part of what a restore must bring back. */
const tree = (): Promise<Record<string, string>> => snapshot(path.join(root, 'docker'));
const quarantinesIn = async (): Promise<string[]> => (await fs.readdir(root)).filter((n) => n.startsWith('.regsweep-quarantine-'));

/** What a real run with `--gc builtin -x app:old --quarantine 1d` does in its window, with a journal file too when asked. */
async function removeOldIntoQuarantine(journal?: string): Promise<{ quarantine: string; swept: number }> {
  const planned = await planTree(filesystemSource(root), { registryVersion: '2.8.2', builtin: true, recentAfter: Date.now() + DAY, remove: [parseSelector('app:old')] });
  const quarantine = trashFor(root, DAY);
  const remover = Remover.open(root, { trash: quarantine, journals: journal ? [journal] : [] });
  try {
    await applyPlan(root, planned.plan, { remover, onChange: 'abort' });
    const swept = await sweepBlobs(root, { swept: planned.sweptDigests(), isMarked: planned.isMarked, sizeOf: planned.sizeOf, remover });
    sweepLayerLinks(root, linksOfTaken(swept), remover); // after the window
    return { quarantine, swept: swept.blobs };
  } finally {
    remover.close();
  }
}

describe('a quarantine', () => {
  it('is named by its expiry, beside docker/, and holds its journal', async () => {
    const now = Date.now();
    const dir = trashFor(root, DAY, now);
    expect(path.dirname(dir)).toBe(root);
    expect(path.basename(dir)).toBe(`.regsweep-quarantine-${now + DAY}-${process.pid}`);
    expect(quarantineExpiry(dir)).toBe(now + DAY);
    expect(quarantineExpiry(trashFor(root))).toBeUndefined();

    const { quarantine, swept } = await removeOldIntoQuarantine();
    expect(swept).toBe(4); // the manifest, its config and its two layers
    const lines = (await fs.readFile(path.join(quarantine, QUARANTINE_JOURNAL), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ regsweep: 'journal', version: 2, quarantine: path.basename(quarantine), until: new Date(quarantineExpiry(quarantine) as number).toISOString() });
    const moved = lines.filter((l) => 'movedTo' in l).map((l) => l.path);
    expect(moved).toContain(w.layout.relativePathFor({ kind: 'tag', name: 'app', tag: 'old' }));
    expect(moved).toContain(w.layout.relativePathFor({ kind: 'revisionDir', name: 'app', digest: old.digest }));
    expect(moved).toContain(w.layout.relativePathFor({ kind: 'blobDir', digest: old.digest }));
    expect(moved).toContain(w.layout.relativePathFor({ kind: 'layerDir', name: 'app', digest: old.digest }));
  });

  it('outlives emptyTrash until it expires; the trash of any run goes at once', async () => {
    const { quarantine } = await removeOldIntoQuarantine();
    const leftover = path.join(root, '.regsweep-trash-1-2');
    await fs.mkdir(path.join(leftover, '0'), { recursive: true });
    const later = path.join(root, `.regsweep-quarantine-${Date.now() + 2 * DAY}-1`);
    await fs.mkdir(later);

    expect(await emptyTrash(root)).toEqual([]);
    expect((await fs.readdir(root)).sort()).toEqual([path.basename(quarantine), path.basename(later), 'docker'].sort());

    const until = quarantineExpiry(quarantine) as number;
    expect(await emptyTrash(root, until)).toEqual([quarantine]);
    expect((await fs.readdir(root)).sort()).toEqual([path.basename(later), 'docker'].sort());
  });
});

describe('restoreJournal from a quarantine', () => {
  it('puts back a blob, its _layers link, its revision and its tag byte for byte, mtimes kept', async () => {
    const before = await tree();
    const tagLink = w.layout.pathFor({ kind: 'tagCurrentLink', name: 'app', tag: 'old' });
    const pushed = new Date(Date.now() - 3 * DAY);
    await fs.utimes(tagLink, pushed, pushed);
    const pushedMs = (await fs.stat(tagLink)).mtimeMs;
    const { quarantine } = await removeOldIntoQuarantine();
    await emptyTrash(root);
    expect(await tree()).not.toEqual(before);
    await expect(fs.stat(w.layout.pathFor({ kind: 'blobData', digest: old.digest }))).rejects.toThrow();

    const result = await restoreJournal(root, quarantine);

    expect(result).toMatchObject({ restored: 0, conflicts: [], missing: [] });
    expect(result.moved).toBeGreaterThanOrEqual(7); // tag, revision, 4 blobs, _layers links
    expect(await tree()).toEqual(before);
    expect((await fs.stat(tagLink)).mtimeMs).toBe(pushedMs); // the push time retention rules read
    // Again: everything is in place, nothing changes.
    const again = await restoreJournal(root, quarantine);
    expect(again).toMatchObject({ restored: 0, moved: 0, conflicts: [], missing: [] });
    expect(again.present).toBe(result.moved);
    expect(await tree()).toEqual(before);
  });

  it('from a journal file kept elsewhere, which names its quarantine', async () => {
    const before = await tree();
    const journal = `${root}.journal`;
    await removeOldIntoQuarantine(journal);
    const result = await restoreJournal(root, journal);
    expect(result).toMatchObject({ conflicts: [], missing: [] });
    expect(await tree()).toEqual(before);
  });

  it('never overwrites: a tag pushed again since is a conflict and stays as it is', async () => {
    const { quarantine } = await removeOldIntoQuarantine();
    await w.tag('app', 'old', kept.digest);
    const tagLink = w.layout.pathFor({ kind: 'tagCurrentLink', name: 'app', tag: 'old' });

    const result = await restoreJournal(root, quarantine);

    expect(result.conflicts).toContain(w.layout.relativePathFor({ kind: 'tagCurrentLink', name: 'app', tag: 'old' }));
    expect(await fs.readFile(tagLink, 'utf8')).toBe(kept.digest);
    // What nothing took the place of is back: the revision and its blobs.
    expect(await fs.readFile(w.layout.pathFor({ kind: 'revisionLink', name: 'app', digest: old.digest }), 'utf8')).toBe(old.digest);
    expect((await fs.stat(w.layout.pathFor({ kind: 'blobData', digest: old.digest }))).isFile()).toBe(true);
  });

  it('refuses (exit 2) and changes nothing once the quarantine expired and a run deleted it', async () => {
    const journal = `${root}.journal`;
    const { quarantine } = await removeOldIntoQuarantine(journal);
    await emptyTrash(root, quarantineExpiry(quarantine));
    expect(await quarantinesIn()).toEqual([]);
    const after = await tree();

    await expect(restoreJournal(root, journal)).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/^the quarantine .*\.regsweep-quarantine-\d+-\d+ is gone \(it expired at .*\): nothing was restored$/) });
    await expect(restoreJournal(root, quarantine)).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/is gone .*nothing was restored/) });
    expect(await tree()).toEqual(after);
  });

  it('refuses a move that would leave the quarantine (exit 2)', async () => {
    const journal = `${root}.journal`;
    const { quarantine } = await removeOldIntoQuarantine(journal);
    await fs.appendFile(journal, `${JSON.stringify({ path: 'docker/registry/v2/blobs/x', movedTo: '../../etc' })}\n`);
    const after = await tree();
    await expect(restoreJournal(root, journal)).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(/not a journal entry/) });
    expect(await tree()).toEqual(after);
    expect(await quarantinesIn()).toEqual([path.basename(quarantine)]);
  });
});

describe('--quarantine and --restore on the command line', () => {
  it('a run of the default sweep (builtin) keeps what it removed in a quarantine the report names; --restore of it brings the tree back', async () => {
    const before = await tree();
    const run = await runCli(['--path', root, '--yes', '--json', '--grace', '0s', '--quarantine', '24h', '-x', 'app:old']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.gc).toMatchObject({ mode: 'builtin', ran: true, command: ['regsweep', '--gc', 'builtin'] });
    expect(report.freed).toEqual(report.predicted);
    expect(report.predicted.blobs).toBe(4);
    const [name] = await quarantinesIn();
    expect(report.quarantine).toEqual({ path: path.join(root, name as string), until: expect.any(String) });
    const until = Date.parse(report.quarantine.until);
    expect(until - Date.now()).toBeGreaterThan(DAY - 60_000);
    expect(until).toBe(quarantineExpiry(report.quarantine.path));

    // A later run without --quarantine keeps the unexpired quarantine.
    const later = await runCli(['--path', root, '--yes', '--no-gc', '-q']);
    expect(later.code).toBe(0);
    expect(await quarantinesIn()).toEqual([name]);

    const restore = await runCli(['--path', root, '--restore', report.quarantine.path]);
    expect(restore.stderr).toBe('');
    expect(restore.code).toBe(0);
    expect(restore.stdout).toMatch(/^restored 0 links, \d+ directories from the quarantine, 0 already present$/m);
    expect(await tree()).toEqual(before);
  });

  it('keeps no quarantine when the run removed nothing', async () => {
    const run = await runCli(['--path', root, '--yes', '--json', '--no-gc', '--quarantine', '24h', 'app']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).quarantine).toBeNull();
    expect(await quarantinesIn()).toEqual([]);
  });

  it.each([
    ["with the registry's garbage-collect", ['--gc', 'registry', '--quarantine', '24h'], /--quarantine goes with --gc builtin \(the default\) or --no-gc/],
    ['of less than a second', ['--gc', 'builtin', '--quarantine', '0s'], /must be at least 1s/],
    ['with a bad duration', ['--no-gc', '--quarantine', 'a day'], /invalid duration "a day"/],
  ])('--quarantine %s is refused: exit 2, one line, nothing changed', async (_name, args, message) => {
    const before = await snapshot(root);
    const run = await runCli(['--path', root, '--yes', ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(await snapshot(root)).toEqual(before);
  });

  it('--restore of a quarantine that is gone: exit 2, one line, nothing changed', async () => {
    const gone = path.join(root, `.regsweep-quarantine-${Date.now() - 1000}-1`);
    const before = await snapshot(root);
    const run = await runCli(['--path', root, '--restore', gone]);
    expect(run.code).toBe(2);
    expect(run.stderr.trim()).toMatch(/^regsweep: the quarantine .* is gone \(it expired at .*\): nothing was restored$/);
    expect(await snapshot(root)).toEqual(before);
  });
});
