/**
 * regsweep against registries deployed the ways people deploy them, on a real
 * Docker engine: a named volume, a bind mount with the root set by env, a
 * config at a custom path, a swarm service, a volume whose registry is
 * stopped, and regsweep itself in a container. Then the faults.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HELPER_LABEL } from '../../src/docker/dockerodeEngine.js';
import { BIN, runCli } from '../support/cli.js';
import { TEST_LABEL, docker, dockerAvailable, freePort, removeContainers, removeVolume, runRegistryContainer, uniqueName, waitForHttp } from '../support/docker.js';
import { RegistryClient } from '../../scripts/registryClient.js';
import { type Deployed, buildVariant, containerState, deployWithVolume, expectServesWhole, startSwarmRegistry } from '../support/e2eRegistry.js';
import { pushMixedScenario } from '../support/scenario.js';
import { expectValidReport } from '../support/schema.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const enabled = dockerAvailable();

async function helpersLeft(): Promise<string[]> {
  const list = await docker().listContainers({ all: true, filters: { label: [HELPER_LABEL] } });
  return list.map((c) => c.Id);
}

/**
 * The real runs below use regsweep's own sweep, the default, where it proves the same as the registry's
 * garbage-collect would (with --grace 0s: the images were pushed just now), and --gc registry where the
 * helper container, its command or a slow or failing garbage-collect is what is tested.
 */
const OWN = ['--grace', '0s'];
const REGISTRY_GC = ['--gc', 'registry'];

function expectCollected(report: { gc: { ran: boolean; exitCode: number | null }; freed: unknown; predicted: { blobs: number } }, mode: 'builtin' | 'registry'): void {
  expectValidReport(report);
  expect(report.gc).toMatchObject({ mode, ran: true, exitCode: 0 });
  expect(report.predicted.blobs).toBeGreaterThan(0);
  expect(report.freed).toEqual(report.predicted);
}

