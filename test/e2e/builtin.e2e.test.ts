/**
 * `--gc builtin` on a real Docker engine, in the shapes registries are
 * deployed: a container with a named volume, a swarm service, and a volume
 * (its registry running, or stopped). Each run sweeps exactly what it
 * predicted, creates no container at all (every container creation with the
 * helper label is watched through the engine's events), and leaves a
 * registry that serves every kept tag whole and takes a purged image pushed
 * again. Then the grace: the layers of a push whose manifest is not yet
 * pushed survive the run, and the manifest pushed afterwards pulls whole.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Descriptor, MediaTypes, RegistryClient, blobBytes, digestOf } from '../../scripts/registryClient.js';
import { HELPER_LABEL } from '../../src/docker/dockerodeEngine.js';
import { type CliRun, runCli } from '../support/cli.js';
import { TEST_LABEL, docker, dockerAvailable, removeContainers, removeVolume, runContainerOnce, streamToBuffer, waitForHttp } from '../support/docker.js';
import { containerState, deployWithVolume, expectServesWhole, startSwarmRegistry } from '../support/e2eRegistry.js';
import { pushMixedScenario } from '../support/scenario.js';
import { expectValidReport } from '../support/schema.js';

const enabled = dockerAvailable();
const BUILTIN = ['--gc', 'builtin'];

/** Containers created with the helper label between two instants (ms since the epoch), from the engine's events. */
async function helpersCreated(sinceMs: number, untilMs: number): Promise<string[]> {
  const stream = (await docker().getEvents({
    since: Math.floor(sinceMs / 1000),
    until: Math.ceil(untilMs / 1000) + 1,
    filters: { type: ['container'], event: ['create'], label: [HELPER_LABEL] },
  })) as unknown as NodeJS.ReadableStream;
  const text = (await streamToBuffer(stream)).toString('utf8');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => (JSON.parse(line) as { id: string }).id);
}

/** Runs the CLI and returns its run with every helper container created meanwhile. */
async function runWatched(args: string[]): Promise<{ run: CliRun; helpers: string[] }> {
  const started = Date.now();
  const run = await runCli(args);
  return { run, helpers: await helpersCreated(started, Date.now()) };
}

/** What every builtin run must show: its own sweep ran, freed what it predicted (something), in a window, with no container created. */
interface Amount {
  blobs: number;
  bytes: number;
}

/** The fields of the JSON report these tests read further. */
interface BuiltinRunReport {
  pausedMs: number;
  target: { registryVersion: string | null };
  predicted: Amount;
  builtin: { recent: Amount };
}

function expectBuiltinSwept({ run, helpers }: { run: CliRun; helpers: string[] }): BuiltinRunReport {
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const report = JSON.parse(run.stdout);
  expectValidReport(report);
  expect(report.gc).toMatchObject({ ran: true, exitCode: 0, command: ['regsweep', '--gc', 'builtin'], skipped: null });
  expect(report.predicted.blobs).toBeGreaterThan(0);
  expect(report.freed).toEqual(report.predicted);
  expect(report.windowMs).toBeGreaterThan(0);
  expect(report.problems).toEqual([]);
  expect(helpers).toEqual([]);
  return report;
}

describe.skipIf(!enabled)('the helper watch', () => {
  it('sees a helper container that is created and removed again', async () => {
    const started = Date.now();
    const result = await runContainerOnce({ cmd: ['--version'], labels: { [HELPER_LABEL]: 'true' } });
    expect(result.exitCode).toBe(0);
    expect(await helpersCreated(started, Date.now())).toHaveLength(1);
  });
});

describe.skipIf(!enabled)('--gc builtin on a registry container and a volume', () => {
  const volumes: string[] = [];
  afterEach(async () => {
    await removeContainers({ label: TEST_LABEL });
    for (const v of volumes.splice(0)) await removeVolume(v);
  });

  it('a container with a named volume: paused, swept, restarted, no container created, pulls whole', async () => {
    const { name, port, scenario } = await deployWithVolume('reg-builtin', volumes);
    const before = await containerState(name);
    const report = expectBuiltinSwept(await runWatched([name, '--yes', '--json', ...BUILTIN, '--grace', '0s']));
    expect(report.target.registryVersion).toBe('2.8.2');
    expect(report.pausedMs).toBeGreaterThan(0);
    const after = await containerState(name);
    expect(after).toMatchObject({ running: true, paused: false });
    expect(after.startedAt).not.toBe(before.startedAt); // restarted: its blob cache forgot the swept blobs
    await expectServesWhole(port, scenario);
  }, 180_000);

  it('a volume whose registry runs: the registry is paused and restarted', async () => {
    const { name, volume, port, scenario } = await deployWithVolume('reg-builtin-vol', volumes);
    const before = await containerState(name);
    const report = expectBuiltinSwept(await runWatched(['-v', volume, '--yes', '--json', ...BUILTIN, '--grace', '0s']));
    expect(report.pausedMs).toBeGreaterThan(0);
    const after = await containerState(name);
    expect(after).toMatchObject({ running: true, paused: false });
    expect(after.startedAt).not.toBe(before.startedAt);
    await expectServesWhole(port, scenario);
  }, 180_000);

  it('a volume whose registry is stopped: no version probe either, left stopped, serves whole once started', async () => {
    const { name, volume, port, scenario } = await deployWithVolume('reg-builtin-stopped', volumes);
    await docker().getContainer(name).stop();
    const report = expectBuiltinSwept(await runWatched(['-v', volume, '--yes', '--json', ...BUILTIN, '--grace', '0s']));
    expect(report.pausedMs).toBe(0);
    expect(report.target.registryVersion).toBeNull(); // asking a stopped registry would take a container
    expect((await containerState(name)).running).toBe(false);
    await docker().getContainer(name).start();
    await expectServesWhole(port, scenario);
  }, 180_000);
});

