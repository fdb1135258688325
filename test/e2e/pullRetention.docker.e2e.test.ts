/**
 * Retention by last pull (issue 25) end to end: real registry containers
 * (2.8.2 as registry:2, 3.0.0 as a registry:3 stand-in) on a real Docker
 * engine, pushed to and pulled from through the HTTP API, their pulls read
 * by regsweep from the engine's log of the container, into the pull index
 * beside docker/ on the volume.
 *
 * Times: a rule's window is a few seconds, chosen when the run starts so that
 * the pulls made just before are inside it and the pushes made well before
 * (PUSH_AGE) are outside. The container is created before the pushes, so
 * its log, and so the index's coverage, reaches back past the window.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, pushImage } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { TEST_LABEL, docker, dockerAvailable, freePort, removeContainers, removeVolume, runRegistryContainer, uniqueName } from '../support/docker.js';
import { DockerLikeClient } from '../support/dockerLikeClient.js';
import { DockerodeEngine } from '../../src/docker/dockerodeEngine.js';
import { type SwarmRegistry, startSwarmRegistry } from '../support/e2eRegistry.js';
import { expectValidReport } from '../support/schema.js';
import { tempDir } from '../support/tmp.js';
import { registryV3Bin } from '../support/registryV3.js';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const V3_IMAGE = 'registry:3';
/** How long before the pulls the tags are pushed: longer than any window below. */
const PUSH_AGE_MS = 7_000;
/** The builtin sweep takes fresh blobs too (the images were pushed seconds ago): what a wrong removal would break. */
const OWN = ['--grace', '0s'];

/**
 * A registry:3 stand-in, as the official image is laid out: the real 3.0.0
 * binary as /bin/registry, its config at /etc/distribution/config.yml. Built
 * FROM the registry:2 stand-in, which has the entrypoint and busybox.
 */
