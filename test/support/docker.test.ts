/**
 * Smoke test of the Docker test infrastructure (scripts/docker-test-env.sh,
 * test/support/docker.ts): the stand-in registry:2 serves, takes a push, survives
 * pause/unpause, garbage-collects from a sibling container, answers exec, and
 * hands out files through getArchive. Skipped unless a daemon is designated.
 */
import { createHash, randomBytes } from 'node:crypto';
import type Dockerode from 'dockerode';
import { extract } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  REGISTRY_CONFIG,
  TEST_LABEL,
  docker,
  dockerAvailable,
  execInContainer,
  freePort,
  removeContainers,
  removeVolume,
  runContainerOnce,
  runRegistryContainer,
  streamToBuffer,
  uniqueName,
  waitForHttp,
} from './docker.js';

const TIMEOUT = 120_000;

const digestOf = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Minimal monolithic blob push: POST an upload, PUT its Location with ?digest=. */
async function pushBlob(base: string, repo: string, data: Buffer): Promise<string> {
  const digest = digestOf(data);
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(post.status).toBe(202);
  const location = post.headers.get('location');
  expect(location).toBeTruthy();
  const url = new URL(location ?? '', base); // may be relative
  expect(url.hostname).toBe('127.0.0.1');
  url.searchParams.set('digest', digest);
  const put = await fetch(url, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(data.length) },
    body: new Uint8Array(data),
  });
  expect(put.status).toBe(201);
  return digest;
}

/** Entries of a tar stream, name -> content. */
function untar(buf: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolveFiles, reject) => {
    const files = new Map<string, Buffer>();
    const ex = extract();
    ex.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: unknown) => {
        chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
      });
      stream.on('error', reject);
      stream.on('end', () => {
        files.set(header.name, Buffer.concat(chunks));
        next();
      });
    });
    ex.on('finish', () => resolveFiles(files));
    ex.on('error', reject);
    ex.end(buf);
  });
}

describe.skipIf(!dockerAvailable())('docker test infrastructure', () => {
  const name = uniqueName('regsweep-dt');
  const volume = `${name}-data`;
  const label = `${TEST_LABEL}.run=${name}`;
  let port = 0;
  let base = '';
  let registry: Dockerode.Container;

  beforeAll(async () => {
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    registry = await runRegistryContainer({
      name,
      port,
      volume: { name: volume },
      labels: { [`${TEST_LABEL}.run`]: name },
    });
  }, TIMEOUT);

  afterAll(async () => {
    if (!dockerAvailable()) return;
    await removeContainers({ label });
    await removeVolume(volume);
  }, TIMEOUT);

  it('runs registry:2 with the given volume on the host network', async () => {
    const info = await registry.inspect();
    expect(info.State.Running).toBe(true);
    expect(info.HostConfig.NetworkMode).toBe('host');
    expect(info.Config.Env).toContain(`REGISTRY_HTTP_ADDR=127.0.0.1:${port}`);
    expect(info.Config.Env).toContain('REGISTRY_STORAGE_DELETE_ENABLED=true');
    expect(info.Config.Cmd).toEqual([REGISTRY_CONFIG]);
    expect(info.Mounts.find((m) => m.Destination === '/var/lib/registry')?.Name).toBe(volume);
  }, TIMEOUT);

  it('takes a push of a blob and a manifest', async () => {
    const repo = 'smoke/app';
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = randomBytes(4096);
    const configDigest = await pushBlob(base, repo, config);
    const layerDigest = await pushBlob(base, repo, layer);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: configDigest },
        layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: layerDigest }],
      }),
    );
    const put = await fetch(`${base}/v2/${repo}/manifests/v1`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/vnd.docker.distribution.manifest.v2+json' },
      body: new Uint8Array(manifest),
    });
    expect(put.status).toBe(201);
    expect(put.headers.get('docker-content-digest')).toBe(digestOf(manifest));

    const get = await fetch(`${base}/v2/${repo}/manifests/v1`, {
      headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    expect(get.status).toBe(200);
    expect(Buffer.from(await get.arrayBuffer()).equals(manifest)).toBe(true);
  }, TIMEOUT);

  it('pauses and unpauses', async () => {
    await registry.pause();
    expect((await registry.inspect()).State.Paused).toBe(true);
    await expect(fetch(`${base}/v2/`, { signal: AbortSignal.timeout(1000) })).rejects.toThrow();
    await registry.unpause();
    expect((await registry.inspect()).State.Paused).toBe(false);
    await waitForHttp(`${base}/v2/`, 30_000);
  }, TIMEOUT);

  it('garbage-collects from a sibling container with VolumesFrom', async () => {
    const res = await runContainerOnce({
      cmd: ['garbage-collect', REGISTRY_CONFIG],
      volumesFrom: [name],
      labels: { [`${TEST_LABEL}.run`]: name },
    });
    const output = res.stdout + res.stderr;
    expect(res.exitCode, output).toBe(0);
    expect(output).toContain('blobs marked');
    expect(output).toMatch(/3 blobs marked, 0 blobs and 0 manifests eligible for deletion/);
  }, TIMEOUT);

  it('execs registry --version in the running container', async () => {
    const res = await execInContainer(registry, ['registry', '--version']);
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toMatch(/^registry github\.com\/docker\/distribution \S+/);
  }, TIMEOUT);

  it('reads the config out of the container with getArchive', async () => {
    const tar = await streamToBuffer(await registry.getArchive({ path: REGISTRY_CONFIG }));
    expect(tar.length).toBeGreaterThan(0);
    const files = await untar(tar);
    expect(files.get('config.yml')?.toString('utf8')).toContain('rootdirectory: /var/lib/registry');
  }, TIMEOUT);

  it('lists its containers by label', async () => {
    const list = await docker().listContainers({ all: true, filters: { label: [label] } });
    expect(list.map((c) => c.Names[0])).toEqual([`/${name}`]);
  }, TIMEOUT);
});