describe.skipIf(!enabled)('regsweep TARGET on a real Docker engine', () => {
  const volumes: string[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await removeContainers({ label: TEST_LABEL });
    for (const v of volumes.splice(0)) await removeVolume(v);
    for (const d of dirs.splice(0)) await fs.rm(d, { recursive: true, force: true });
    expect(await helpersLeft()).toEqual([]);
  });

  it('a container with a named volume: paused, purged, collected in a helper, restarted, pulls whole', async () => {
    const { name, volume, port, scenario } = await deployWithVolume('reg-volume', volumes);
    const before = await containerState(name);

    const result = await runCli([name, '--yes', '--json', ...REGISTRY_GC]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.target).toMatchObject({ kind: 'container', name });
    expect(report.target.root).toMatch(new RegExp(`/volumes/${volume}/_data$`));
    expect(report.target.registryVersion).toBe('2.8.2');
    expect(report.gc.command).toEqual(['docker', 'run', '--volumes-from', name, 'registry:2', 'garbage-collect', '/etc/docker/registry/config.yml']);
    expect(report.gc.decision).toMatch(/plain garbage-collect/);
    expectCollected(report, 'registry');
    expect(report.pausedMs).toBeGreaterThan(0);
    const after = await containerState(name);
    expect(after).toMatchObject({ running: true, paused: false });
    expect(after.startedAt).not.toBe(before.startedAt); // restarted, so its blob cache is empty
    await expectServesWhole(port, scenario);
  }, 180_000);

  it('--unpause-only unpauses without a restart', async () => {
    const { name } = await deployWithVolume('reg-unpause', volumes);
    const before = await containerState(name);
    const result = await runCli([name, '--yes', '--unpause-only', ...OWN]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Maintenance window \d+\.\d s \(regsweep's own sweep \d+\.\d s\); registry paused \d+\.\d s, then unpaused \(--unpause-only: its blob cache may still list swept blobs\); total \d+\.\d s\./);
    expect(await containerState(name)).toEqual({ ...before, running: true, paused: false });
  }, 120_000);

  it('a bind mount with the root set by env', async () => {
    const name = uniqueName('reg-bind');
    const host = await tempDir();
    dirs.push(host);
    const port = await freePort();
    await runRegistryContainer({ name, port, bind: { host, container: '/data' }, env: ['REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/data/store'] });
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${port}`));
    const result = await runCli([name, '--yes', '--json', ...OWN]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.target.root).toBe(path.join(host, 'store'));
    expectCollected(report, 'builtin');
    await expectServesWhole(port, scenario);
  }, 180_000);

  it('a config.yml mounted at a custom path, whose root lies below a mount point', async () => {
    const name = uniqueName('reg-config');
    const volume = uniqueName('vol');
    volumes.push(volume);
    const cfg = await tempDir();
    dirs.push(cfg);
    await fs.writeFile(
      path.join(cfg, 'custom.yml'),
      'version: 0.1\nlog:\n  level: warn\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /srv/registry/store\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n',
    );
    const port = await freePort();
    await runRegistryContainer({ name, port, cmd: ['/cfg/custom.yml'], binds: [`${cfg}:/cfg:ro`, `${volume}:/srv/registry`] });
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${port}`));
    const result = await runCli([name, '--yes', '--json', ...REGISTRY_GC]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.target.root).toMatch(new RegExp(`/volumes/${volume}/_data/store$`));
    expect(report.gc.command.at(-1)).toBe('/cfg/custom.yml');
    expectCollected(report, 'registry');
    await expectServesWhole(port, scenario);
  }, 180_000);

  it.each([
    ['--gc registry: collected in a helper from the stopped container', REGISTRY_GC, 'registry', '2.8.2'],
    ['by default: swept by regsweep, no container made, the version unknown', OWN, 'builtin', null],
  ] as const)('a volume whose registry is stopped, %s; left stopped', async (_name, args, mode, version) => {
    const { name, volume, port, scenario } = await deployWithVolume('reg-stopped', volumes);
    await docker().getContainer(name).stop();
    const containersBefore = (await docker().listContainers({ all: true })).map((c) => c.Id).sort();
    const result = await runCli(['-v', volume, '--yes', '--json', ...args]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.target).toMatchObject({ kind: 'volume', name: volume, registryVersion: version });
    expect(report.pausedMs).toBe(0);
    expectCollected(report, mode);
    expect((await containerState(name)).running).toBe(false);
    expect((await docker().listContainers({ all: true })).map((c) => c.Id).sort()).toEqual(containersBefore);
    await docker().getContainer(name).start();
    await expectServesWhole(port, scenario);
  }, 180_000);

  it('a volume no container uses, collected from --registry-image', async () => {
    const { name, volume, port, scenario } = await deployWithVolume('reg-gone', volumes);
    await docker().getContainer(name).remove({ force: true });
    const result = await runCli(['-v', volume, '--yes', '--json', ...REGISTRY_GC, '--registry-image', 'registry:2']);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expectCollected(report, 'registry');
    await runRegistryContainer({ name, port, volume: { name: volume } });
    await expectServesWhole(port, scenario);
  }, 180_000);
});

