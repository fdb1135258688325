/**
 * Issue 22, point 3: regsweep frees what it predicts wherever the data lies.
 * The real registry pushes the mixed scenario onto a storage root on the
 * ordinary disk; then `docker/registry/v2/blobs` and the directory of
 * `team/web` (a repository the purge removes a revision from, with
 * `team/web/api` nested in it) move onto a second filesystem, a tmpfs: once
 * as symbolic links in their place, once bind-mounted over their old paths,
 * as admins move data to a bigger disk. On each tree, with the registry's
 * garbage-collect and with regsweep's own sweep:
 *
 * - a dry run plans exactly the revisions the scenario says must go and
 *   predicts what it predicted before the move, and the real run then frees
 *   exactly that (also as measured on the tree), exit 0, no problem;
 * - nothing named `.regsweep*` is left in the tree or on the second
 *   filesystem, and the data is still there (the link still a link, the
 *   mount still mounted, kept blobs and the repository on the tmpfs);
 * - the registry served again pulls every kept tag and digest whole, and
 *   answers 404 for the removed ones. Only with the symbolic links does it
 *   also take a push (into team/web): the registry commits an upload by a
 *   rename from the repository's `_uploads` into blobs/, which fails (EXDEV)
 *   between two mounts, even two bind mounts of one tmpfs, as measured here.
 *
 * And that its removals there are renames on that filesystem, never copies
 * to another: with `--quarantine`, every swept blob's data file and every
 * removed revision link of `team/web` is found in a quarantine with the very
 * inode it had in the tree, on the second filesystem.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type RegistryClient, registryBinary } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { expectServesWhole } from '../support/e2eRegistry.js';
import { RegistryOnRoot, type Scenario, pushMixedScenario } from '../support/scenario.js';
import { bindMount, canMount, isMountPoint, mountTmpfs, namesBelow, unmountAll } from '../support/smallDisk.js';
import { blobBytes, tempDir } from '../support/tmp.js';

const bin = registryBinary();
const mountable = canMount();

const V2 = 'docker/registry/v2';
/** What moves to the other filesystem, relative to the storage root, and its name there. */
const MOVED = [
  { rel: `${V2}/blobs`, there: 'blobs' },
  { rel: `${V2}/repositories/team/web`, there: 'team-web' },
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
  /** What a dry run predicted on the same tree before the move, all of it on one filesystem. */
  predictedInPlace: { blobs: number; bytes: number };
  /** The second filesystem's mount point. */
  other: string;
  scenario: Scenario;
  registry: RegistryOnRoot;
}

/**
 * The scenario pushed onto a root on the ordinary disk, predicted there (a
 * dry run with `mode`), then blobs/ and team/web moved onto a tmpfs, `how`
 * they stay reachable.
 */
