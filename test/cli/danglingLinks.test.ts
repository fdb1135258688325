/**
 * A run that died after its sweep left `_layers` links whose blobs are gone;
 * an uninterrupted run would have removed them. The next builtin run finishes
 * that work (so crashes converge), also when it has nothing else to collect,
 * and says so; a link written within the grace stays (a push may be using it).
 */
import fs from 'node:fs/promises';
import { expect, it } from 'vitest';
import type { TreeWriter } from '../../scripts/sampleTree.js';
import type { Digest } from '../../src/model.js';
import { runCli } from '../support/cli.js';
import { sampleTreeEachTest } from '../support/tree.js';

let root: string;
let w: TreeWriter;
sampleTreeEachTest((tree) => ({ root, w } = tree));

const HOUR = 3_600_000;

/** A blob linked into `repository` whose data a dead run swept: its link stays, last written `ageMs` ago. */
async function sweptUnderALink(repository: string, seed: string, ageMs: number): Promise<string> {
  const blob = await w.blob(Buffer.from(`a layer of ${seed}`));
  await w.linkLayer(repository, blob.digest);
  await fs.rm(w.layout.pathFor({ kind: 'blobDir', digest: blob.digest }), { recursive: true });
  const link = w.layout.pathFor({ kind: 'layerLink', name: repository, digest: blob.digest as Digest });
  const when = new Date(Date.now() - ageMs);
  await fs.utimes(link, when, when);
  return link;
}

const exists = (p: string): Promise<boolean> => fs.stat(p).then(() => true, () => false);

it('removes the _layers links of blobs a dead run swept, older than the grace, with nothing else to collect', async () => {
  await w.image('app', { seed: 'one', tag: 'latest' });
  const old = await sweptUnderALink('app', 'dead-run', 2 * HOUR);
  const fresh = await sweptUnderALink('app', 'in-flight', 0);
  const links = w.layout.pathFor({ kind: 'layerAlgorithm', name: 'app' });
  const before = await fs.readdir(links);
  const run = await runCli(['--path', root, '--yes', '--json', '--gc', 'builtin', '--grace', '1h']);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const report = JSON.parse(run.stdout);
  expect(report.predicted.blobs).toBe(0);
  expect(report.builtin).toMatchObject({ layerLinks: 0, danglingLinks: 1 });
  expect(await exists(old)).toBe(false);
  expect(await exists(fresh)).toBe(true);
  // Every other link (the kept image's own) is untouched.
  expect((await fs.readdir(links)).sort()).toEqual(before.filter((hex) => !old.includes(hex)).sort());
  expect(await fs.readdir(root)).toEqual(['docker']);
});

it('leaves them alone with --no-gc, and in a dry run', async () => {
  await w.image('app', { seed: 'one', tag: 'latest' });
  const old = await sweptUnderALink('app', 'dead-run', 2 * HOUR);
  const dry = await runCli(['--path', root, '--dry-run', '--json', '--gc', 'builtin']);
  expect(dry.code).toBe(0);
  expect(JSON.parse(dry.stdout).builtin.danglingLinks).toBe(0);
  expect(await exists(old)).toBe(true);
  const links = await runCli(['--path', root, '--yes', '--json', '--no-gc']);
  expect(links.code).toBe(0);
  expect(await exists(old)).toBe(true);
});
