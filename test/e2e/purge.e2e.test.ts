/**
 * The engine against the real registry: push a mixed scenario over HTTP, run
 * the CLI with the registry stopped, let the registry's own garbage-collect
 * sweep, serve again and pull every kept tag and digest whole.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { BIN, runCli } from '../support/cli.js';
import { RegistryClient, pushImage, registryBinary, startRegistry } from '../../scripts/registryClient.js';
import { RegistryOnRoot, type Scenario, pushMixedScenario } from '../support/scenario.js';
import { blobBytes, snapshot, tempDir } from '../support/tmp.js';

const bin = registryBinary();

describe.skipIf(!bin)('purge with the real registry binary', () => {
  let root: string;
  let scenario: Scenario;

  const registry = new RegistryOnRoot(() => root, bin);
  const serve = () => registry.serve();
  const stop = () => registry.stop();

  beforeAll(async () => {
    root = await tempDir();
    scenario = await pushMixedScenario(await serve());
    await stop();
  }, 120_000);
  afterAll(async () => {
    await stop();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('a dry run plans exactly the unneeded revisions and leaves the tree byte-for-byte unchanged', async () => {
    const before = await snapshot(root);
    const run = await runCli(['--path', root, '--dry-run', '--json', '--gc', 'registry', '--registry-bin', bin as string]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.dryRun).toBe(true);
    const planned = report.plan.manifests.map((m: { repository: string; digest: string }) => `${m.repository}@${m.digest}`).sort();
    expect(planned).toEqual(scenario.removed.map((r) => `${r.repository}@${r.digest}`).sort());
    for (const m of report.plan.manifests) expect(m.reason).toBe('untagged');
    expect(report.problems).toEqual([]);
    expect(report.freed).toBeNull();
    expect(await snapshot(root)).toEqual(before);
  });

  it('purges, collects, frees exactly the predicted bytes, and every kept tag and digest pulls whole', async () => {
    const measuredBefore = await blobBytes(root);
    const journal = `${root}.journal`;
    const run = await runCli(['--path', root, '--yes', '--json', '--gc', 'registry', '--registry-bin', bin as string, '--journal', journal]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.gc.ran).toBe(true);
    expect(report.gc.exitCode).toBe(0);
    expect(report.gc.command).not.toContain('--delete-untagged');
    expect(report.predicted.blobs).toBeGreaterThan(0);
    // Measured independently of regsweep's own rescan.
    const measuredAfter = await blobBytes(root);
    expect({ blobs: measuredBefore.blobs - measuredAfter.blobs, bytes: measuredBefore.bytes - measuredAfter.bytes }).toEqual(report.predicted);
    expect(report.freed).toEqual(report.predicted);
    expect(report.gc.summary.blobsEligible).toBe(report.predicted.blobs);
    expect(report.before.bytes - report.after.bytes).toBe(report.predicted.bytes);
    const journalLines = (await fs.readFile(journal, 'utf8')).trim().split('\n');
    expect(journalLines.length).toBeGreaterThan(scenario.removed.length); // a header, every revision link and index link
    await fs.rm(journal);

    const client = await serve();
    for (const { repository, tag } of scenario.tags) await client.pullWhole(repository, tag);
    for (const { repository, digest } of scenario.kept) await client.pullWhole(repository, digest);
    for (const { repository, digest } of scenario.removed) {
      expect((await client.getManifest(repository, digest)).status, `${repository}@${digest}`).toBe(404);
    }
    expect((await client.tags('multi/app')).sort()).toEqual(['latest']);
    await stop();
  }, 120_000);

  it('a second run plans nothing and predicts nothing', async () => {
    const run = await runCli(['--path', root, '--dry-run', '--json', '--gc', 'registry', '--registry-bin', bin as string]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.plan.manifests).toEqual([]);
    expect(report.plan.indexEntries).toEqual([]);
    expect(report.predicted).toEqual({ blobs: 0, bytes: 0 });
  });

  it('an image pushed again after the purge pulls whole', async () => {
    const client = await serve();
    await pushImage(client, 'team/web', { tag: 'again', seed: 'web-a' });
    await client.pullWhole('team/web', 'again');
    await stop();
  }, 60_000);
});

describe.skipIf(!bin)('problems spare their repository', () => {
  let root: string;
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('a corrupt tag link spares that repository, the others are purged and collected, exit code 1', async () => {
    root = await tempDir();
    const registry = await startRegistry(root, { bin });
    const client = new RegistryClient(registry.url);
    const badOld = await pushImage(client, 'bad', { tag: 'latest', seed: 'bad-old' });
    await pushImage(client, 'bad', { tag: 'latest', seed: 'bad-new' });
    await pushImage(client, 'bad', { tag: 'other', seed: 'bad-other' });
    await pushImage(client, 'good', { tag: 'latest', seed: 'good-old' });
    const goodNew = await pushImage(client, 'good', { tag: 'latest', seed: 'good-new' });
    await registry.stop();
    const link = `${root}/docker/registry/v2/repositories/bad/_manifests/tags/other/current/link`;
    await fs.writeFile(link, 'not a digest');
    const badBefore = await snapshot(`${root}/docker/registry/v2/repositories/bad`);

    const run = await runCli(['--path', root, '--yes', '--json', '--gc', 'registry', '--registry-bin', bin as string]);
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout);
    expect(report.problems).toEqual([expect.objectContaining({ repository: 'bad', message: expect.stringMatching(/current link of tag other holds "not a digest"/) })]);
    expect(report.plan.manifests.map((m: { repository: string }) => m.repository)).toEqual(['good']);
    expect(report.gc.ran).toBe(true);
    expect(report.freed).toEqual(report.predicted);
    expect(await snapshot(`${root}/docker/registry/v2/repositories/bad`)).toEqual(badBefore);

    // Repaired by hand, the spared repository serves everything it had, history included.
    await fs.writeFile(link, await fs.readFile(`${root}/docker/registry/v2/repositories/bad/_manifests/tags/latest/current/link`, 'utf8'));
    const again = await startRegistry(root, { bin });
    const c2 = new RegistryClient(again.url);
    await c2.pullWhole('bad', badOld.descriptor.digest); // spared: still there
    await c2.pullWhole('good', 'latest');
    expect((await c2.getManifest('good', goodNew.descriptor.digest)).status).toBe(200);
    await again.stop();
  }, 120_000);
});

describe.skipIf(!bin)('a tag that moves between the scan and the purge', () => {
  it('stops the run before anything is removed', async () => {
    const root = await tempDir();
    const registry = await startRegistry(root, { bin });
    try {
      const client = new RegistryClient(registry.url);
      const old = await pushImage(client, 'app', { tag: 'latest', seed: 'moving-old' });
      await pushImage(client, 'app', { tag: 'latest', seed: 'moving-new' });
      const { sweep } = await import('../../src/sweep.js');
      const { filesystemRun } = await import('../../src/run/filesystem.js');
      let snap: Record<string, string> = {};
      const run = sweep({
        target: { kind: 'path', name: root, root },
        storage: filesystemRun(root),
        dryRun: false,
        // Called after the plan is made: a client pushes meanwhile, pointing a tag at the planned removal.
        confirm: async () => {
          await client.pushManifest('app', 'rescued', old.manifest, old.descriptor.mediaType);
          snap = await snapshot(root);
          return true;
        },
      });
      await expect(run).rejects.toThrow(/the registry changed since the scan, nothing was removed \(app: tag rescued appeared since the scan\)/);
      expect(await snapshot(root)).toEqual(snap);
      await client.pullWhole('app', 'rescued');
    } finally {
      await registry.stop();
      await fs.rm(root, { recursive: true, force: true });
    }
  }, 60_000);
});

describe.skipIf(!bin)('garbage-collect with a given config, and when it fails', () => {
  let root: string;
  let old: Awaited<ReturnType<typeof pushImage>>;
  beforeAll(async () => {
    root = await tempDir();
    const registry = await startRegistry(root, { bin });
    const client = new RegistryClient(registry.url);
    old = await pushImage(client, 'app', { tag: 'latest', seed: 'cfg-old' });
    await pushImage(client, 'app', { tag: 'latest', seed: 'cfg-new' });
    await registry.stop();
  }, 60_000);
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('a failing garbage-collect is reported with exit code 1, and the journal undoes the purge', async () => {
    const before = await snapshot(root);
    const config = `${root}.bad.yml`;
    // The registry itself refuses this config, so its garbage-collect exits 1 after regsweep has purged.
    await fs.writeFile(config, `version: 0.1\nlog:\n  level: bogus\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n`);
    const journal = `${root}.journal`;
    const run = await runCli(['--path', root, '--yes', '--json', '--gc', 'registry', '--registry-bin', bin as string, '--config', config, '--journal', journal]);
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout);
    expect(report.gc).toMatchObject({ ran: true, exitCode: 1 });
    expect(report.gc.command).toContain(config);
    expect(report.problems.at(-1).message).toMatch(/garbage-collect exited with 1: .*invalid loglevel bogus|garbage-collect exited with 1/);
    expect(report.freed).toEqual({ blobs: 0, bytes: 0 });
    expect(await snapshot(root)).not.toEqual(before);

    const restore = await runCli(['--path', root, '--restore', journal]);
    expect(restore.code).toBe(0);
    expect(restore.stdout).toMatch(/restored 2 links/);
    expect(await snapshot(root)).toEqual(before);
    await fs.rm(journal);
    await fs.rm(config);
  });

  it("runs garbage-collect with the registry's own config", async () => {
    const config = `${root}.yml`;
    await fs.writeFile(config, `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n  delete:\n    enabled: true\n`);
    const run = await runCli(['--path', root, '--yes', '--json', '--gc', 'registry', '--registry-bin', bin as string, '--config', config]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.gc).toMatchObject({ ran: true, exitCode: 0, command: [bin, 'garbage-collect', config] });
    expect(report.freed).toEqual(report.predicted);
    // The replaced image's manifest, config and layers; nothing it shares with the new one.
    expect(report.predicted.blobs).toBe(2 + old.layers.length);
    await fs.rm(config);
  });
});

describe('confirmation on a terminal', () => {
  const hasScript = spawnSync('script', ['--version']).status === 0;
  let root: string;
  beforeAll(async () => {
    root = await tempDir();
    const w = await new TreeWriter(root).init();
    await w.image('app', { seed: 'old', tag: 'latest' });
    await w.image('app', { seed: 'new', tag: 'latest' });
  });
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });
  const onTerminal = async (answer: string) => {
    // script(1) gives the CLI a pseudo-terminal as stdin, as a person at a shell has.
    return spawnSync('script', ['-qec', `${process.execPath} ${BIN} --path ${root} --no-gc`, '/dev/null'], { input: `${answer}\n`, encoding: 'utf8' });
  };
  it.skipIf(!hasScript)('asks, and a "no" changes nothing (exit 2)', async () => {
    const before = await snapshot(root);
    const run = await onTerminal('n');
    expect(run.stdout).toMatch(/Proceed\? \[y\/N\]/);
    expect(run.status).toBe(2);
    expect(await snapshot(root)).toEqual(before);
  });
  it.skipIf(!hasScript)('asks, and a "y" purges', async () => {
    const before = await snapshot(root);
    const run = await onTerminal('y');
    expect(run.stdout).toMatch(/remove 1 manifests/);
    expect(run.status).toBe(0);
    expect(await snapshot(root)).not.toEqual(before);
  });
});