describe.skipIf(!enabled)('a swarm service', () => {
  let service: string;
  let port: number;
  let stop: () => Promise<void>;
  beforeAll(async () => {
    ({ service, port, stop } = await startSwarmRegistry('regsvc'));
  }, 120_000);
  afterAll(() => stop(), 120_000);

  it('resolves to its task containers, pauses them, and replaces the tasks afterwards', async () => {
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${port}`));
    const tasksBefore = (await docker().listContainers({ filters: { label: [`com.docker.swarm.service.name=${service}`] } })).map((c) => c.Id);
    const result = await runCli([service, '--yes', '--json', ...OWN]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.target).toMatchObject({ kind: 'service', name: service });
    expectCollected(report, 'builtin');
    // On the host's network two tasks cannot bind one port: the old task stops before the new one starts.
    expect(report.broughtBack).toEqual({ how: 'replaced', order: 'stop-first', why: 'its blob descriptor cache is in its memory' });
    const tasksAfter = await docker().listContainers({ filters: { label: [`com.docker.swarm.service.name=${service}`] } });
    expect(tasksAfter.length).toBe(1);
    expect(tasksAfter[0]?.State).toBe('running');
    expect(tasksBefore).not.toContain(tasksAfter[0]?.Id); // a fresh task: an empty blob cache
    await expectServesWhole(port, scenario);
    expect(await helpersLeft()).toEqual([]);
  }, 240_000);

  it('on the s3 driver, beside a registry service with no task here whose storage its spec does not say: a real run is refused before any change or request, exit 2, one line', async () => {
    const name = uniqueName('regsvc-s3');
    const hidden = uniqueName('regsvc-hidden');
    const s3Port = await freePort();
    // An endpoint nobody serves: the refusal must come before any request.
    const env = ['REGISTRY_STORAGE=s3', 'REGISTRY_STORAGE_S3_BUCKET=b', 'REGISTRY_STORAGE_S3_REGION=us-east-1', `REGISTRY_STORAGE_S3_REGIONENDPOINT=http://127.0.0.1:${await freePort()}`, `REGISTRY_HTTP_ADDR=127.0.0.1:${s3Port}`];
    await docker().createService({ Name: name, TaskTemplate: { ContainerSpec: { Image: 'registry:2', Env: env }, Networks: [{ Target: 'host' }] } });
    // Its tasks could only run on a node that does not exist: its config (the image's, or a bind mount there) is out of reach.
    await docker().createService({ Name: hidden, TaskTemplate: { ContainerSpec: { Image: 'registry:2' }, Placement: { Constraints: ['node.labels.regsweep-nowhere==1'] }, Networks: [{ Target: 'host' }] } });
    try {
      await waitForHttp(`http://127.0.0.1:${s3Port}/v2/`, 60_000);
      const tasks = async () => (await docker().listContainers({ filters: { label: [`com.docker.swarm.service.name=${name}`] } })).map((t) => `${t.Id} ${t.State}`);
      const before = { tasks: await tasks(), spec: (await docker().getService(name).inspect()).Spec };
      const result = await runCli([name, '--yes'], { env: { AWS_EC2_METADATA_DISABLED: 'true' } });
      expect(result.code).toBe(2);
      expect(result.stderr.trim()).toMatch(new RegExp(`^regsweep: service ${hidden} \\(registry:2\\) runs no task on this engine and its spec does not say where it stores \\(no config among its swarm configs, no REGISTRY_STORAGE\\): regsweep cannot tell whether it serves s3://b; run regsweep on a node that runs one of its tasks \\(nothing changed\\)$`));
      expect(await tasks()).toEqual(before.tasks);
      expect((await docker().getService(name).inspect()).Spec).toEqual(before.spec);
    } finally {
      await docker().getService(name).remove().catch(() => {});
      await docker().getService(hidden).remove().catch(() => {});
    }
  }, 120_000);
});

