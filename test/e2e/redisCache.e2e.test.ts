/**
 * The Redis blob-descriptor cache with the real registry (2.8.2, and 3.0.0
 * when its binary is there) and a real redis-server, `--path --config` shape:
 * the registry keeps descriptors in Redis, which outlives its restart. An
 * image whose tag moved is purged and swept; pushed again the way `docker
 * push` does (HEAD first, upload what is missing), it must pull whole.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type PushedImage, RegistryClient, blobBytes as seedBytes, digestOf, pushImage, registryBinary, startRegistry } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { freePort } from '../support/docker.js';
import { DockerLikeClient } from '../support/dockerLikeClient.js';
import { REDIS_SERVER, type RunningRedis, describeKeys, entriesOf, startRedisServer } from '../support/redis.js';
import { expectValidReport } from '../support/schema.js';
import { snapshot, tempDir } from '../support/tmp.js';
import { registryV3Bin } from '../support/registryV3.js';

const bin = registryBinary();
const v3 = registryV3Bin;

interface Pushed {
  root: string;
  /** The registry's own config, kept after it stopped. */
  config: string;
  /** The image whose tag moved: purged and swept. */
  purged: PushedImage;
  /** Digests garbage-collect sweeps: the purged image's manifest, config and own layers (not the shared base). */
  swept: string[];
}

const base = seedBytes('redis-base', 700);

/**
 * Serves a fresh root with this redis section, pushes app:v1 twice (so the first image is
 * untagged; both share a base layer) and keep:latest, then stops the registry.
 */
async function pushScenario(dirs: string[], registryBin: string, redis: Record<string, unknown>): Promise<Pushed> {
  const root = await tempDir();
  dirs.push(root);
  const registry = await startRegistry(root, { bin: registryBin, blobdescriptor: 'redis', redis });
  try {
    const client = new RegistryClient(registry.url);
    const purged = await pushImage(client, 'app', { tag: 'v1', seed: 'redis-a', sharedLayers: [base] });
    await pushImage(client, 'app', { tag: 'v1', seed: 'redis-b', sharedLayers: [base] });
    await pushImage(client, 'keep', { tag: 'latest', seed: 'redis-keep', sharedLayers: [base] });
    // Pulls fill the cache the way serving does, globally and per repository.
    await client.pullWhole('app', purged.descriptor.digest);
    const config = path.join(root, '..', `${path.basename(root)}.config.yml`);
    await fs.copyFile(registry.configPath, config);
    dirs.push(config);
    const swept = [purged.descriptor, purged.config, ...purged.layers.slice(1)].map((d) => d.digest);
    return { root, config, purged, swept };
  } finally {
    await registry.stop();
  }
}

/** Serves the root again and pushes the purged image like docker push; returns what it skipped, and whether it pulls whole. */
async function pushAgain(pushed: Pushed, registryBin: string, redis: Record<string, unknown>): Promise<{ skipped: string[]; pull: Promise<unknown> }> {
  const registry = await startRegistry(pushed.root, { bin: registryBin, blobdescriptor: 'redis', redis });
  try {
    const client = new DockerLikeClient(registry.url);
    await pushImage(client, 'app', { tag: 'again', seed: 'redis-a', sharedLayers: [base] });
    const pull = client.pullWhole('app', 'again').then(
      () => 'whole',
      (error: Error) => error,
    );
    await pull;
    await client.pullWhole('app', 'v1');
    await client.pullWhole('keep', 'latest');
    return { skipped: client.skipped, pull };
  } finally {
    await registry.stop();
  }
}