async function splitTree(how: How, mode: Mode): Promise<SplitTree> {
  const root = await tempDir();
  roots.push(root);
  const registry = new RegistryOnRoot(() => root, bin);
  registries.push(registry);
  const scenario = await pushMixedScenario(await registry.serve());
  await registry.stop();
  const predictedInPlace = (await dryRun(root, mode, scenario)).predicted;
  const other = mountTmpfs(8192, 2048);
  for (const { rel, there } of MOVED) {
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
  expectOnOtherFilesystem(root, other, how);
  return { root, predictedInPlace, other, scenario, registry };
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

/** blobs/ and team/web are still reached `how` they were, and their data (a blob's, a repository's) is on `other`. */
function expectOnOtherFilesystem(root: string, other: string, how: How): void {
  const dev = fs.statSync(other).dev;
  expect(fs.statSync(root).dev).not.toBe(dev);
  for (const { rel, there } of MOVED) {
    const at = path.join(root, rel);
    if (how === 'symlink') {
      expect(fs.lstatSync(at).isSymbolicLink(), `${rel} is a symbolic link`).toBe(true);
      expect(fs.realpathSync(at)).toBe(path.join(other, there));
    } else {
      expect(isMountPoint(at), `${rel} is a mount point`).toBe(true);
    }
    expect(fs.statSync(path.join(at, rel.endsWith('blobs') ? 'sha256' : '_manifests')).dev).toBe(dev);
  }
  const [data] = blobDataFiles(root);
  expect(data && fs.statSync(data).dev).toBe(dev);
}

/** Every blob's data file below the root. */
function blobDataFiles(root: string): string[] {
  const base = path.join(root, V2, 'blobs/sha256');
  return fs.readdirSync(base).flatMap((prefix) => fs.readdirSync(path.join(base, prefix)).map((hex) => path.join(base, prefix, hex, 'data')));
}

/** What expectServesWhole checks but the push: every kept tag and digest pulls whole, removed ones are 404. */
async function expectPullsWhole(client: RegistryClient, scenario: Scenario): Promise<void> {
  for (const { repository, tag } of scenario.tags) await client.pullWhole(repository, tag);
  for (const { repository, digest } of scenario.kept) await client.pullWhole(repository, digest);
  for (const { repository, digest } of scenario.removed) expect((await client.getManifest(repository, digest)).status, `${repository}@${digest}`).toBe(404);
}


describe.skipIf(!bin || !mountable)('data across filesystems, --path', () => {
  describe.each(['symlink', 'bind'] as const)('blobs/ and team/web on a tmpfs, by %s', (how) => {
    it.each(['builtin', 'registry'] as const)('--gc %s frees exactly what its dry run predicted, leaves no .regsweep* anywhere, and every kept tag pulls whole', async (mode) => {
      const { root, predictedInPlace, other, scenario, registry } = await splitTree(how, mode);
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
      expectOnOtherFilesystem(root, other, how);

      const client = await registry.serve();
      if (how === 'symlink') await expectServesWhole(Number(new URL(client.baseUrl).port), scenario);
      else await expectPullsWhole(client, scenario);
    });

    it('--gc builtin --quarantine: what it removes there keeps its inode, in a quarantine on that filesystem (a rename, never a copy)', async () => {
      const { root, predictedInPlace, other, scenario } = await splitTree(how, 'builtin');
      const dev = fs.statSync(other).dev;
      const inode = (file: string): string => {
        const st = fs.statSync(file);
        return `${st.dev}:${st.ino}`;
      };
      const blobsBefore = new Map(blobDataFiles(root).map((file) => [file, inode(file)]));
      const revisionLink = (digest: string): string => path.join(root, V2, 'repositories/team/web/_manifests/revisions/sha256', digest.slice('sha256:'.length), 'link');
      const removedLinks = scenario.removed.filter((r) => r.repository === 'team/web').map((r) => inode(revisionLink(r.digest)));
      expect(removedLinks.length).toBeGreaterThan(0);

      const run = await runCli(['--path', root, '--yes', '--json', ...gcArgs('builtin'), '--quarantine', '1h']);
      expect({ code: run.code, stderr: run.stderr }, run.stdout.slice(0, 2000)).toEqual({ code: 0, stderr: '' });
      const report = JSON.parse(run.stdout);
      expect({ predicted: report.predicted, freed: report.freed }).toEqual({ predicted: predictedInPlace, freed: predictedInPlace });
      const kept = new Set(blobDataFiles(root));
      const swept = [...blobsBefore].filter(([file]) => !kept.has(file)).map(([, id]) => id);
      expect(swept).toHaveLength(report.predicted.blobs);

      // Every file in every quarantine, in the tree (through the mounts) or on the other filesystem, by its inode.
      const quarantined = new Set<string>();
      const collect = (dir: string): void => {
        for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
          const p = path.join(dir, e.name);
          if (e.isDirectory()) collect(p);
          else if (e.isFile()) quarantined.add(inode(p));
        }
      };
      for (const base of [root, other]) for (const rel of namesBelow(base, '.regsweep-quarantine-')) collect(path.join(base, rel));
      expect([...swept, ...removedLinks].filter((id) => !quarantined.has(id))).toEqual([]);
      expect([...swept, ...removedLinks].every((id) => id.startsWith(`${dev}:`))).toBe(true);
      expectOnOtherFilesystem(root, other, how);
    });
  });
});
