/**
 * `-x` run again after a run with the same work died: what it named is gone
 * already (the dead run removed it), and the run finishes the rest instead of
 * refusing. Without a dead run to recover, a name that is not there is still
 * refused as a typo (exit 2). The scope stays what `-x` alone names.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import type { TreeWriter } from '../../scripts/sampleTree.js';
import { runCli } from '../support/cli.js';
import { sampleTreeEachTest } from '../support/tree.js';
import { snapshot } from '../support/tmp.js';

let root: string;
let w: TreeWriter;
sampleTreeEachTest((tree) => ({ root, w } = tree));

/** What the watchdog of a run that died leaves for the next run. */
async function deadRunNote(): Promise<void> {
  const note = { by: 'watchdog', at: new Date().toISOString(), holder: { pid: 1, hostname: 'here', startedAt: new Date().toISOString() }, containers: [], helpersRemoved: 0, gcStopped: false, swapsUndone: 0 };
  await fs.writeFile(path.join(root, '.regsweep.recovered.json'), JSON.stringify(note));
}

async function tree(): Promise<void> {
  await w.image('app', { seed: 'one', tag: 'latest' });
  await w.image('app', { seed: 'old' }); // untagged history: -x alone leaves it
  await w.image('other', { seed: 'two', tag: 'v1' });
}

it('after a dead run, -x of a tag and a repository that are gone finishes the run (exit 0) and touches nothing else', async () => {
  await tree();
  await deadRunNote();
  const before = await snapshot(path.join(root, 'docker'));
  const run = await runCli(['--path', root, '-x', 'app:gone', '-x', 'gone/repo', '--yes', '--json', '--grace', '0s']);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const report = JSON.parse(run.stdout);
  expect(report.recovered).toMatchObject({ by: 'watchdog' });
  expect([...report.plan.manifests]).toEqual([]);
  expect(await snapshot(path.join(root, 'docker'))).toEqual(before);
  expect(await fs.readdir(root)).toEqual(['docker']);
});

it('without a dead run, -x of a tag that is not there is refused as a typo: exit 2, one line', async () => {
  await tree();
  const run = await runCli(['--path', root, '-x', 'app:gone', '--yes']);
  expect(run.code).toBe(2);
  expect(run.stderr.trim().split('\n')).toEqual(['regsweep: no tag gone in repository app']);
});