describe.skipIf(!bin || !REDIS_SERVER)('the Redis blob cache, --path --config, real registry and redis-server', () => {
  let redis: RunningRedis;
  let db = 0;
  const dirs: string[] = [];
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  afterEach(async () => {
    for (const d of dirs.splice(0)) await fs.rm(d, { recursive: true, force: true });
  });

  it('without clearing it (regsweep not told of the config), the purged image pushed again is served broken', async () => {
    const section = { addr: `127.0.0.1:${redis.port}`, db: ++db };
    const pushed = await pushScenario(dirs, bin as string, section);
    const run = await runCli(['--path', pushed.root, '--yes', '--json', '--grace', '0s', '--registry-bin', bin as string]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.blobCache).toBeNull();
    expect(report.freed.blobs).toBe(pushed.swept.length);
    const { skipped, pull } = await pushAgain(pushed, bin as string, section);
    // The cache still listed the swept layers: the client skipped them; the registry, told the manifest's
    // bytes were there too, did not store them either. The new tag does not pull.
    expect(skipped).toEqual(expect.arrayContaining(pushed.purged.layers.slice(1).map((l) => l.digest)));
    expect(String(await pull)).toMatch(/^Error: pullWhole app:again: (manifest again: GET returned 404|blob sha256:[0-9a-f]{64}: GET)/);
  }, 120_000);

  it('2.8.2: regsweep clears exactly the removed entries before the registry serves; the purged image pushed again pulls whole', async () => {
    const section = { addr: `127.0.0.1:${redis.port}`, db: ++db };
    const pushed = await pushScenario(dirs, bin as string, section);
    const client = redis.client(db);
    const before = await describeKeys(client);
    const stale = entriesOf(before, pushed.swept);
    expect(stale.length).toBeGreaterThanOrEqual(pushed.swept.length * 2);

    const run = await runCli(['--path', pushed.root, '--config', pushed.config, '--yes', '--json', '--grace', '0s', '--registry-bin', bin as string]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.freed.blobs).toBe(pushed.swept.length);
    expect(report.blobCache).toEqual({ where: `redis://127.0.0.1:${redis.port}/${db}`, cleared: stale.length });
    expect(await describeKeys(client)).toEqual(before.filter((e) => !stale.includes(e)));

    const { skipped, pull } = await pushAgain(pushed, bin as string, section);
    expect(skipped).toEqual([digestOf(base)]); // only the base layer the kept images share
    expect(await pull).toBe('whole');
  }, 120_000);

  it('--redis-url reaches the cache when the config names an address this process cannot reach', async () => {
    const section = { addr: `127.0.0.1:${redis.port}`, db: ++db };
    const pushed = await pushScenario(dirs, bin as string, section);
    // As if the config named a Docker network's service name: here a closed port.
    const text = await fs.readFile(pushed.config, 'utf8');
    await fs.writeFile(pushed.config, text.replace(`127.0.0.1:${redis.port}`, `127.0.0.1:${await freePort()}`));
    const stale = entriesOf(await describeKeys(redis.client(db)), pushed.swept);
    const url = `redis://127.0.0.1:${redis.port}/${db}`;
    const run = await runCli(['--path', pushed.root, '--config', pushed.config, '--redis-url', url, '--yes', '--json', '--grace', '0s', '--registry-bin', bin as string]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).blobCache).toEqual({ where: url, cleared: stale.length });
    expect(entriesOf(await describeKeys(redis.client(db)), pushed.swept)).toEqual([]);
    expect(await (await pushAgain(pushed, bin as string, section)).pull).toBe('whole');
  }, 120_000);

  it.skipIf(!v3)('3.0.0 with redis.addrs: cleared, and the purged image pushed again pulls whole', async () => {
    const section = { addrs: [`127.0.0.1:${redis.port}`], db: ++db };
    const pushed = await pushScenario(dirs, v3 as string, section);
    const client = redis.client(db);
    const before = await describeKeys(client);
    const stale = entriesOf(before, pushed.swept);
    expect(stale.length).toBeGreaterThan(0);
    const run = await runCli(['--path', pushed.root, '--config', pushed.config, '--yes', '--json', '--grace', '0s', '--registry-bin', v3 as string]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.target.registryVersion).toBe('3.0.0');
    expect(report.blobCache).toEqual({ where: `redis://127.0.0.1:${redis.port}/${db}`, cleared: stale.length });
    expect(await describeKeys(client)).toEqual(before.filter((e) => !stale.includes(e)));
    const { skipped, pull } = await pushAgain(pushed, v3 as string, section);
    expect(skipped).toEqual([digestOf(base)]); // only the base layer the kept images share
    expect(await pull).toBe('whole');
  }, 120_000);

  it('an unreachable Redis: a real run is refused with exit 2 and one line naming --redis-url, the tree unchanged; a dry run needs none', async () => {
    const closed = await freePort();
    const pushed = await pushScenario(dirs, bin as string, { addr: `127.0.0.1:${closed}` });
    const before = await snapshot(pushed.root);
    const run = await runCli(['--path', pushed.root, '--config', pushed.config, '--yes', '--registry-bin', bin as string]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^regsweep: cannot reach the registry's Redis blob cache at redis://127\\.0\\.0\\.1:${closed}/0 \\(redis\\.addr in .*\\): connect ECONNREFUSED .*; pass --redis-url redis://`));
    expect(await snapshot(pushed.root)).toEqual(before);

    const dry = await runCli(['--path', pushed.root, '--config', pushed.config, '--dry-run', '--json', '--registry-bin', bin as string]);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, blobCache: null });
    expect(await snapshot(pushed.root)).toEqual(before);
  }, 120_000);
});
