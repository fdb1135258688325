/**
 * `--stale-uploads AGE` against the real registry: uploads it started and
 * nobody finished go when they began longer ago than AGE, inside the window;
 * a newer one stays and can still be finished; a dry run only counts them.
 */
import fs from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryClient, blobBytes, digestOf, pushImage, registryBinary, startRegistry } from '../../scripts/registryClient.js';
import { Layout } from '../../src/storage/layout.js';
import { runCli } from '../support/cli.js';
import { expectValidReport } from '../support/schema.js';
import { snapshot, tempDir } from '../support/tmp.js';

const bin = registryBinary();
let root: string;
beforeEach(async () => {
  root = await tempDir();
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** Starts an upload to `repo` and sends `data` as its first chunk; returns the upload's URL and id. */
async function startUpload(url: string, repo: string, data: Buffer): Promise<{ location: string; id: string }> {
  const start = await fetch(new URL(`/v2/${repo}/blobs/uploads/`, url), { method: 'POST' });
  expect(start.status).toBe(202);
  const location = new URL(start.headers.get('location') as string, url).toString();
  const patch = await fetch(location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(data) });
  expect(patch.status).toBe(202);
  return { location: new URL(patch.headers.get('location') as string, url).toString(), id: patch.headers.get('docker-upload-uuid') as string };
}

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
    // The registry serves again on another port: the same upload URLs there.
    const here = (location: string): URL => Object.assign(new URL(location), { host: new URL(registry.url).host });
    try {
      // The stale upload is unknown to the registry now; the recent one finishes, and app:v1 is whole.
      expect((await fetch(here(stale.location), { method: 'GET' })).status).toBe(404);
      const status = await fetch(here(recent.location), { method: 'GET' });
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe(`0-${fresh.length - 1}`);
      const put = here(recent.location);
      put.search = `${put.search ? `${put.search}&` : '?'}digest=${encodeURIComponent(digestOf(fresh))}`;
      expect((await fetch(put, { method: 'PUT' })).status).toBe(201);
      const client = new RegistryClient(registry.url);
      expect(await client.blobStatus('app', digestOf(fresh), 'HEAD')).toBe(200);
      await client.pullWhole('app', 'v1');
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
