/**
 * A real run's freed blobs against its prediction (issue 22, "never silent"),
 * one run start to end on a tree written file by file, with the real builtin
 * sweep. A window of the test's own changes the tree around the run's work as
 * a registry serving, or a client pushing, would; the report must say any
 * difference, digest by digest, and stay quiet when there is none.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TreeWriter, type Written } from '../scripts/sampleTree.js';
import type { MaintenanceWindow } from '../src/docker/maintenanceWindow.js';
import type { Digest } from '../src/model.js';
import { type SweepReport, sweep } from '../src/sweep.js';
import { countTree, tempDir } from './support/tmp.js';
import { filesystemRun } from '../src/run/filesystem.js';

let root: string;
let w: TreeWriter;
let old: Written;
let web: Written;

beforeEach(async () => {
  root = await tempDir();
  w = await new TreeWriter(root).init();
  old = await w.image('app', { seed: 'old', tag: 'latest' });
  await w.image('app', { seed: 'new', tag: 'latest' });
  web = await w.image('team/web', { seed: 'web', tag: 'v1' });
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** The layers of an image manifest written by the TreeWriter. */
async function layersOf(manifest: Written): Promise<Digest[]> {
  const doc = JSON.parse(await fs.readFile(w.layout.pathFor({ kind: 'blobData', digest: manifest.digest }), 'utf8'));
  return doc.layers.map((l: { digest: Digest }) => l.digest);
}

/** The unpaused window, with the test's own changes to the tree before and after the run's work in it. */
function windowWith(hooks: { before?: () => Promise<void>; after?: () => Promise<void> }): MaintenanceWindow {
  return {
    description: 'a test window',
    async run(work) {
      await hooks.before?.();
      const value = await work(new AbortController().signal);
      await hooks.after?.();
      return { value, pausedMs: 0 };
    },
  };
}

async function run(options: { builtin?: boolean; window?: MaintenanceWindow } = {}): Promise<SweepReport> {
  return sweep({ target: { kind: 'path', name: root, root }, storage: filesystemRun(root), dryRun: false, builtin: options.builtin === false ? undefined : { graceMs: 0 }, window: options.window });
}

describe('--gc builtin', () => {
  it('frees exactly the prediction: no problem, freed is the prediction, after is the tree', async () => {
    const report = await run();
    expect(report.predicted.blobs).toBe(4); // the old image: its manifest, config and two layers
    expect(report.freed).toEqual(report.predicted);
    expect(report.problems).toEqual([]);
    expect(report.after).toEqual(await countTree(root));
  });

  it('a revision pushed since the scan keeps predicted blobs: the spared ones are a problem, with the reason', async () => {
    // Pushed to another repository between the scan and the window: the sweep must spare what it needs.
    const window = windowWith({
      before: async () => {
        await w.linkRevision('other', old.digest);
        await w.linkLayer('other', old.digest);
      },
    });
    const report = await run({ window });
    const spared = report.builtin?.spared.blobs ?? 0;
    expect(spared).toBe(4);
    expect(report.freed).toEqual({ blobs: 0, bytes: 0 });
    expect(report.problems.map((p) => p.message)).toEqual([`freed 0 of 4 predicted blobs (0 B of ${kib(report.predicted.bytes)}): 4 predicted blobs (${kib(report.predicted.bytes)}) are still there (the builtin sweep spared 4 that revisions pushed since the scan need)`]);
    expect(report.after.blobs).toBe((await countTree(root)).blobs);
  });

  it('a swept blob pushed again after the window was freed: no problem (a busy registry takes pushes of old layers)', async () => {
    const [layer] = await layersOf(old);
    const data = await fs.readFile(w.layout.pathFor({ kind: 'blobData', digest: layer as Digest }));
    const window = windowWith({
      after: async () => {
        const again = w.layout.pathFor({ kind: 'blobData', digest: (await w.blob(data)).digest });
        // Later than the run's start, as a real push's would be: a file's mtime comes from the kernel's coarse clock,
        // which can stamp a write made a millisecond after the start a few milliseconds before it.
        const later = new Date(Date.now() + 2000);
        await fs.utimes(again, later, later);
      },
    });
    const report = await run({ window });
    expect(report.freed).toEqual(report.predicted);
    expect(report.problems).toEqual([]);
    expect(report.after).toEqual(await countTree(root));
  });

  it('a new blob pushed after the window is neither freed nor kept: no problem', async () => {
    const window = windowWith({ after: async () => void (await w.blob(Buffer.from('a layer pushed after the window'))) });
    const report = await run({ window });
    expect(report.problems).toEqual([]);
    expect(report.freed).toEqual(report.predicted);
    // The totals alone would say one blob less was freed.
    expect(report.before.blobs - report.after.blobs).toBe(report.predicted.blobs - 1);
    expect(report.after).toEqual(await countTree(root));
  });

  it('a kept blob gone after the run: freed more than predicted, said so', async () => {
    const [layer] = await layersOf(web);
    const window = windowWith({ after: () => fs.rm(path.dirname(w.layout.pathFor({ kind: 'blobData', digest: layer as Digest })), { recursive: true }) });
    const report = await run({ window });
    expect(report.freed?.blobs).toBe(report.predicted.blobs + 1);
    expect(report.problems.map((p) => p.message)).toEqual([expect.stringMatching(/^freed 5 of 4 predicted blobs \(.+\): 1 blob \(.+\) the prediction kept is gone \(something other than regsweep removed it\)$/)]);
  });
});

describe('--no-gc', () => {
  it('nothing was to be freed: no problem', async () => {
    const report = await run({ builtin: false });
    expect(report.gc.skipped).toBe('--no-gc');
    expect(report.freed).toEqual({ blobs: 0, bytes: 0 });
    expect(report.problems).toEqual([]);
  });

  it('a blob gone all the same is a problem', async () => {
    const [layer] = await layersOf(old);
    const window = windowWith({ after: () => fs.rm(path.dirname(w.layout.pathFor({ kind: 'blobData', digest: layer as Digest })), { recursive: true }) });
    const report = await run({ builtin: false, window });
    expect(report.freed?.blobs).toBe(1);
    expect(report.problems.map((p) => p.message)).toEqual([expect.stringMatching(/^freed 1 blob \(.+\) though garbage-collect did not run \(--no-gc\): something other than regsweep removed it$/)]);
  });
});

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}
