/**
 * `--quarantine` and `--restore` against the real registry: a builtin run
 * removes a tag and sweeps its blobs into a quarantine, the registry no longer
 * serves it; `--restore` of the quarantine brings the tree back byte for byte,
 * and the registry serves the tag again, every blob pulled and hashed.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushImage, registryBinary } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { RegistryOnRoot, type Scenario, pushMixedScenario } from '../support/scenario.js';
import { expectValidReport } from '../support/schema.js';
import { blobBytes, snapshot, tempDir } from '../support/tmp.js';

const bin = registryBinary();

describe.skipIf(!bin)('--quarantine, then --restore, with the real registry', () => {
  let root: string;
  let scenario: Scenario;
  let removed: { digest: string; blobs: string[] };

  const registry = new RegistryOnRoot(() => root, bin);
  const serve = () => registry.serve();
  const stop = () => registry.stop();

  beforeAll(async () => {
    root = await tempDir();
    const client = await serve();
    scenario = await pushMixedScenario(client);
    // A tag of its own, with layers no other image shares: removing it sweeps its blobs.
    const image = await pushImage(client, 'team/web', { tag: 'old', seed: 'web-old', layers: 3 });
    removed = { digest: image.descriptor.digest, blobs: [image.config.digest, ...image.layers.map((l) => l.digest)] };
    await stop();
  }, 120_000);
  afterAll(async () => {
    await stop();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('removes team/web:old into a quarantine, and --restore makes the registry serve it whole again', async () => {
    const docker = path.join(root, 'docker');
    const before = await snapshot(docker);
    const measuredBefore = await blobBytes(root);

    const run = await runCli(['--path', root, '--yes', '--json', '--gc', 'builtin', '--grace', '0s', '--quarantine', '24h', '-x', 'team/web:old']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.gc).toMatchObject({ ran: true, exitCode: 0, command: ['regsweep', '--gc', 'builtin'] });
    expect(report.plan.tags).toEqual([expect.objectContaining({ repository: 'team/web', tag: 'old', reason: 'named' })]);
    expect(report.freed).toEqual(report.predicted);
    const measuredAfter = await blobBytes(root);
    expect({ blobs: measuredBefore.blobs - measuredAfter.blobs, bytes: measuredBefore.bytes - measuredAfter.bytes }).toEqual(report.predicted);
    expect(report.quarantine.path).toMatch(new RegExp(`^${root}/\\.regsweep-quarantine-\\d+-\\d+$`));
    expect(Date.parse(report.quarantine.until)).toBeGreaterThan(Date.now() + 23 * 3_600_000);
    for (const digest of [removed.digest, ...removed.blobs]) {
      await expect(fs.stat(path.join(docker, 'registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7)))).rejects.toThrow();
    }

    // The registry no longer serves the tag, its manifest or its blobs.
    let client = await serve();
    expect((await client.getManifest('team/web', 'old')).status).toBe(404);
    expect((await client.getManifest('team/web', removed.digest)).status).toBe(404);
    for (const { repository, tag } of scenario.tags) await client.pullWhole(repository, tag);
    await stop();

    const restore = await runCli(['--path', root, '--restore', report.quarantine.path]);
    expect(restore.stderr).toBe('');
    expect(restore.code).toBe(0);
    expect(restore.stdout).toMatch(/directories from the quarantine/);
    expect(await snapshot(docker)).toEqual(before);

    client = await serve();
    await client.pullWhole('team/web', 'old');
    await client.pullWhole('team/web', removed.digest);
    for (const { repository, tag } of scenario.tags) await client.pullWhole(repository, tag);
    for (const { repository, digest } of [...scenario.kept, ...scenario.removed]) await client.pullWhole(repository, digest);
    await stop();
  }, 120_000);
});
