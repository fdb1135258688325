/**
 * A real run that frees less, or more, than it predicted says so (issue 22,
 * "never silent"): a problem with the numbers and the reason, in the human
 * report, in the JSON and in the metrics file, and exit 1. The registry binary
 * is stood in for by scripts that answer `--version` as 2.8.2 does: one whose
 * garbage-collect deletes nothing, one that runs the real garbage-collect and
 * then deletes a blob the prediction keeps; the real binary is the control.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TreeWriter, type Written } from '../../scripts/sampleTree.js';
import { registryBinary } from '../../scripts/registryClient.js';
import type { Digest } from '../../src/model.js';
import { formatBytes } from '../../src/util/bytes.js';
import { runCli } from '../support/cli.js';
import { parsePromText } from '../support/promText.js';
import { expectValidReport } from '../support/schema.js';
import { countTree, tempDir } from '../support/tmp.js';

const bin = registryBinary();
const VERSION = 'docker-registry github.com/docker/distribution 2.8.2+ds1';

let work: string;
let root: string;
let metrics: string;
let web: Written;

beforeEach(async () => {
  work = await tempDir();
  root = path.join(work, 'root');
  metrics = path.join(work, 'regsweep.prom');
  const w = await new TreeWriter(root).init();
  await w.image('app', { seed: 'old', tag: 'latest' });
  await w.image('app', { seed: 'new', tag: 'latest' });
  web = await w.image('team/web', { seed: 'web', tag: 'v1' });
});
afterEach(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

/** A stand-in registry binary: `--version` as 2.8.2 answers, and `gc` as its garbage-collect. */
async function fakeRegistry(name: string, gc: string): Promise<string> {
  const file = path.join(work, name);
  await fs.writeFile(file, `#!/bin/sh\ncase "$1" in\n  --version) echo '${VERSION}' ;;\n  garbage-collect) ${gc} ;;\nesac\n`, { mode: 0o755 });
  return file;
}

/** Every gauge of the metrics file, by its name without the prefix. */
async function readMetrics(): Promise<Record<string, number>> {
  const values: Record<string, number> = {};
  for (const [name, family] of parsePromText(await fs.readFile(metrics, 'utf8'))) values[name.replace('regsweep_last_run_', '')] = family.samples[0]?.value as number;
  return values;
}

function stillThere(predicted: { blobs: number; bytes: number }): string {
  const { blobs, bytes } = predicted;
  return `freed 0 of ${blobs} predicted blobs (0 B of ${formatBytes(bytes)}): ${blobs} predicted blobs (${formatBytes(bytes)}) are still there (garbage-collect left them)`;
}

describe('a garbage-collect that deletes nothing and exits 0', () => {
  it('--json: exit 1, the problem in problems[], freed 0 beside the prediction; the metrics file counts it', async () => {
    const fake = await fakeRegistry('registry-keeps-all', "echo 'marking nothing, deleting nothing'");
    const before = await countTree(root);
    const run = await runCli(['--path', root, '--yes', '--json', '--gc', 'registry', '--registry-bin', fake, '--metrics-file', metrics]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.gc).toMatchObject({ mode: 'registry', ran: true, exitCode: 0 });
    expect(report.predicted.blobs).toBe(4);
    expect(report.freed).toEqual({ blobs: 0, bytes: 0 });
    expect((await countTree(root)).blobs).toBe(before.blobs);
    expect(report.problems).toEqual([{ message: stillThere(report.predicted) }]);
    const m = await readMetrics();
    expect(m).toMatchObject({ problems: 1, exit_code: 1, freed_bytes: 0, predicted_bytes: report.predicted.bytes });
  });

  it('the human report: the problem under its heading, on stdout, exit 1; the metrics file counts it', async () => {
    const fake = await fakeRegistry('registry-keeps-all', 'true');
    const dry = JSON.parse((await runCli(['--path', root, '--dry-run', '--json', '--gc', 'registry', '--registry-bin', fake])).stdout);
    const run = await runCli(['--path', root, '--yes', '--gc', 'registry', '--registry-bin', fake, '--metrics-file', metrics]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(1);
    const lines = run.stdout.split('\n');
    expect(lines).toContain(`The registry's garbage-collect (--gc registry, exit 0): predicted ${dry.predicted.blobs} blobs, ${formatBytes(dry.predicted.bytes)}; freed 0 blobs, 0 B.`);
    const heading = lines.indexOf('1 problem:');
    expect(heading).toBeGreaterThan(0);
    expect(lines[heading + 1]).toBe(`  ${stillThere(dry.predicted)}`);
    expect(await readMetrics()).toMatchObject({ problems: 1, exit_code: 1 });
  });
});

describe.skipIf(!bin)('with the real garbage-collect', () => {
  it('one that also deletes a blob the prediction keeps: freed more than predicted, exit 1', async () => {
    const layout = new TreeWriter(root).layout;
    const doc = JSON.parse(await fs.readFile(layout.pathFor({ kind: 'blobData', digest: web.digest }), 'utf8'));
    const kept = path.dirname(layout.pathFor({ kind: 'blobData', digest: doc.layers[0].digest as Digest }));
    const fake = await fakeRegistry('registry-deletes-more', `"${bin}" "$@" && rm -r '${kept}'`);
    const run = await runCli(['--path', root, '--yes', '--json', '--gc', 'registry', '--registry-bin', fake, '--metrics-file', metrics]);
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout);
    expect(report.freed.blobs).toBe(report.predicted.blobs + 1);
    expect(report.problems.map((p: { message: string }) => p.message)).toEqual([
      expect.stringMatching(new RegExp(`^freed ${report.predicted.blobs + 1} of ${report.predicted.blobs} predicted blobs \\(.+\\): 1 blob \\(.+\\) the prediction kept is gone \\(garbage-collect removed more than predicted\\)$`)),
    ]);
    expect(await readMetrics()).toMatchObject({ problems: 1, exit_code: 1 });
  });

  it('the control: the real binary on the same tree frees exactly the prediction, no problem, exit 0', async () => {
    const run = await runCli(['--path', root, '--yes', '--json', '--gc', 'registry', '--registry-bin', bin as string, '--metrics-file', metrics]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.predicted.blobs).toBe(4);
    expect(report.freed).toEqual(report.predicted);
    expect(report.problems).toEqual([]);
    expect(report.after).toEqual(await countTree(root));
    expect(await readMetrics()).toMatchObject({ problems: 0, exit_code: 0, freed_bytes: report.predicted.bytes });
  });
});
