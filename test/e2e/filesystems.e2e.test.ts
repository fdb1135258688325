/**
 * Issue 22, point 3: regsweep frees what it predicts wherever the data lies.
 * The real registry pushes the mixed scenario onto a storage root; then
 * `docker/registry/v2/blobs` and the directory of `team/web` (a repository
 * the purge removes a revision from, with `team/web/api` nested in it), or
 * all of `repositories/`, move onto a second filesystem, a tmpfs: once as
 * symbolic links in their place, once bind-mounted over their old paths, as
 * admins move data to a bigger disk. On each tree, with the registry's
 * garbage-collect and with regsweep's own sweep:
 *
 * - a dry run plans exactly the revisions the scenario says must go and
 *   predicts what it predicted before the move, and the real run then frees
 *   exactly that (also as measured on the tree), exit 0, no problem;
 * - nothing named `.regsweep*` is left in the tree or on the second
 *   filesystem, and the data is still there (the link still a link, the
 *   mount still mounted, kept blobs and the repository on the tmpfs);
 * - the registry served again pulls every kept tag and digest whole, and
 *   answers 404 for the removed ones. Only where team/web's `_uploads` and
 *   blobs/ are reached through one mount (the symbolic links into one tmpfs)
 *   does it also take a push: the registry commits an upload by a rename
 *   into blobs/, which fails (EXDEV) between two mounts, even two bind mounts
 *   of one tmpfs, as measured here.
 *
 * Never a copy across filesystems: with the storage root's own filesystem
 * full to the last byte and inode, so that nothing could be copied onto it,
 * a run still frees exactly what it predicted. And `--quarantine`, which
 * could keep what it removes on another filesystem only by a copy, is
 * refused in one line with nothing changed.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type RegistryClient, registryBinary } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { expectServesWhole } from '../support/e2eRegistry.js';
import { RegistryOnRoot, type Scenario, pushMixedScenario } from '../support/scenario.js';
import { type Fillers, bindMount, canMount, fillDisk, fillersIntact, isMountPoint, mountTmpfs, namesBelow, unmountAll } from '../support/smallDisk.js';
import { blobBytes, tempDir } from '../support/tmp.js';

const bin = registryBinary();
const mountable = canMount();

const V2 = 'docker/registry/v2';
/** A directory that moves to the other filesystem: where it is in the root, its name there, and a path below it that holds data. */
interface Move {
  rel: string;
  there: string;
  probe: string;
}
const BLOBS: Move = { rel: `${V2}/blobs`, there: 'blobs', probe: 'sha256' };
const TEAM_WEB: Move = { rel: `${V2}/repositories/team/web`, there: 'team-web', probe: '_manifests' };
const REPOSITORIES: Move = { rel: `${V2}/repositories`, there: 'repositories', probe: 'team/web/_manifests' };
/** What moves, by the words a test's name gives it. */
const SPLITS: ReadonlyArray<readonly [string, readonly Move[]]> = [
  ['blobs/ and team/web', [BLOBS, TEAM_WEB]],
  ['repositories/', [REPOSITORIES]],
];
type How = 'symlink' | 'bind';
type Mode = 'registry' | 'builtin';
const gcArgs = (mode: Mode): string[] => (mode === 'registry' ? ['--gc', 'registry', '--registry-bin', bin as string] : ['--gc', 'builtin', '--grace', '0s']);

const registries: RegistryOnRoot[] = [];
const roots: string[] = [];
afterEach(async () => {
  for (const r of registries.splice(0)) await r.stop();
  unmountAll(); // the bind mounts inside the roots first
  for (const root of roots.splice(0)) fs.rmSync(root, { recursive: true, force: true });
});

interface SplitTree {
  root: string;
  how: How;
  moved: readonly Move[];
  /** What a dry run predicted on the same tree before the move, all of it on one filesystem. */
  predictedInPlace: { blobs: number; bytes: number };
  /** The second filesystem's mount point. */
  other: string;
  scenario: Scenario;
  registry: RegistryOnRoot;
  /** With `fullRoot`: the root's own small disk, and what fills it. */
  disk?: string;
  fillers?: Fillers;
}

