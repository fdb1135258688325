/**
 * Storage a real run cannot write (issue 22): a read-only mount of the root,
 * or of `blobs/`, `repositories/` or one repository alone, and a tree this user may not write,
 * are refused before the lock, the scan or anything else: one line on stderr
 * saying what to do, exit 2, the tree unchanged. A dry run and --usage on the
 * same mount work as before. Real mounts (`mount --bind`, then a read-only
 * remount), so this needs root.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { registryBinary } from '../../scripts/registryClient.js';
import { BIN, type CliRun, runCli } from '../support/cli.js';
import { TEST_LABEL, dockerAvailable, freePort, removeContainers, runRegistryContainer, uniqueName } from '../support/docker.js';
import { STATE_CHANGES, containerEvents, containerState, gcHelpersOf } from '../support/e2eRegistry.js';
import { snapshot, tempDir } from '../support/tmp.js';

const isRoot = process.getuid?.() === 0;
const bin = registryBinary();
const V2 = 'docker/registry/v2';

function sh(command: string, args: string[]): void {
  const done = spawnSync(command, args, { encoding: 'utf8' });
  if (done.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${done.stderr}`);
}

/** Mounts `source` read-only at `target` (a bind mount, then a read-only remount of it). */
function mountReadOnly(source: string, target: string): void {
  sh('mount', ['--bind', source, target]);
  sh('mount', ['-o', 'remount,bind,ro', target]);
}

function readOnlyLine(dir: string): string {
  return `regsweep: ${dir} is on a read-only filesystem: a real run must write there; mount it read-write (or the volume without :ro), or use --dry-run\n`;
}

/** A refusal: exit 2, nothing on stdout, exactly `line` on stderr. */
function expectRefused(run: CliRun, line: string): void {
  expect(run.stderr).toBe(line);
  expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(run.stdout).toBe('');
  expect(run.code).toBe(2);
}

const registryArgs = bin ? ['--registry-bin', bin] : [];
const REAL_RUNS: Array<[string, string[]]> = [
  ['--gc registry', ['--yes', '--gc', 'registry', ...registryArgs]],
  ['--gc builtin', ['--yes', '--gc', 'builtin']],
];

