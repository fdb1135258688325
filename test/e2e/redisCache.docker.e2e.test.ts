/**
 * The Redis blob-descriptor cache, container shape: a registry container on
 * the real Docker engine (host network, so a redis-server on 127.0.0.1 is its
 * Redis too) configured by REGISTRY_* env the way compose files do it.
 * `regsweep NAME --yes` must clear what it removed before the registry serves
 * again, and refuse, before pausing anything, when it cannot reach Redis.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type PushedImage, RegistryClient, blobBytes as seedBytes, digestOf, pushImage } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { TEST_LABEL, docker, dockerAvailable, freePort, removeContainers, removeVolume, runRegistryContainer, uniqueName, waitForHttp } from '../support/docker.js';
import { DockerLikeClient } from '../support/dockerLikeClient.js';
import { STATE_CHANGES, containerEvents, containerState } from '../support/e2eRegistry.js';
import { REDIS_SERVER, type RunningRedis, describeKeys, entriesOf, startRedisServer } from '../support/redis.js';
import { expectValidReport } from '../support/schema.js';
import { snapshot } from '../support/tmp.js';

const base = seedBytes('redis-container-base', 600);

interface Deployed {
  name: string;
  port: number;
  root: string;
  purged: PushedImage;
  swept: string[];
}

/** A registry:2 container whose blob cache is the Redis at `addr` (env only), app:v1 pushed twice and keep:latest. */
async function deploy(volumes: string[], addr: string, db: number): Promise<Deployed> {
  const name = uniqueName('reg-redis');
  const volume = uniqueName('vol');
  volumes.push(volume);
  const port = await freePort();
  const env = ['REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=redis', `REGISTRY_REDIS_ADDR=${addr}`, `REGISTRY_REDIS_DB=${db}`];
  await runRegistryContainer({ name, port, volume: { name: volume }, env });
  const client = new RegistryClient(`http://127.0.0.1:${port}`);
  const purged = await pushImage(client, 'app', { tag: 'v1', seed: 'rc-a', sharedLayers: [base] });
  await pushImage(client, 'app', { tag: 'v1', seed: 'rc-b', sharedLayers: [base] });
  await pushImage(client, 'keep', { tag: 'latest', seed: 'rc-keep', sharedLayers: [base] });
  await client.pullWhole('app', purged.descriptor.digest);
  const root = ((await docker().getVolume(volume).inspect()) as { Mountpoint: string }).Mountpoint;
  const swept = [purged.descriptor, purged.config, ...purged.layers.slice(1)].map((d) => d.digest);
  return { name, port, root, purged, swept };
}

describe.skipIf(!dockerAvailable() || !REDIS_SERVER)('the Redis blob cache of a registry container', () => {
  let redis: RunningRedis;
  const volumes: string[] = [];
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  afterEach(async () => {
    await removeContainers({ label: TEST_LABEL });
    for (const v of volumes.splice(0)) await removeVolume(v);
  });

  it('regsweep NAME --yes clears the removed entries before the registry serves; the purged image pushed again pulls whole', async () => {
    const db = 1;
    const deployed = await deploy(volumes, `127.0.0.1:${redis.port}`, db);
    const client = redis.client(db);
    const before = await describeKeys(client);
    const stale = entriesOf(before, deployed.swept);
    expect(stale.length).toBeGreaterThanOrEqual(deployed.swept.length * 2);

    // The default sweep, regsweep's own; the images were pushed just now, hence --grace 0s.
    const run = await runCli([deployed.name, '--yes', '--json', '--grace', '0s']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.target).toMatchObject({ kind: 'container', name: deployed.name });
    expect(report.gc).toMatchObject({ mode: 'builtin', ran: true });
    expect(report.freed.blobs).toBe(deployed.swept.length);
    expect(report.blobCache).toEqual({ where: `redis://127.0.0.1:${redis.port}/${db}`, cleared: stale.length });
    expect(await describeKeys(client)).toEqual(before.filter((e) => !stale.includes(e)));

    await waitForHttp(`http://127.0.0.1:${deployed.port}/v2/`, 30_000);
    const again = new DockerLikeClient(`http://127.0.0.1:${deployed.port}`);
    await pushImage(again, 'app', { tag: 'again', seed: 'rc-a', sharedLayers: [base] });
    expect(again.skipped).toEqual([digestOf(base)]); // only the base layer the kept images share
    await again.pullWhole('app', 'again');
    await again.pullWhole('app', 'v1');
    await again.pullWhole('keep', 'latest');
  }, 180_000);

  it('an unreachable Redis: exit 2, one line naming --redis-url, the registry never paused, the tree unchanged', async () => {
    const closed = await freePort();
    const deployed = await deploy(volumes, `127.0.0.1:${closed}`, 0);
    const tree = await snapshot(deployed.root);
    const state = await containerState(deployed.name);
    const since = Date.now();

    const run = await runCli([deployed.name, '--yes']);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^regsweep: cannot reach the registry's Redis blob cache at redis://127\\.0\\.0\\.1:${closed}/0 \\(REGISTRY_REDIS_ADDR\\): connect ECONNREFUSED .*; pass --redis-url redis://`),
    );
    const events = await containerEvents(deployed.name, since, Date.now());
    expect(events.filter((e) => STATE_CHANGES.includes(e.action))).toEqual([]);
    expect(await containerState(deployed.name)).toEqual(state);
    expect(await snapshot(deployed.root)).toEqual(tree);
  }, 180_000);
});
