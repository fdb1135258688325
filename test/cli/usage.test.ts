/**
 * `--usage` as a user meets it: the JSON report's `usage` against numbers
 * worked out from the files on disk, valid against the shipped schema; the
 * human table sorted with bars; and never a change to the tree, --yes or not.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TreeWriter, seededBytes } from '../../scripts/sampleTree.js';
import { runCli } from '../support/cli.js';
import { expectValidReport } from '../support/schema.js';
import { snapshot, tempDir } from '../support/tmp.js';
import { expectedUsage } from '../support/usage.js';

let root: string;
let before: Record<string, string>;

beforeAll(async () => {
  root = await tempDir();
  const w = await new TreeWriter(root).init();
  const base = await w.blob(seededBytes('base', 4000));
  // Untagged history in app, a tagged index in team/web, a layer every repository shares.
  await w.image('app', { seed: 'app-1', shared: [base], tag: 'latest', layerSize: 3000 });
  await w.image('app', { seed: 'app-2', shared: [base], tag: 'latest', layerSize: 3000 });
  const children = [await w.image('team/web', { seed: 'amd', shared: [base], layerSize: 1500 }), await w.image('team/web', { seed: 'arm', layerSize: 1500 })];
  await w.index('team/web', children, { tag: 'v1' });
  await w.image('tools', { seed: 'tools', shared: [base], tag: 'latest', layers: 1, layerSize: 100 });
  await w.blob(seededBytes('orphan', 900));
  before = await snapshot(root);
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('--usage', () => {
  it('--json: the report gains usage, as the files on disk say, valid against the schema', async () => {
    // The tree was written just now: --grace 0s lets the default sweep reclaim what garbage-collect would.
    const run = await runCli(['--path', root, '--usage', '--json', '--grace', '0s']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.dryRun).toBe(true);
    expect(report.usage).toEqual(await expectedUsage(root));
    expect(report.usage.totals.reclaimableBytes).toBe(report.predicted.bytes);
    expect(report.usage.totals.reclaimableBytes).toBeGreaterThan(0);
    expect(await snapshot(root)).toEqual(before);
  });

  it('reclaimable follows the sweep: by default the blobs within the grace stay, as in the prediction', async () => {
    const report = JSON.parse((await runCli(['--path', root, '--usage', '--json'])).stdout);
    expectValidReport(report);
    expect(report.gc.mode).toBe('builtin');
    expect(report.builtin.recent.bytes).toBeGreaterThan(0);
    expect(report.usage.totals.reclaimableBytes).toBe(report.predicted.bytes);
    expect(report.usage.totals.reclaimableBytes).toBeLessThan((await expectedUsage(root)).totals.reclaimableBytes);
  });

  it('a report without --usage has no usage and still validates', async () => {
    const run = await runCli(['--path', root, '--dry-run', '--json']);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report).not.toHaveProperty('usage');
  });

  it('the human form: one row per repository, largest first, each with a bar; --top limits the rows', async () => {
    const expected = await expectedUsage(root);
    const run = await runCli(['--path', root, '--usage']);
    expect(run.code).toBe(0);
    const rows = run.stdout.split('\n').filter((l) => l.includes('█'));
    expect(rows.map((l) => l.trim().split(/\s+/)[0])).toEqual(expected.repositories.map((r) => r.repository));
    const bars = rows.map((l) => (l.match(/█+/) as RegExpMatchArray)[0].length);
    expect(bars[0]).toBe(24);
    expect(bars).toEqual([...bars].sort((a, b) => b - a));
    expect(run.stdout).toMatch(/^ {2}total\s+3\s+6\s/m);

    const top = await runCli(['--path', root, '--usage', '--top', '1']);
    expect(top.stdout.split('\n').filter((l) => l.includes('█'))).toHaveLength(1);
    expect(top.stdout).toContain('… 2 more repositories');
  });

  it('changes nothing even with --yes, and needs no terminal to confirm', async () => {
    const withYes = await runCli(['--path', root, '--usage', '--yes', '--no-gc']);
    expect(withYes.code).toBe(0);
    expect(await snapshot(root)).toEqual(before);
    const withoutYes = await runCli(['--path', root, '--usage', '--no-gc']);
    expect(withoutYes.code).toBe(0);
    expect(withoutYes.stderr).toBe('');
    expect(await snapshot(root)).toEqual(before);
  });

  it('is refused with --restore, and --help says it is a dry run', async () => {
    const run = await runCli(['--path', root, '--usage', '--restore', `${root}/journal`]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--usage.*cannot be used with.*--restore/);
    expect(await snapshot(root)).toEqual(before);
    const help = await runCli(['--help']);
    expect(help.stdout).toMatch(/--usage\s+where the disk goes[^]*always a dry run/);
  });
});