async function buildRegistry3(): Promise<void> {
  if (await docker().getImage(V3_IMAGE).inspect().then(() => true, () => false)) return;
  const dir = await tempDir();
  try {
    await fs.copyFile(registryV3Bin as string, path.join(dir, 'registry'));
    await fs.writeFile(
      path.join(dir, 'Dockerfile'),
      'FROM registry:2\nCOPY registry /bin/registry\nRUN chmod 755 /bin/registry && mkdir -p /etc/distribution && cp /etc/docker/registry/config.yml /etc/distribution/config.yml\nCMD ["/etc/distribution/config.yml"]\n',
    );
    await run('docker', ['build', '-q', '-t', V3_IMAGE, dir], { env: { ...process.env, DOCKER_BUILDKIT: '0' } });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

interface Registry {
  name: string;
  port: number;
  url: string;
  client: RegistryClient;
}

async function startRegistry(image: string, volumes: string[], options: { logConfig?: { Type: string; Config: Record<string, string> }; formatter?: 'text' | 'json' } = {}): Promise<Registry> {
  const name = uniqueName('reg-pulls');
  const volume = uniqueName('vol-pulls');
  volumes.push(volume);
  const port = await freePort();
  const env = options.formatter ? [`REGISTRY_LOG_FORMATTER=${options.formatter}`] : [];
  await runRegistryContainer({ name, port, image, env, volume: { name: volume }, ...(options.logConfig ? { logConfig: options.logConfig } : {}) });
  const url = `http://127.0.0.1:${port}`;
  return { name, port, url, client: new RegistryClient(url) };
}

/** A pull as a client makes one: GET (or HEAD) of the manifest, answered 200. */
async function pull(r: Registry, repository: string, reference: string, method: 'GET' | 'HEAD' = 'GET'): Promise<void> {
  const res = await fetch(`${r.url}/v2/${repository}/manifests/${reference}`, {
    method,
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
  });
  await res.arrayBuffer();
  expect(res.status, `${method} ${repository}:${reference}`).toBe(200);
}

/** A window that holds the pulls made at `pulledAt` when a run starts now, and is shorter than the pushes' age. */
function windowFor(pulledAt: number, pushedAt: number): string {
  const seconds = Math.ceil((Date.now() - pulledAt) / 1000) + 3;
  expect(Date.now() - pushedAt, 'the pushes are older than the window').toBeGreaterThan(seconds * 1000 + 1500);
  return `${seconds}s`;
}

interface JsonReport {
  target: { registryVersion: string };
  plan: { tags: Array<{ repository: string; tag: string; reason: string; detail: string; lastPulled?: string | null }> };
  inUse: Array<{ repository: string; digest: string; users: string[] }>;
  pulls: {
    index: { where: string; state: string; problem?: string };
    coverage: { from: string; to: string } | null;
    read: { sources: number; lines: number; pulls: number; junk: number };
    held: string[];
  } | null;
}

async function regsweep(args: string[]): Promise<JsonReport> {
  const result = await runCli([...args, '--json']);
  expect(result.stderr, result.stdout).toBe('');
  expect(result.code).toBe(0);
  const report = JSON.parse(result.stdout) as JsonReport;
  expectValidReport(report);
  return report;
}

const removedTags = (report: JsonReport): string[] => report.plan.tags.map((t) => `${t.repository}:${t.tag}`).sort();

async function expectPullsWhole(r: Registry, refs: Array<[string, string]>): Promise<void> {
  const client = new DockerLikeClient(r.url);
  for (const [repository, reference] of refs) await client.pullWhole(repository, reference);
}

async function expectGone(r: Registry, refs: Array<[string, string]>): Promise<void> {
  for (const [repository, reference] of refs) expect((await r.client.getManifest(repository, reference)).status, `${repository}:${reference}`).toBe(404);
}

/** Each registry version with each of its log formatters (logrus text and JSON; the access line is the same in both). */
const VERSIONS = [
  { label: '2.8.2 (registry:2), text log', image: 'registry:2', version: '2.8.2', formatter: 'text' as const },
  { label: '2.8.2 (registry:2), JSON log', image: 'registry:2', version: '2.8.2', formatter: 'json' as const },
  { label: '3.0.0 (registry:3), text log', image: V3_IMAGE, version: '3.0.0', formatter: 'text' as const },
  { label: '3.0.0 (registry:3), JSON log', image: V3_IMAGE, version: '3.0.0', formatter: 'json' as const },
];

describe.skipIf(!dockerAvailable() || process.getuid?.() !== 0)('retention by last pull, read from the registry container’s log (real engine)', () => {
  const volumes: string[] = [];
  let haveV3 = false;
  beforeAll(async () => {
    haveV3 = registryV3Bin !== undefined;
    if (haveV3) await buildRegistry3();
  }, 180_000);
  afterEach(async () => {
    await removeContainers({ label: TEST_LABEL });
    for (const v of volumes.splice(0)) await removeVolume(v);
  });

  for (const v of VERSIONS) {
    it(`${v.label}: --unpulled-for removes exactly the tags nobody pulled, keeps those pulled by tag (GET and HEAD) or by their digest, keeps a pulled digest no tag names any more as in use, and every kept tag pulls whole`, async (ctx) => {
      if (v.image === V3_IMAGE && !haveV3) ctx.skip();
      const r = await startRegistry(v.image, volumes, { formatter: v.formatter });
      const logged = ((await docker().getContainer(r.name).logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer).toString('utf8');
      expect(logged, 'the registry logs in the formatter asked for').toMatch(v.formatter === 'json' ? /\{"[^\n]*"level":"info"/ : /time="[^"]+" level=info/);
      const pushedAt = Date.now();
      await pushImage(r.client, 'team/web', { tag: 'get', seed: 'web-get' });
      await pushImage(r.client, 'team/web', { tag: 'head', seed: 'web-head' });
      const byDigest = await pushImage(r.client, 'team/web', { tag: 'by-digest', seed: 'web-digest' });
      await pushImage(r.client, 'team/web', { tag: 'idle', seed: 'web-idle' });
      const moved = await pushImage(r.client, 'team/api', { tag: 'moved', seed: 'api-old' });
      await pushImage(r.client, 'team/api', { tag: 'stale', seed: 'api-stale' });
      await pushImage(r.client, 'team/api', { tag: 'pulled', seed: 'api-pulled' });
      await sleep(PUSH_AGE_MS);

      const pulledAt = Date.now();
      await pull(r, 'team/web', 'get');
      await pull(r, 'team/web', 'head', 'HEAD');
      await pull(r, 'team/web', byDigest.descriptor.digest);
      await pull(r, 'team/api', 'pulled');
      // Pulled by digest only (as Kubernetes pulls), then its tag moves on: that digest is untagged now.
      await pull(r, 'team/api', moved.descriptor.digest);
      const movedOn = await pushImage(r.client, 'team/api', { tag: 'moved', seed: 'api-new' });
      // Not pulls: a manifest that is not there, the catalog.
      expect((await r.client.getManifest('team/web', 'missing')).status).toBe(404);
      await r.client.catalog();

      const report = await regsweep([r.name, '--unpulled-for', windowFor(pulledAt, pushedAt), '--yes', ...OWN]);
      expect(report.target.registryVersion).toBe(v.version);
      expect(removedTags(report)).toEqual(['team/api:stale', 'team/web:idle']);
      for (const t of report.plan.tags) {
        expect(t).toMatchObject({ reason: 'policy', lastPulled: null });
        expect(t.detail).toMatch(/not pulled for \d+s \(never pulled, pushed \d{4}-/);
      }
      const held = report.inUse.find((u) => u.digest === moved.descriptor.digest);
      expect(held).toMatchObject({ repository: 'team/api' });
      expect(held?.users.join(' ')).toMatch(/pulled \d{4}-\d{2}-\d{2}T/);
      expect(report.pulls).toMatchObject({ index: { state: 'created' }, held: [] });
      expect(report.pulls?.read.sources).toBe(1);
      expect(report.pulls?.read.pulls).toBeGreaterThanOrEqual(5);
      expect(Date.parse(report.pulls?.coverage?.from as string)).toBeLessThanOrEqual(pushedAt);

      await expectPullsWhole(r, [
        ['team/web', 'get'],
        ['team/web', 'head'],
        ['team/web', 'by-digest'],
        ['team/api', 'pulled'],
        ['team/api', 'moved'],
        ['team/api', movedOn.descriptor.digest],
        ['team/api', moved.descriptor.digest],
      ]);
      await expectGone(r, [
        ['team/web', 'idle'],
        ['team/api', 'stale'],
      ]);
    }, 180_000);
  }

  it('log rotation (json-file, max-size 16k, max-file 2): the pulls a first dry run read stay in the index after the log rotated them away, a second run keeps those tags, and --unpulled-for 1h, longer than the coverage, selects nothing and says why', async () => {
    const r = await startRegistry('registry:2', volumes, { logConfig: { Type: 'json-file', Config: { 'max-size': '16k', 'max-file': '2' } } });
    const container = docker().getContainer(r.name);
    const pushedAt = Date.now();
    await pushImage(r.client, 'team/web', { tag: 'pulled', seed: 'rot-pulled' });
    await pushImage(r.client, 'team/web', { tag: 'idle', seed: 'rot-idle' });
    const pinned = await pushImage(r.client, 'team/api', { tag: 'pinned', seed: 'rot-pinned' });
    await sleep(PUSH_AGE_MS);
    const pulledAt = Date.now();
    await pull(r, 'team/web', 'pulled');
    await pull(r, 'team/api', pinned.descriptor.digest);

    /** The registry's log as the engine gives it back now. */
    const logText = async (): Promise<string> => {
      const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
      return raw.toString('utf8');
    };
    const pullsInLog = async (): Promise<boolean> => (await logText()).includes('/v2/team/web/manifests/pulled');
    /** Requests that are no pull, each logged (a `response completed` and an access line): filler that rotates the log. */
    const filler = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) await (await fetch(`${r.url}/v2/`)).arrayBuffer();
    };
    // The json-file driver rotates when its current file is full: its size drops. One rotation after the
    // pulls puts the lines that follow (the first run's last line among them) in a later file than the pulls.
    const logPath = (await container.inspect()).LogPath;
    // Mid-rotation the file is renamed away before its successor exists (ENOENT): that too is a rotation.
    const currentSize = async (): Promise<number> => (await fs.stat(logPath).catch(() => undefined))?.size ?? 0;
    for (let size = await currentSize(), i = 0; i < 200; i++) {
      await filler(1);
      const now = await currentSize();
      if (now < size) break;
      size = now;
    }
    expect(await pullsInLog(), 'the pulls are still in the log at the first run').toBe(true);

    const first = await regsweep([r.name, '--dry-run']);
    expect(first.pulls).toMatchObject({ index: { state: 'created' }, held: [] });
    expect(first.pulls?.read.pulls).toBeGreaterThanOrEqual(2);

    // Rotate until the engine has no line of the pulls left; the first run's last line is later, so it stays.
    for (let i = 0; (await pullsInLog()) && i < 100; i++) await filler(5);
    expect(await pullsInLog(), 'the log rotated the pulls away').toBe(false);

    const longRule = await regsweep([r.name, '--dry-run', '--unpulled-for', '1h']);
    expect(longRule.plan.tags).toEqual([]);
    expect(longRule.pulls?.held).toHaveLength(1);
    expect(longRule.pulls?.held[0]).toMatch(/--unpulled-for 1h selects nothing: .*coverage/);
    // The index went on from the first run's mark: its coverage did not begin again.
    expect(longRule.pulls?.coverage?.from).toBe(first.pulls?.coverage?.from);
    const human = await runCli([r.name, '--dry-run', '--unpulled-for', '1h']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/Pull rule held: --unpulled-for 1h selects nothing: .*\(coverage [^)]+\)/);

    const second = await regsweep([r.name, '--unpulled-for', windowFor(pulledAt, pushedAt), '--yes', ...OWN]);
    expect(second.pulls?.held).toEqual([]);
    expect(second.pulls?.coverage?.from).toBe(first.pulls?.coverage?.from);
    expect(removedTags(second)).toEqual(['team/web:idle']);
    await expectPullsWhole(r, [
      ['team/web', 'pulled'],
      ['team/api', 'pinned'],
    ]);
    await expectGone(r, [['team/web', 'idle']]);
  }, 240_000);

  describe('a swarm service', () => {
    let swarm: SwarmRegistry | undefined;
    afterEach(async () => {
      await swarm?.stop();
      swarm = undefined;
    });

    it('the pulls a task served after the last run and before an update replaced it are read from its exited container: the index keeps its coverage, the pulled tags stay and only the unpulled go', async () => {
      swarm = await startSwarmRegistry('reg-pulls-svc');
      const url = `http://127.0.0.1:${swarm.port}`;
      const r: Registry = { name: swarm.service, port: swarm.port, url, client: new RegistryClient(url) };
      const pushedAt = Date.now();
      await pushImage(r.client, 'team/web', { tag: 'pulled', seed: 'svc-pulled' });
      await pushImage(r.client, 'team/web', { tag: 'idle', seed: 'svc-idle' });
      // The first run marks where it read the task's log.
      const first = await regsweep([swarm.service, '--dry-run']);
      expect(first.pulls).toMatchObject({ index: { state: 'created' }, read: { sources: 1, pulls: 0 } });
      await sleep(PUSH_AGE_MS);
      const pulledAt = Date.now();
      await pull(r, 'team/web', 'pulled');

      // A forced update: the task that served the pull exits and a new one serves; swarm keeps the old container.
      const engine = new DockerodeEngine();
      const old = ((await engine.serviceContainers(swarm.service)) ?? []).map((c) => c.id);
      expect(old).toHaveLength(1);
      await engine.restartService(swarm.service, old);
      const now = ((await engine.serviceContainers(swarm.service)) ?? []).map((c) => c.id);
      expect(now).not.toContain(old[0]);

      const report = await regsweep([swarm.service, '--unpulled-for', windowFor(pulledAt, pushedAt), '--yes', ...OWN]);
      // The exited task read on from its mark: no gap, so the coverage still begins where the first run's did.
      expect(report.pulls?.read.sources).toBe(2);
      expect(report.pulls?.read.pulls).toBeGreaterThan(0); // the one pull, as the registry logs it (twice on 2.8: its logger and its access line)
      expect(report.pulls?.coverage?.from).toBe(first.pulls?.coverage?.from);
      expect(report.pulls?.held).toEqual([]);
      expect(removedTags(report)).toEqual(['team/web:idle']);
      await expectPullsWhole(r, [['team/web', 'pulled']]);
      await expectGone(r, [['team/web', 'idle']]);
    }, 240_000);
  });
});
