/**
 * "Newer than the grace" counts on the storage's clock, not this process's.
 * The real thing: libfaketime skews the clock regsweep's process sees (Node's
 * Date.now(); its stat calls go to the kernel unfaked), while the tree's
 * mtimes come from the kernel's clock, as a container or an NFS client with a
 * skewed clock would see a storage it shares. Ahead: a layer uploaded a moment
 * ago looks hours old to the process, and the process's clock would sweep it;
 * behind: a layer uploaded "in the future" for the process, which must never
 * be swept early either.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { expect, it } from 'vitest';
import type { TreeWriter } from '../../scripts/sampleTree.js';
import { type CliRun, runCli } from '../support/cli.js';
import { sampleTreeEachTest } from '../support/tree.js';

let root: string;
let w: TreeWriter;
sampleTreeEachTest((tree) => ({ root, w } = tree));

const HOUR = 3_600_000;
const hasFaketime = spawnSync('faketime', ['-f', '+0', 'true']).status === 0;

/** The built CLI with its process's clock moved by `offset` (faketime's syntax: `+2h`, `-2h`). */
function skewedCli(offset: string, args: string[]): Promise<CliRun> {
  return runCli(args, { wrap: ['faketime', '-f', offset] });
}

/** What Node under faketime takes for now, less this process's now, in ms. */
function skewSeen(offset: string): number {
  const before = Date.now();
  const out = spawnSync('faketime', ['-f', offset, process.execPath, '-e', 'process.stdout.write(String(Date.now()))'], { encoding: 'utf8' });
  return Number(out.stdout) - (before + Date.now()) / 2;
}

/** A tagged image, a layer nothing references uploaded just now, and one nothing references written 3 hours ago (storage's clock). */
async function treeWithFreshUpload(): Promise<{ fresh: string; old: string }> {
  await w.image('app', { seed: 'kept', tag: 'latest' });
  const fresh = w.layout.pathFor({ kind: 'blobData', digest: (await w.blob(Buffer.from('a layer uploaded a moment ago'))).digest });
  const old = w.layout.pathFor({ kind: 'blobData', digest: (await w.blob(Buffer.from('a layer nobody finished 3 hours ago'))).digest });
  const then = new Date(Date.now() - 3 * HOUR);
  await fs.utimes(old, then, then);
  return { fresh, old };
}

const exists = (p: string): Promise<boolean> => fs.stat(p).then(() => true, () => false);
const BUILTIN = ['--gc', 'builtin', '--grace', '1h', '--json'];

it.skipIf(!hasFaketime)('faketime moves the clock Node sees, not the mtimes the kernel writes', () => {
  expect(Math.abs(skewSeen('+2h') - 2 * HOUR)).toBeLessThan(60_000);
  expect(Math.abs(skewSeen('-2h') + 2 * HOUR)).toBeLessThan(60_000);
});

it.skipIf(!hasFaketime)('a clock 2 hours ahead keeps a layer uploaded a moment ago, which its own clock would sweep', async () => {
  const { fresh, old } = await treeWithFreshUpload();
  const size = (await fs.stat(old)).size;
  // A dry run writes nothing to read the storage's clock from: it counts on the process's, as every run did before.
  const dry = await skewedCli('+2h', ['--path', root, '--dry-run', ...BUILTIN]);
  expect(dry.code).toBe(0);
  const predictedOnProcessClock = JSON.parse(dry.stdout);
  expect(predictedOnProcessClock.builtin.clock).toEqual({ source: 'process', offsetMs: 0 });
  expect(predictedOnProcessClock.predicted.blobs).toBe(2);
  expect(predictedOnProcessClock.builtin.recent.blobs).toBe(0);

  const run = await skewedCli('+2h', ['--path', root, '--yes', ...BUILTIN]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const report = JSON.parse(run.stdout);
  expect(await exists(fresh)).toBe(true);
  expect(await exists(old)).toBe(false);
  expect(report.builtin.recent).toEqual({ blobs: 1, bytes: (await fs.stat(fresh)).size });
  expect(report.predicted).toEqual({ blobs: 1, bytes: size });
  expect(report.freed).toEqual(report.predicted);
  expect(report.problems).toEqual([]);
  expect(report.builtin.clock.source).toBe('storage');
  expect(Math.abs(report.builtin.clock.offsetMs + 2 * HOUR)).toBeLessThan(60_000);
  expect(await fs.readdir(root)).toEqual(['docker']);
});

it.skipIf(!hasFaketime)('a clock 2 hours behind keeps a layer uploaded "in the future", and still sweeps one older than the grace', async () => {
  const { fresh, old } = await treeWithFreshUpload();
  // Written 30 minutes ago by the storage's clock: within the grace, though 90 minutes ahead of the process's now.
  const withinGrace = w.layout.pathFor({ kind: 'blobData', digest: (await w.blob(Buffer.from('a layer uploaded half an hour ago'))).digest });
  const halfHourAgo = new Date(Date.now() - HOUR / 2);
  await fs.utimes(withinGrace, halfHourAgo, halfHourAgo);
  const run = await skewedCli('-2h', ['--path', root, '--yes', ...BUILTIN]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const report = JSON.parse(run.stdout);
  expect(report.builtin.clock.source).toBe('storage');
  expect(Math.abs(report.builtin.clock.offsetMs - 2 * HOUR)).toBeLessThan(60_000);
  expect(report.builtin.recent.blobs).toBe(2);
  expect(report.predicted.blobs).toBe(1);
  expect(report.freed).toEqual(report.predicted);
  expect(report.problems).toEqual([]);
  expect(await exists(fresh)).toBe(true);
  expect(await exists(withinGrace)).toBe(true);
  expect(await exists(old)).toBe(false);
});

it.skipIf(!hasFaketime)('the human report says when the storage’s clock is not this process’s', async () => {
  await treeWithFreshUpload();
  const run = await skewedCli('+2h', ['--path', root, '--yes', '--gc', 'builtin', '--grace', '1h']);
  expect(run.code).toBe(0);
  expect(run.stdout).toMatch(/the storage's clock is 7\d{3} s behind this process's: the grace counted on the storage's/);
});
