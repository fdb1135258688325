/**
 * A `--restore` run between a crash and the next real run takes the lock like
 * a real run, but must not take from that run what the recovery left it: the
 * watchdog's note of what it brought back is reported by the restore and
 * still by the next real run.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import type { TreeWriter } from '../../scripts/sampleTree.js';
import { saveRecoveryNote } from '../../src/storage/fs/lock.js';
import { runCli } from '../support/cli.js';
import { sampleTreeEachTest } from '../support/tree.js';

let root: string;
let w: TreeWriter;
sampleTreeEachTest((tree) => ({ root, w } = tree));

it("a restore reports the watchdog's note and leaves it to the next real run", async () => {
  await w.image('app', { seed: 'one', tag: 'v1' });
  await w.image('app', { seed: 'two', tag: 'v1' });
  const journal = path.join(root, '..', `${path.basename(root)}.journal`);
  try {
    const purge = await runCli(['--path', root, '--yes', '--no-gc', '--journal', journal]);
    expect(purge.code).toBe(0);
    // The run after it died in its window; its watchdog brought the registry back and left a note.
    const note = { by: 'watchdog', at: '2026-12-03T10:00:00.000Z', holder: { pid: 4242, hostname: 'h', startedAt: '2026-12-03T09:59:00.000Z' }, containers: ['registry'], helpersRemoved: 0, gcStopped: false, swapsUndone: 1 };
    saveRecoveryNote(root, note);

    const restore = await runCli(['--path', root, '--restore', journal]);
    expect(restore.code).toBe(0);
    expect(restore.stderr).toContain('recovered a run that died (pid 4242 on h');

    const next = await runCli(['--path', root, '--yes', '--no-gc', '--json']);
    expect(next.code).toBe(0);
    expect(JSON.parse(next.stdout).recovered).toEqual(note);
    // Reported once by a real run: the one after it finds no note.
    const after = await runCli(['--path', root, '--yes', '--no-gc', '--json']);
    expect(JSON.parse(after.stdout).recovered).toBeNull();
  } finally {
    await fs.rm(journal, { force: true });
  }
});
