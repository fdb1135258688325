/**
 * Who sweeps the blobs (issue 23, point 6): regsweep's own sweep is the
 * default in the `--path` shape, with no registry binary anywhere; `--gc
 * registry` runs the registry's own garbage-collect; `--no-gc` sweeps none.
 * The JSON's `gc.mode` and the human report say which ran, on a dry run too.
 * Each real run is on its own copy of one tree, so the two sweeps can be
 * compared blob by blob.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { registryBinary } from '../../scripts/registryClient.js';
import { formatBytes } from '../../src/util/bytes.js';
import { runCli } from '../support/cli.js';
import { expectValidReport } from '../support/schema.js';
import { blobBytes, snapshot, tempDir } from '../support/tmp.js';

const bin = registryBinary();
let work: string;
let root: string;
/** No registry binary on this PATH (node is run by its absolute path), and no Docker engine to ask. */
let bare: NodeJS.ProcessEnv;

beforeAll(async () => {
  work = await tempDir();
  root = path.join(work, 'root');
  const w = await new TreeWriter(root).init();
  await w.image('app', { seed: 'old', tag: 'latest' });
  await w.image('app', { seed: 'new', tag: 'latest' });
  await w.image('team/web', { seed: 'web-1', tag: 'v1' });
  await w.image('team/web', { seed: 'web-2', tag: 'v1' });
  await w.image('team/web', { seed: 'web-3', tag: 'v2' });
  const emptyPath = path.join(work, 'empty-path');
  await fs.mkdir(emptyPath);
  bare = { PATH: emptyPath, DOCKER_HOST: 'unix:///nonexistent/docker.sock' };
});
afterAll(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

let copies = 0;
async function copyOfTree(): Promise<string> {
  const copy = path.join(work, `copy-${++copies}`);
  await fs.cp(root, copy, { recursive: true, preserveTimestamps: true });
  return copy;
}

const amount = ({ blobs, bytes }: { blobs: number; bytes: number }): string => `${blobs} blob${blobs === 1 ? '' : 's'}, ${formatBytes(bytes)}`;

describe('the default: regsweep sweeps the blobs itself', () => {
  it('needs no registry binary; gc.mode is builtin and it frees what it predicted', async () => {
    const copy = await copyOfTree();
    // The tree was written just now: the grace (1h by default) would spare every unreferenced blob.
    const dry = await runCli(['--path', copy, '--dry-run', '--json', '--grace', '0s'], { env: bare });
    expect(dry.stderr).toBe('');
    const planned = JSON.parse(dry.stdout);
    expectValidReport(planned);
    expect(planned.gc).toMatchObject({ mode: 'builtin', ran: false, skipped: 'dry run' });
    expect(planned.predicted.blobs).toBeGreaterThan(0);

    const run = await runCli(['--path', copy, '--yes', '--json', '--grace', '0s'], { env: bare });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.gc).toMatchObject({ mode: 'builtin', ran: true, command: ['regsweep', '--gc', 'builtin'], exitCode: 0, summary: null });
    expect(report.target.registryVersion).toBeNull();
    expect(report.predicted).toEqual(planned.predicted);
    expect(report.freed).toEqual(report.predicted);
    expect(await blobBytes(copy)).toEqual({ blobs: report.after.blobs, bytes: report.after.bytes });
  });

  it('is --gc builtin: the same tree after, file for file', async () => {
    const [byDefault, named] = [await copyOfTree(), await copyOfTree()];
    const a = await runCli(['--path', byDefault, '--yes', '-q', '--grace', '0s'], { env: bare });
    const b = await runCli(['--path', named, '--yes', '-q', '--grace', '0s', '--gc', 'builtin'], { env: bare });
    expect([a.code, a.stderr, b.code, b.stderr]).toEqual([0, '', 0, '']);
    expect(await snapshot(byDefault)).toEqual(await snapshot(named));
    expect(await snapshot(byDefault)).not.toEqual(await snapshot(root));
  });

  it('the human report says that regsweep swept, with --gc builtin, and times its sweep', async () => {
    const copy = await copyOfTree();
    const dry = await runCli(['--path', copy, '--dry-run', '--grace', '0s'], { env: bare });
    const predicted = JSON.parse((await runCli(['--path', copy, '--dry-run', '--json', '--grace', '0s'], { env: bare })).stdout).predicted;
    expect(dry.stdout.split('\n')).toContain(`regsweep's own sweep (--gc builtin) would then free ${amount(predicted)}.`);
    const run = await runCli(['--path', copy, '--yes', '--grace', '0s'], { env: bare });
    expect(run.code).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines).toContain(`regsweep's own sweep (--gc builtin): predicted ${amount(predicted)}; freed ${amount(predicted)}.`);
    expect(run.stdout).toMatch(/^Maintenance window \d+\.\d s \(regsweep's own sweep \d+\.\d s\); total \d+\.\d s\.$/m);
    expect(run.stdout).not.toMatch(/garbage-collect \(/);
  });
});

describe('--no-gc', () => {
  it('sweeps no blobs: gc.mode none, and the human report says so', async () => {
    const copy = await copyOfTree();
    const blobsBefore = await blobBytes(copy);
    const run = await runCli(['--path', copy, '--yes', '--json', '--no-gc'], { env: bare });
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.gc).toMatchObject({ mode: 'none', ran: false, skipped: '--no-gc' });
    expect(report.plan.manifests.length).toBeGreaterThan(0);
    expect(await blobBytes(copy)).toEqual(blobsBefore);
    const dry = await runCli(['--path', root, '--dry-run', '--no-gc'], { env: bare });
    expect(dry.stdout).toMatch(/^No blobs swept \(--no-gc\); a sweep would free \d+ blobs?, .+\.$/m);
  });
});

describe("--gc registry: the registry's own garbage-collect", () => {
  it('without a registry binary: a dry run says what it would free; a real run is refused, exit 2, one line, nothing changed', async () => {
    const copy = await copyOfTree();
    const dry = await runCli(['--path', copy, '--dry-run', '--json', '--gc', 'registry'], { env: bare });
    expect(dry.code).toBe(0);
    const report = JSON.parse(dry.stdout);
    expectValidReport(report);
    expect(report.gc).toMatchObject({ mode: 'registry', ran: false, skipped: 'dry run' });
    const human = await runCli(['--path', copy, '--dry-run', '--gc', 'registry'], { env: bare });
    expect(human.stdout.split('\n')).toContain(`The registry's garbage-collect (--gc registry) would then free ${amount(report.predicted)}.`);

    const before = await snapshot(copy);
    const run = await runCli(['--path', copy, '--yes', '--gc', 'registry'], { env: bare });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`regsweep: no way to run garbage-collect for path ${copy}: install a registry binary, pass --registry-bin, or leave out --gc registry (regsweep's own sweep needs none)\n`);
    expect(await snapshot(copy)).toEqual(before);
  });

  it.skipIf(!bin)('runs the real garbage-collect: gc.mode registry, its summary, and the same blobs left as the default sweep leaves', async () => {
    const [registry, builtin] = [await copyOfTree(), await copyOfTree()];
    const run = await runCli(['--path', registry, '--yes', '--json', '--gc', 'registry', '--registry-bin', bin as string], { env: bare });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.gc).toMatchObject({ mode: 'registry', ran: true, exitCode: 0, summary: { blobsEligible: report.predicted.blobs } });
    expect(report.gc.command).toContain('garbage-collect');
    expect(report.freed).toEqual(report.predicted);

    const own = await runCli(['--path', builtin, '--yes', '--json', '--grace', '0s'], { env: bare });
    expect(JSON.parse(own.stdout).predicted).toEqual(report.predicted);
    expect(await blobBytes(builtin)).toEqual(await blobBytes(registry));
  });

  it.skipIf(!bin)('the human report names the registry\'s garbage-collect, its exit code and its time', async () => {
    const copy = await copyOfTree();
    const run = await runCli(['--path', copy, '--yes', '--gc', 'registry', '--registry-bin', bin as string], { env: bare });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^The registry's garbage-collect \(--gc registry, exit 0\): predicted \d+ blobs?, .+; freed \d+ blobs?, .+\.$/m);
    expect(run.stdout).toMatch(/^Maintenance window \d+\.\d s \(the registry's garbage-collect \d+\.\d s\); total \d+\.\d s\.$/m);
  });
});