describe.skipIf(!isRoot)('storage a real run cannot write', () => {
  let work: string;
  let root: string;
  const mounts: string[] = [];
  beforeEach(async () => {
    work = await tempDir();
    root = path.join(work, 'root');
    const w = await new TreeWriter(root).init();
    await w.image('app', { seed: 'old', tag: 'latest' });
    await w.image('app', { seed: 'new', tag: 'latest' });
    for (const tag of ['v1', 'v2']) await w.image('team/web', { seed: tag, tag });
  });
  afterEach(async () => {
    for (const m of mounts.splice(0).reverse()) sh('umount', [m]);
    await fs.rm(work, { recursive: true, force: true });
  });

  /** `root` mounted read-only at a path of its own, which the runs are given. */
  async function readOnlyRoot(): Promise<string> {
    const ro = path.join(work, 'ro');
    await fs.mkdir(ro);
    mountReadOnly(root, ro);
    mounts.push(ro);
    return ro;
  }

  it.each(REAL_RUNS)('a read-only root: the real run (%s) exits 2 with its line, nothing changed', async (_name, args) => {
    const ro = await readOnlyRoot();
    const before = await snapshot(root);
    expectRefused(await runCli(['--path', ro, ...args]), readOnlyLine(ro));
    expect(await snapshot(root)).toEqual(before);
  });

  it('a read-only root: a dry run and --usage work as before', async () => {
    const ro = await readOnlyRoot();
    const before = await snapshot(root);
    // The default sweep leaves blobs newer than its grace: the tree was written just now.
    const dry = await runCli(['--path', ro, '--dry-run', '--json', '--grace', '0s', ...registryArgs]);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    const report = JSON.parse(dry.stdout);
    expect(report.dryRun).toBe(true);
    expect(report.plan.manifests.map((m: { repository: string }) => m.repository)).toEqual(['app']);
    expect(report.predicted.blobs).toBeGreaterThan(0);
    const usage = await runCli(['--path', ro, '--usage', '--yes']);
    expect(usage.stderr).toBe('');
    expect(usage.code).toBe(0);
    expect(usage.stdout).toMatch(/^Where the disk goes in /);
    expect(await snapshot(root)).toEqual(before);
  });

  it('a read-only root: --restore exits 2 with its own line', async () => {
    const ro = await readOnlyRoot();
    const run = await runCli(['--path', ro, '--restore', path.join(ro, 'journal.jsonl')]);
    expectRefused(run, `regsweep: ${ro} is on a read-only filesystem: --restore must write there; mount it read-write (or the volume without :ro)\n`);
  });

  // The root stays writable: an unchanged tree here also means no lock file and no trash were made.
  for (const dir of ['blobs', 'repositories', 'repositories/team/web']) {
    it.each(REAL_RUNS)(`only ${dir}/ read-only: the real run (%s) is refused the same way, no lock or trash made`, async (_name, args) => {
      const mounted = path.join(root, V2, dir);
      mountReadOnly(mounted, mounted);
      mounts.push(mounted);
      const before = await snapshot(root);
      expectRefused(await runCli(['--path', root, ...args]), readOnlyLine(mounted));
      expect(await snapshot(root)).toEqual(before);
    });
  }

  it('a tree this user may not write: its own line, exit 2, nothing changed; a dry run works', async () => {
    // Readable by everyone, owned by root; the run is made as nobody.
    await fs.chmod(work, 0o755);
    const nobody = { uid: 65534, gid: 65534 };
    const asNobody = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { ...nobody, encoding: 'utf8', input: '' });
    const before = await snapshot(root);
    const real = asNobody(['--path', root, '--yes', '--gc', 'builtin']);
    expectRefused(
      { code: real.status, stdout: real.stdout, stderr: real.stderr },
      `regsweep: ${root} is not writable by this user (uid 65534): a real run must write there; run as the storage's owner or root, or use --dry-run\n`,
    );
    const dry = asNobody(['--path', root, '--dry-run', '--json']);
    expect(dry.stderr).toBe('');
    expect(dry.status).toBe(0);
    expect(JSON.parse(dry.stdout).plan.manifests).toHaveLength(1);
    expect(await snapshot(root)).toEqual(before);
  });

  it('the same tree, writable: the real run goes ahead', async () => {
    const run = await runCli(['--path', root, '--yes', '--gc', 'builtin', '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).plan.manifests).toHaveLength(1);
  });
});

describe.skipIf(!isRoot || !dockerAvailable())('a registry container whose storage is a read-only mount', () => {
  let work: string;
  let ro: string | undefined;
  afterEach(async () => {
    await removeContainers({ label: TEST_LABEL });
    if (ro) sh('umount', [ro]);
    ro = undefined;
    await fs.rm(work, { recursive: true, force: true });
  });

  it('the real run exits 2 with its line before pausing anything: the registry serves on, unrestarted, the tree unchanged', async () => {
    work = await tempDir();
    const root = path.join(work, 'root');
    const w = await new TreeWriter(root).init();
    await w.image('app', { seed: 'old', tag: 'latest' });
    await w.image('app', { seed: 'new', tag: 'latest' });
    ro = path.join(work, 'ro');
    await fs.mkdir(ro);
    mountReadOnly(root, ro);
    const name = uniqueName('reg-ro');
    await runRegistryContainer({ name, port: await freePort(), bind: { host: ro, container: '/var/lib/registry' } });
    const before = { state: await containerState(name), tree: await snapshot(root) };
    const started = Date.now();
    const run = await runCli([name, '--yes']);
    const ended = Date.now();
    expectRefused(run, readOnlyLine(ro));
    expect(await containerState(name)).toEqual(before.state);
    expect((await containerEvents(name, started, ended)).filter((e) => STATE_CHANGES.includes(e.action))).toEqual([]);
    expect(await gcHelpersOf(name)).toEqual([]);
    expect(await snapshot(root)).toEqual(before.tree);
    const dry = await runCli([name, '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout).target.root).toBe(ro);
  }, 120_000);
});