/**
 * The scenario pushed onto a storage root, predicted there (a dry run with
 * `mode`), then the `moved` directories moved onto a tmpfs, `how` they stay
 * reachable. The root is on the ordinary disk, or with `fullRoot` on a small
 * tmpfs of its own that is then filled to the last byte and inode.
 */
async function splitTree(how: How, moved: readonly Move[], mode: Mode, fullRoot = false): Promise<SplitTree> {
  const disk = fullRoot ? mountTmpfs(4096, 1024) : undefined;
  const root = disk ? path.join(disk, 'root') : await tempDir();
  if (disk) fs.mkdirSync(root);
  else roots.push(root);
  const registry = new RegistryOnRoot(() => root, bin);
  registries.push(registry);
  const scenario = await pushMixedScenario(await registry.serve());
  await registry.stop();
  const predictedInPlace = (await dryRun(root, mode, scenario)).predicted;
  const other = mountTmpfs(8192, 2048);
  for (const { rel, there } of moved) {
    const from = path.join(root, rel);
    const to = path.join(other, there);
    if (how === 'symlink') {
      execFileSync('cp', ['-a', from, to]); // -a: the mtimes the grace and the history read stay
      fs.rmSync(from, { recursive: true });
      fs.symlinkSync(to, from);
    } else {
      fs.mkdirSync(to);
      execFileSync('cp', ['-a', `${from}/.`, to]);
      for (const name of fs.readdirSync(from)) fs.rmSync(path.join(from, name), { recursive: true });
      bindMount(to, from);
    }
  }
  const tree = { root, how, moved, predictedInPlace, other, scenario, registry, disk };
  expectOnOtherFilesystem(tree);
  return { ...tree, fillers: disk ? fillDisk(disk, 'both', root) : undefined };
}

/** A dry run's report, once it exited 0, quietly, planning exactly the revisions the scenario says must go. */
async function dryRun(root: string, mode: Mode, scenario: Scenario): Promise<Record<string, any>> {
  const run = await runCli(['--path', root, '--dry-run', '--json', ...gcArgs(mode)]);
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
  const report = JSON.parse(run.stdout);
  const planned = report.plan.manifests.map((m: { repository: string; digest: string }) => `${m.repository}@${m.digest}`).sort();
  expect(planned).toEqual(scenario.removed.map((r) => `${r.repository}@${r.digest}`).sort());
  expect(report.predicted.blobs).toBeGreaterThan(0);
  return report;
}

/** What moved is still reached `how` it was, and its data (a blob's, a repository's) is on `other`. */
function expectOnOtherFilesystem({ root, how, moved, other }: Pick<SplitTree, 'root' | 'how' | 'moved' | 'other'>): void {
  const dev = fs.statSync(other).dev;
  expect(fs.statSync(root).dev).not.toBe(dev);
  for (const { rel, there, probe } of moved) {
    const at = path.join(root, rel);
    if (how === 'symlink') {
      expect(fs.lstatSync(at).isSymbolicLink(), `${rel} is a symbolic link`).toBe(true);
      expect(fs.realpathSync(at)).toBe(path.join(other, there));
    } else {
      expect(isMountPoint(at), `${rel} is a mount point`).toBe(true);
    }
    expect(fs.statSync(path.join(at, probe)).dev).toBe(dev);
  }
  if (!moved.includes(BLOBS)) return;
  const base = path.join(root, V2, 'blobs/sha256');
  const [prefix] = fs.readdirSync(base);
  const [hex] = fs.readdirSync(path.join(base, prefix as string));
  expect(fs.statSync(path.join(base, prefix as string, hex as string, 'data')).dev).toBe(dev);
}

/** What expectServesWhole checks but the push: every kept tag and digest pulls whole, removed ones are 404. */
async function expectPullsWhole(client: RegistryClient, scenario: Scenario): Promise<void> {
  for (const { repository, tag } of scenario.tags) await client.pullWhole(repository, tag);
  for (const { repository, digest } of scenario.kept) await client.pullWhole(repository, digest);
  for (const { repository, digest } of scenario.removed) expect((await client.getManifest(repository, digest)).status, `${repository}@${digest}`).toBe(404);
}

