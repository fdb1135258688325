/**
 * `--stale-uploads AGE` against the real registry: uploads it started and
 * nobody finished go when they began longer ago than AGE, inside the window;
 * a newer one stays and can still be finished; a dry run only counts them.
 */
import fs from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryClient, blobBytes, pushImage, registryBinary, startRegistry } from '../../scripts/registryClient.js';
import { Layout } from '../../src/storage/layout.js';
import { runCli } from '../support/cli.js';
import { expectValidReport } from '../support/schema.js';
import { snapshot, tempDir } from '../support/tmp.js';
import { expectUploadsAfter, startUpload } from '../support/uploads.js';

const bin = registryBinary();
let root: string;
beforeEach(async () => {
  root = await tempDir();
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function uploadIds(repo: string): Promise<string[]> {
  return (await fs.readdir(new Layout(root).pathFor({ kind: 'uploads', name: repo }))).sort();
}

describe.skipIf(!bin)('--stale-uploads with the real registry', () => {
  it('removes the uploads started before AGE, counts them and their bytes; a newer one stays and finishes', async () => {
    const old = blobBytes('stale-upload', 1500);
    const fresh = blobBytes('fresh-upload', 700);
    let stale = { location: '', id: '' };
    let recent = { location: '', id: '' };
    const secret = 'stale-uploads-test';
    let registry = await startRegistry(root, { bin, secret });
    try {
      const client = new RegistryClient(registry.url);
      await pushImage(client, 'app', { tag: 'v1', seed: 'uploads-app' });
      stale = await startUpload(registry.url, 'app', old);
      recent = await startUpload(registry.url, 'app', fresh);
    } finally {
      await registry.stop();
    }
    // Two days pass for the first upload: its start as the registry writes it (RFC 3339, seconds).
    const twoDaysAgo = `${new Date(Date.now() - 2 * 86_400_000).toISOString().slice(0, 19)}Z`;
    await fs.writeFile(new Layout(root).pathFor({ kind: 'uploadStartedAt', name: 'app', id: stale.id }), twoDaysAgo);
    expect(await uploadIds('app')).toEqual([stale.id, recent.id].sort());

    const before = await snapshot(root);
    const dry = await runCli(['--path', root, '--dry-run', '--json', '--stale-uploads', '1d']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout).staleUploads).toEqual({ uploads: 1, bytes: old.length });
    expect(await snapshot(root)).toEqual(before);

    const run = await runCli(['--path', root, '--yes', '--json', '--no-gc', '--stale-uploads', '1d']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.staleUploads).toEqual({ uploads: 1, bytes: old.length });
    expect(await uploadIds('app')).toEqual([recent.id]);

    registry = await startRegistry(root, { bin, secret });
    try {
      // The recent upload still holds what was sent (on another port: the same upload URLs there).
      const status = await fetch(Object.assign(new URL(recent.location), { host: new URL(registry.url).host }), { method: 'GET' });
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe(`0-${fresh.length - 1}`);
      await expectUploadsAfter(registry.url, { stale: stale.location, recent: recent.location, fresh }, 'app', 'v1');
    } finally {
      await registry.stop();
    }
  });

  it('without the option, and with a bad AGE: uploads stay; exit 2 and one line', async () => {
    const registry = await startRegistry(root, { bin });
    try {
      await startUpload(registry.url, 'app', blobBytes('kept-upload', 300));
    } finally {
      await registry.stop();
    }
    const ids = await uploadIds('app');
    const plain = await runCli(['--path', root, '--yes', '--json', '--no-gc']);
    expect(JSON.parse(plain.stdout).staleUploads).toBeNull();
    const bad = await runCli(['--path', root, '--yes', '--no-gc', '--stale-uploads', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(await uploadIds('app')).toEqual(ids);
  });
});