describe.skipIf(!enabled)('--gc builtin on a swarm service', () => {
  let service: string;
  let port: number;
  let stop: () => Promise<void>;
  beforeAll(async () => {
    ({ service, port, stop } = await startSwarmRegistry('regsvc-builtin'));
  }, 120_000);
  afterAll(() => stop(), 120_000);

  it('pauses its tasks, sweeps, replaces the tasks, no container created, pulls whole', async () => {
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${port}`));
    const tasks = async () => docker().listContainers({ filters: { label: [`com.docker.swarm.service.name=${service}`] } });
    const tasksBefore = (await tasks()).map((c) => c.Id);
    const watched = await runWatched([service, '--yes', '--json', ...BUILTIN, '--grace', '0s']);
    const report = expectBuiltinSwept(watched);
    expect(report.pausedMs).toBeGreaterThan(0);
    const tasksAfter = await tasks();
    expect(tasksAfter).toHaveLength(1);
    expect(tasksAfter[0]?.State).toBe('running');
    expect(tasksBefore).not.toContain(tasksAfter[0]?.Id); // a fresh task: an empty blob cache
    await expectServesWhole(port, scenario);
  }, 240_000);
});

/** Blob data files below a storage root. */
async function blobDataFiles(root: string): Promise<string[]> {
  const base = path.join(root, 'docker/registry/v2/blobs/sha256');
  const files: string[] = [];
  for (const prefix of await fs.readdir(base)) for (const hex of await fs.readdir(path.join(base, prefix))) files.push(path.join(base, prefix, hex, 'data'));
  return files;
}

/** A push cut before its manifest: config and layers uploaded (each upload completed), the manifest only built. */
async function uploadWithoutManifest(client: RegistryClient, repository: string): Promise<{ manifest: Buffer; blobs: Descriptor[] }> {
  const layers: Descriptor[] = [];
  for (const [i, size] of [2100, 2300, 2500].entries()) {
    layers.push({ ...(await client.pushBlob(repository, blobBytes(`in-flight/layer/${i}`, size))), mediaType: MediaTypes.dockerLayer });
  }
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }));
  const config = { ...(await client.pushBlob(repository, configBytes)), mediaType: MediaTypes.dockerConfig };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.dockerManifest, config, layers }));
  return { manifest, blobs: [config, ...layers] };
}

describe.skipIf(!enabled)('--gc builtin and a push in flight', () => {
  const volumes: string[] = [];
  afterEach(async () => {
    await removeContainers({ label: TEST_LABEL });
    for (const v of volumes.splice(0)) await removeVolume(v);
  });

  it('the layers of a push whose manifest is not yet pushed survive (default grace); the manifest pushed afterwards pulls whole', async () => {
    const { name, port, root, scenario } = await deployWithVolume('reg-builtin-inflight', volumes);
    // What the scenario pushed was pushed hours ago; only the push in flight is recent.
    const hoursAgo = new Date(Date.now() - 3 * 3_600_000);
    for (const file of await blobDataFiles(root)) await fs.utimes(file, hoursAgo, hoursAgo);
    const client = new RegistryClient(`http://127.0.0.1:${port}`);
    const inFlight = await uploadWithoutManifest(client, 'team/web');
    const inFlightBytes = inFlight.blobs.reduce((n, b) => n + b.size, 0);

    // Without the grace, the run would sweep them: nothing references them yet.
    const ungraced = JSON.parse((await runCli([name, '--dry-run', '--json', ...BUILTIN, '--grace', '0s'])).stdout);
    const watched = await runWatched([name, '--yes', '--json', ...BUILTIN]);
    const report = expectBuiltinSwept(watched);
    expect(report.builtin.recent).toEqual({ blobs: inFlight.blobs.length, bytes: inFlightBytes });
    expect(ungraced.predicted).toEqual({ blobs: report.predicted.blobs + inFlight.blobs.length, bytes: report.predicted.bytes + inFlightBytes });

    await waitForHttp(`http://127.0.0.1:${port}/v2/`, 30_000);
    const pushed = await client.pushManifest('team/web', 'next', inFlight.manifest, MediaTypes.dockerManifest);
    expect(pushed.digest).toBe(digestOf(inFlight.manifest));
    await client.pullWhole('team/web', 'next');
    await expectServesWhole(port, scenario);
  }, 180_000);
});