/** Every entry below `dir`, not following symbolic links (recorded with their target), files by a hash of their bytes. */
function treeState(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (at: string): void => {
    for (const e of fs.readdirSync(at, { withFileTypes: true })) {
      const p = path.join(at, e.name);
      const rel = path.relative(dir, p);
      if (e.isSymbolicLink()) out[rel] = `-> ${fs.readlinkSync(p)}`;
      else if (e.isDirectory()) {
        out[`${rel}/`] = 'dir';
        walk(p);
      } else out[rel] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** The real run on a split tree: exit 0, freed what the tree predicted before the move, nothing named .regsweep* anywhere, the data still on the other filesystem. */
async function expectSweptAcross(tree: SplitTree, mode: Mode): Promise<void> {
  const { root, predictedInPlace, other, scenario } = tree;
  const { predicted } = await dryRun(root, mode, scenario);
  expect(predicted).toEqual(predictedInPlace);
  const before = await blobBytes(root);
  const run = await runCli(['--path', root, '--yes', '--json', ...gcArgs(mode)]);
  expect({ code: run.code, stderr: run.stderr }, run.stdout.slice(0, 2000)).toEqual({ code: 0, stderr: '' });
  const report = JSON.parse(run.stdout);
  expect(report.problems).toEqual([]);
  expect(report.gc).toMatchObject({ ran: true, exitCode: 0 });
  expect({ predicted: report.predicted, freed: report.freed }).toEqual({ predicted, freed: predicted });
  const after = await blobBytes(root);
  expect({ blobs: before.blobs - after.blobs, bytes: before.bytes - after.bytes }).toEqual(predicted);
  expect({ tree: namesBelow(root, '.regsweep'), other: namesBelow(other, '.regsweep') }).toEqual({ tree: [], other: [] });
  expect(fs.readdirSync(root)).toEqual(['docker']);
  expectOnOtherFilesystem(tree);
}

/**
 * The registry serves the tree again: every kept tag whole, removed ones
 * gone, and a push into team/web where the registry can take one (its
 * `_uploads` and blobs/ reached through one mount).
 */
async function expectServedWhole({ registry, scenario, how, moved }: SplitTree): Promise<void> {
  const client = await registry.serve();
  if (how === 'symlink' && moved.includes(BLOBS) && moved.includes(TEAM_WEB)) await expectServesWhole(Number(new URL(client.baseUrl).port), scenario);
  else await expectPullsWhole(client, scenario);
}

describe.skipIf(!bin || !mountable)('data across filesystems, --path', () => {
  describe.each(['symlink', 'bind'] as const)('by %s', (how) => {
    describe.each(SPLITS)('%s on a tmpfs', (_, moved) => {
      it.each(['builtin', 'registry'] as const)('--gc %s frees exactly what it predicted before the move, leaves no .regsweep* anywhere, and every kept tag pulls whole', async (mode) => {
        const tree = await splitTree(how, moved, mode);
        await expectSweptAcross(tree, mode);
        await expectServedWhole(tree);
      });
    });

    it.each(['builtin', 'registry'] as const)('blobs/ and team/web on a tmpfs, the root filesystem full to the last byte and inode: --gc %s still frees exactly that, so nothing was copied onto it', async (mode) => {
      const tree = await splitTree(how, [BLOBS, TEAM_WEB], mode, true);
      await expectSweptAcross(tree, mode);
      const { disk, fillers } = tree as Required<SplitTree>;
      expect(fillersIntact(fillers)).toBe(true);
      expect(fs.readdirSync(disk).sort()).toEqual([...fillers.paths.map((p) => path.basename(p)), 'root'].sort());
      for (const p of fillers.paths) fs.rmSync(p, { recursive: true });
      await expectServedWhole(tree);
    });

    it('blobs/ and team/web on a tmpfs: --quarantine, which could keep what it removes there only by a copy, is refused in one line and changes nothing', async () => {
      const tree = await splitTree(how, [BLOBS, TEAM_WEB], 'builtin');
      const { root, other } = tree;
      const before = { tree: treeState(root), other: treeState(other) };
      const run = await runCli(['--path', root, '--yes', '--json', ...gcArgs('builtin'), '--quarantine', '1h']);
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 2, stderr: expect.stringMatching(/^regsweep: [^\n]+\n$/) });
      expect({ tree: treeState(root), other: treeState(other) }).toEqual(before);
      expectOnOtherFilesystem(tree);
    });
  });
});
