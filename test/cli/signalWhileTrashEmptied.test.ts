/**
 * A SIGTERM (or SIGINT) while a real run empties its trash, after the window:
 * the registry serves again by then, and a trash of millions of entries takes
 * minutes to delete. The run ends there, by the signal, giving its lock up;
 * what is left of the trash the next run deletes.
 *
 * The run is held at the last point before the trash is emptied
 * (REGSWEEP_HOLD_AT, a blocking wait) and the signal is sent there, so it is
 * pending when the emptying begins: the test does not race the deletion.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import type { TreeWriter } from '../../scripts/sampleTree.js';
import { runCli, startCli, waitForFile } from '../support/cli.js';
import { sampleTreeEachTest } from '../support/tree.js';

let root: string;
let w: TreeWriter;
sampleTreeEachTest((tree) => ({ root, w } = tree));

/** A trash an interrupted run left beside docker/: 20 directories of 500 files. */
function plantTrash(): string {
  const left = path.join(root, '.regsweep-trash-1-1');
  for (let d = 0; d < 20; d++) {
    const dir = path.join(left, String(d));
    fs.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 500; f++) fs.writeFileSync(path.join(dir, String(f)), '');
  }
  return left;
}

const filesBelow = (dir: string): number => (fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length : 0);

it.each(['SIGTERM', 'SIGINT'] as const)('a %s while the trash is emptied ends the run there, by the signal: the lock given up, the rest of the trash left, which the next run deletes', async (signal) => {
  await w.image('app', { seed: 'one', tag: 'latest' });
  await w.image('app', { seed: 'old' });
  const left = plantTrash();
  const hold = path.join(root, 'hold');

  const run = startCli(['--path', root, '--yes', '--json', '--grace', '0s'], { REGSWEEP_HOLD_AT: `afterWindow.done:${hold}` });
  await waitForFile(hold, 60_000);
  run.kill(signal); // pending: the run waits without its event loop until the hold is gone
  fs.rmSync(hold);

  expect(await run.done).toMatchObject({ code: null, signal, stderr: '' });
  const remaining = filesBelow(left);
  expect(remaining).toBeGreaterThan(0);
  expect(remaining).toBeLessThan(10_000); // it had begun
  expect(fs.existsSync(path.join(root, '.regsweep.lock'))).toBe(false);

  const next = await runCli(['--path', root, '--yes', '--json', '--grace', '0s']);
  expect(next.stderr).toBe('');
  expect(next.code).toBe(0);
  expect(JSON.parse(next.stdout).recovered ?? null).toBeNull(); // the lock was given up, not left to take over
  expect(fs.readdirSync(root).filter((n) => n.startsWith('.regsweep-trash-'))).toEqual([]);
}, 120_000);
