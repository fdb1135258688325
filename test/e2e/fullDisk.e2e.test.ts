/**
 * Issue 22, point 1, with `--path`: regsweep works on a full disk. The
 * storage root sits inside a small tmpfs; the real registry pushes the mixed
 * scenario into it and is stopped; files beside the root (never inside it)
 * then take the last byte, the last inode, or both, and a probe proves that
 * not even one more file with one byte fits in the root. On that disk:
 *
 * - a real run, with the registry's own garbage-collect (2.8.2, and 3.0.0
 *   where present) and with its own sweep, exits 0, frees exactly what it
 *   predicted (measured on the tree too), reports no problem, leaves the root
 *   holding only `docker/` (no lock, temp file, trash or spare directory) and
 *   the fillers whole, and the registry served again pulls every kept tag and
 *   digest whole, answers 404 for the removed ones and takes a push;
 * - a real run that cannot work there (its `--journal` is a file on the full
 *   disk) is refused in one line (exit 2) and leaves the tree as it was, the
 *   root holding only `docker/`;
 * - a real run that fails after its purge (the registry's garbage-collect
 *   exits 1) says so (exit 1, a problem), leaves the root holding only
 *   `docker/`, and every kept tag still pulls whole.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { registryBinary } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { expectServesWhole } from '../support/e2eRegistry.js';
import { RegistryOnRoot, type Scenario, pushMixedScenario } from '../support/scenario.js';
import { FILLS, type Fill, type Fillers, canMount, expectSweptExactly, fillDisk, fillersIntact, mountTmpfs, unmountAll } from '../support/smallDisk.js';
import { blobBytes, snapshot, tempDir } from '../support/tmp.js';
import { registryV3Bin } from '../support/registryV3.js';

const v2 = registryBinary();
const v3 = registryV3Bin;
const mountable = canMount();

/** The disk: room for the scenario (about 0.8 MiB and 630 inodes on tmpfs, measured) and a few MiB more for the fillers to take. */
const SIZE_KIB = 4096;
const INODES = 1024;

interface FullDisk {
  disk: string;
  root: string;
  scenario: Scenario;
  fillers: Fillers;
  registry: RegistryOnRoot;
}

const registries: RegistryOnRoot[] = [];
/** Directories on the ordinary disk a test made. */
const scratch: string[] = [];
afterEach(async () => {
  for (const r of registries.splice(0)) await r.stop();
  unmountAll();
  for (const dir of scratch.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A small tmpfs holding a storage root the real registry (`bin`) pushed the mixed scenario into, then filled by `fill` beside the root. */
async function fullDisk(fill: Fill, bin: string): Promise<FullDisk> {
  const disk = mountTmpfs(SIZE_KIB, INODES);
  const root = `${disk}/root`;
  fs.mkdirSync(root);
  const registry = new RegistryOnRoot(() => root, bin);
  registries.push(registry);
  const scenario = await pushMixedScenario(await registry.serve());
  await registry.stop();
  const fillers = fillDisk(disk, fill, root);
  return { disk, root, scenario, fillers, registry };
}

const gcArgs = (mode: 'registry' | 'builtin', bin: string): string[] =>
  mode === 'registry' ? ['--gc', 'registry', '--registry-bin', bin] : ['--gc', 'builtin', '--grace', '0s'];

/** The run on a full disk: freed what it predicted, nothing beside docker/, fillers whole, then every tag pulls whole. */
async function expectSweptOnFullDisk(mode: 'registry' | 'builtin', fill: Fill, bin: string): Promise<void> {
  const { disk, root, scenario, fillers, registry } = await fullDisk(fill, bin);
  const before = await blobBytes(root);
  await expectSweptExactly(await runCli(['--path', root, '--yes', '--json', ...gcArgs(mode, bin)]), { root, disk, store: 'root', fillers, before });

  for (const p of fillers.paths) fs.rmSync(p, { recursive: true });
  const client = await registry.serve();
  await expectServesWhole(Number(new URL(client.baseUrl).port), scenario);
  await registry.stop();
}

describe.skipIf(!v2 || !mountable)('a full disk, --path, registry 2.8.2', () => {
  describe.each(FILLS)('%s', (_, fill) => {
    it('--gc registry frees exactly what it predicted, leaves only docker/ in the root, and every kept tag pulls whole', async () => {
      await expectSweptOnFullDisk('registry', fill, v2 as string);
    });

    it('--gc builtin frees exactly what it predicted, leaves only docker/ in the root, and every kept tag pulls whole', async () => {
      await expectSweptOnFullDisk('builtin', fill, v2 as string);
    });
  });

  describe.each(FILLS)('%s', (_, fill) => {
    it.each(['registry', 'builtin'] as const)('a run with --gc %s whose journal cannot be written is refused in one line and leaves the tree as it was', async (mode) => {
      const { disk, root, fillers } = await fullDisk(fill, v2 as string);
      const before = await snapshot(root);
      const run = await runCli(['--path', root, '--yes', '--json', '--journal', `${disk}/journal.jsonl`, ...gcArgs(mode, v2 as string)]);
      const outcome = { code: run.code, stderr: run.stderr, root: fs.readdirSync(root) };
      expect(outcome).toEqual({ code: 2, stderr: expect.stringMatching(/^regsweep: [^\n]+\n$/), root: ['docker'] });
      expect(await snapshot(root)).toEqual(before);
      expect(fillersIntact(fillers)).toBe(true);
    });

    it('a run whose garbage-collect fails after the purge says so, exit 1, leaves only docker/ in the root, and every kept tag pulls whole', async () => {
      const { root, scenario, fillers, registry } = await fullDisk(fill, v2 as string);
      const failing = await failingGarbageCollect(v2 as string);
      const run = await runCli(['--path', root, '--yes', '--json', ...gcArgs('registry', failing)]);
      const outcome = { code: run.code, root: fs.readdirSync(root) };
      expect(outcome, `stderr: ${run.stderr}`).toEqual({ code: 1, root: ['docker'] });
      const report = JSON.parse(run.stdout);
      expect(report.gc).toMatchObject({ ran: true, exitCode: 1 });
      expect(report.problems.length).toBeGreaterThan(0);
      expect(fillersIntact(fillers)).toBe(true);
      for (const p of fillers.paths) fs.rmSync(p, { recursive: true });
      const client = await registry.serve();
      await expectServesWhole(Number(new URL(client.baseUrl).port), scenario);
    });
  });
});

/** A registry binary (a script on the ordinary disk) that is `bin` in everything but garbage-collect, which fails. */
async function failingGarbageCollect(bin: string): Promise<string> {
  const dir = await tempDir();
  scratch.push(dir);
  const script = path.join(dir, 'registry');
  fs.writeFileSync(script, `#!/bin/sh\ncase "$1" in\n  garbage-collect) echo "garbage-collect: simulated failure" >&2; exit 1 ;;\nesac\nexec ${bin} "$@"\n`, { mode: 0o755 });
  return script;
}

describe.skipIf(!v3 || !mountable)('a full disk, --path, registry 3.0.0', () => {
  it.each(['registry', 'builtin'] as const)('no byte and no inode free, --gc %s frees exactly what it predicted, leaves only docker/, and every kept tag pulls whole', async (mode) => {
    await expectSweptOnFullDisk(mode, 'both', v3 as string);
  });
});