describe.skipIf(!enabled)('regsweep itself in a container', () => {
  const image = 'regsweep:test';
  beforeAll(async () => {
    const root = path.resolve(path.dirname(BIN), '..');
    await run('docker', ['build', '-q', '--network', 'host', '--build-arg', 'NODE_IMAGE=regsweep-node:20', '-t', image, root], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      maxBuffer: 16 * 1024 * 1024,
    });
  }, 600_000);
  afterAll(async () => {
    await removeContainers({ label: TEST_LABEL });
  });

  // With --network host or --hostname its hostname is the host's own, or anything: it finds its container by its mounts.
  it.each([{ flags: [] as string[] }, { flags: ['--network', 'host'] }, { flags: ['--hostname', 'something-else'] }])('runs with --volumes-from the registry and the Docker socket ($flags), and purges it', async ({ flags }) => {
    const name = uniqueName('reg-for-image');
    const volume = uniqueName('vol');
    const port = await freePort();
    await runRegistryContainer({ name, port, volume: { name: volume } });
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${port}`));
    const socket = (process.env.DOCKER_HOST ?? '').replace(/^unix:\/\//, '');
    const { stdout } = await run('docker', ['run', '--rm', '--label', `${TEST_LABEL}=1`, ...flags, '-v', `${socket}:/var/run/docker.sock`, '--volumes-from', name, image, name, '--yes', '--json', ...OWN], {
      env: process.env,
    });
    const report = JSON.parse(stdout);
    expect(report.target.root).toBe('/var/lib/registry');
    expectCollected(report, 'builtin');
    expect(await containerState(name)).toMatchObject({ running: true, paused: false });
    await expectServesWhole(port, scenario);
    await removeContainers(name);
    await removeVolume(volume);
  }, 180_000);

  it('says what to mount when the storage is not reachable from its container', async () => {
    const name = uniqueName('reg-unmounted');
    const volume = uniqueName('vol');
    const port = await freePort();
    await runRegistryContainer({ name, port, volume: { name: volume } });
    const socket = (process.env.DOCKER_HOST ?? '').replace(/^unix:\/\//, '');
    const failed = await run('docker', ['run', '--rm', '--label', `${TEST_LABEL}=1`, '-v', `${socket}:/var/run/docker.sock`, image, name, '--yes'], { env: process.env }).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect((failed as { code: number }).code).toBe(2);
    expect((failed as { stderr: string }).stderr).toMatch(new RegExp(`not mounted into this container: run regsweep with --volumes-from ${name}`));
    expect(await containerState(name)).toMatchObject({ running: true, paused: false });
    await removeContainers(name);
    await removeVolume(volume);
  }, 60_000);
});

describe.skipIf(!enabled)('faults: the registry ends running and unpaused, no helper remains', () => {
  beforeAll(async () => {
    await buildVariant('registry:slowgc', 'garbage-collect) sleep 30 ;;');
    await buildVariant('registry:failgc', 'garbage-collect) echo "garbage-collect failing on purpose" >&2; exit 1 ;;');
    await buildVariant('registry:old', '--version) echo "registry github.com/docker/distribution v2.3.1"; exit 0 ;;');
  }, 120_000);
  const volumes: string[] = [];
  afterEach(async () => {
    await removeContainers({ label: TEST_LABEL });
    for (const v of volumes.splice(0)) await removeVolume(v);
    expect(await helpersLeft()).toEqual([]);
  });

  const registry = (image: string): Promise<Deployed> => deployWithVolume('reg-fault', volumes, image);

  it.each(['SIGINT', 'SIGTERM'] as const)('%s during garbage-collect: exit 130, helper removed, registry brought back', async (signal) => {
    const { name, port, scenario } = await registry('registry:slowgc');
    const child = spawn(process.execPath, [BIN, name, '--yes', ...REGISTRY_GC], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const deadline = Date.now() + 60_000;
    while ((await helpersLeft()).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await helpersLeft()).toHaveLength(1);
    expect((await containerState(name)).paused).toBe(true);
    child.kill(signal);
    expect(await exited).toBe(130);
    expect(stderr).toMatch(new RegExp(`interrupted by ${signal}; the registry was brought back`));
    expect(await containerState(name)).toMatchObject({ running: true, paused: false });
    // The purge was applied before GC; GC never swept, so every kept tag still pulls whole.
    await expectServesWhole(port, scenario);
  }, 180_000);

  it('a failing garbage-collect: exit 1, registry restarted', async () => {
    const { name, port, scenario } = await registry('registry:failgc');
    const result = await runCli([name, '--yes', '--json', ...REGISTRY_GC]);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.gc).toMatchObject({ ran: true, exitCode: 1 });
    const messages = report.problems.map((p: { message: string }) => p.message);
    expect(messages).toContainEqual(expect.stringMatching(/garbage-collect exited with 1: garbage-collect failing on purpose/));
    // It freed nothing of what it predicted, and says so.
    expect(messages).toContainEqual(expect.stringMatching(/^freed 0 of \d+ predicted blobs .*\(garbage-collect exited with 1 and left them\)$/));
    expect(await containerState(name)).toMatchObject({ running: true, paused: false });
    await expectServesWhole(port, scenario);
  }, 180_000);

  it('a registry older than 2.4 is refused before anything is paused', async () => {
    const { name } = await registry('registry:old');
    const result = await runCli([name, '--yes']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/registry 2.3.1 is older than 2.4.0/);
    expect(await containerState(name)).toMatchObject({ running: true, paused: false });
  }, 120_000);

  // A real run on an s3 registry: s3.docker.e2e.test.ts, on a radosgw here (AWS's endpoint is not reached from a test).
  it('a real run on a gcs registry is refused before any request: one line, exit 2, container untouched', async () => {
    const name = uniqueName('reg-gcs');
    await docker().createContainer({
      name,
      Image: 'registry:2',
      Env: ['REGISTRY_STORAGE=gcs', 'REGISTRY_STORAGE_GCS_BUCKET=b'],
      Labels: { [TEST_LABEL]: '1' },
      HostConfig: { NetworkMode: 'none' },
    });
    const result = await runCli([name, '--yes']);
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toMatch(/^regsweep: container .* uses the gcs storage driver; regsweep works on filesystem and s3 storage$/);
    expect((await docker().getContainer(name).inspect()).State.Status).toBe('created');
  });

  it('a container that does not exist, and an engine that cannot be reached: exit 2', async () => {
    const missing = await runCli(['no-such-registry', '--yes']);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe('regsweep: no container or service named no-such-registry');
    const unreachable = await runCli(['registry', '--yes'], { env: { DOCKER_HOST: 'unix:///nonexistent/docker.sock' } });
    expect(unreachable.code).toBe(2);
    expect(unreachable.stderr.trim()).toMatch(/^regsweep: cannot reach the Docker engine at unix:\/\/\/nonexistent\/docker.sock/);
  });
});
