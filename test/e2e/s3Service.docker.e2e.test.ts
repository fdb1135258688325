/**
 * A swarm service of two registry:2 replicas on a radosgw bucket, on the real
 * engine in swarm mode: the replicas on the host's network, each on an
 * address of its own (`{{.Task.Slot}}` in the env, which swarm expands), the
 * config a swarm config, the keys in the env. `regsweep SERVICE --yes` holds
 * the service read-only by a service update for its window: the run is held
 * inside it (a failpoint) while the test asks both replicas to take a push
 * (both refuse) and to serve the kept images (both do); after it, both take
 * pushes again, every kept digest pulls whole, the purged ones are gone, freed
 * equals the prediction, and the service's env is what it was. A run killed
 * (SIGKILL) in its window: its watchdog takes the service out of read-only
 * mode, and the next run finishes the work.
 */
import fs from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { dump } from 'js-yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, pushImage } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { docker, dockerAvailable, freePort, uniqueName, waitForHttp } from '../support/docker.js';
import { expectServesWhole, pollUntil } from '../support/e2eRegistry.js';
import { RADOSGW_MISSING, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY } from '../support/radosgw.js';
import { withRadosgw } from '../support/s3Registry.js';
import { type Scenario, pushMixedScenario } from '../support/scenario.js';
import { expectValidReport } from '../support/schema.js';

const ENV = { AWS_EC2_METADATA_DISABLED: 'true' };
const READ_ONLY = 'REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}';
const CONFIG = '/etc/docker/registry/config.yml';

interface Report {
  predicted: { blobs: number; bytes: number };
  freed: { blobs: number; bytes: number } | null;
  plan: { manifests: Array<{ repository: string; digest: string }> };
  broughtBack: { how: string; order?: string; why: string; readOnly?: string[] } | null;
  recovered: { by: string; services?: string[] } | null;
  pausedMs: number;
  problems: unknown[];
}

/** Whether nothing listens on this loopback port now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A port prefix whose slot 1 and 2 ports (`<prefix>1`, `<prefix>2`) are both free. */
async function slotPorts(): Promise<{ prefix: number; ports: [number, number] }> {
  for (let tries = 0; tries < 50; tries++) {
    const prefix = Math.floor((await freePort()) / 10);
    const ports: [number, number] = [prefix * 10 + 1, prefix * 10 + 2];
    if (ports[1] <= 65535 && (await portFree(ports[0])) && (await portFree(ports[1]))) return { prefix, ports };
  }
  throw new Error('no two free slot ports');
}

/** What a push's first request (starting a blob upload) gets from a replica: 202 where it takes pushes, 405 read-only. */
async function uploadStatus(port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/v2/probe/blobs/uploads/`, { method: 'POST', signal: AbortSignal.timeout(5000) });
  await res.arrayBuffer();
  return res.status;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!dockerAvailable() || RADOSGW_MISSING !== undefined)('a swarm service of two replicas on the s3 driver', () => {
  const held = withRadosgw('regsweep-s3-service-');
  const services: string[] = [];
  const configs: string[] = [];
  beforeAll(async () => {
    await docker().swarmInit({ ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1' });
  }, 60_000);
  afterEach(async () => {
    for (const s of services.splice(0)) await docker().getService(s).remove().catch(() => {});
    // A config in use cannot go: after the service's tasks are gone.
    await sleep(2000);
    for (const c of configs.splice(0)) await docker().getConfig(c).remove().catch(() => {});
  }, 60_000);
  afterAll(async () => {
    await docker().swarmLeave({ force: true }).catch(() => {});
    await sleep(2000);
  }, 60_000);

  /**
   * The service on `bucket` (below /reg): two replicas, both serving. Its config
   * a swarm config and its keys in the env; or (`bindConfig`) a file of this
   * host bind-mounted, the keys in it.
   */
  async function s3Service(bucket: string, options: { bindConfig?: boolean } = {}): Promise<{ name: string; ports: [number, number]; env: string[] }> {
    const { rgw } = held;
    await rgw.createBucket(bucket);
    const name = uniqueName(`svc-${bucket}`);
    const keys = { accesskey: S3_ACCESS_KEY, secretkey: S3_SECRET_KEY };
    const s3 = { region: S3_REGION, regionendpoint: rgw.endpoint, bucket, secure: false, v4auth: true, forcepathstyle: true, rootdirectory: '/reg', ...(options.bindConfig ? keys : {}) };
    const text = dump({ version: '0.1', log: { level: 'warn' }, storage: { s3, delete: { enabled: true }, redirect: { disable: true }, cache: { blobdescriptor: 'inmemory' } }, http: { addr: ':5000' } });
    const { prefix, ports } = await slotPorts();
    const env = [`REGISTRY_HTTP_ADDR=127.0.0.1:${prefix}{{.Task.Slot}}`, ...(options.bindConfig ? [] : [`REGISTRY_STORAGE_S3_ACCESSKEY=${keys.accesskey}`, `REGISTRY_STORAGE_S3_SECRETKEY=${keys.secretkey}`])];
    let configSpec: object;
    if (options.bindConfig) {
      const file = path.join(held.dir, `${name}.yml`);
      await fs.writeFile(file, text);
      configSpec = { Mounts: [{ Type: 'bind', Source: file, Target: CONFIG, ReadOnly: true }] };
    } else {
      const config = await docker().createConfig({ Name: `${name}-config`, Data: Buffer.from(text).toString('base64') });
      configs.push(config.id);
      configSpec = { Configs: [{ File: { Name: CONFIG, UID: '0', GID: '0', Mode: 0o444 }, ConfigID: config.id, ConfigName: `${name}-config` }] };
    }
    await docker().createService({
      Name: name,
      TaskTemplate: {
        ContainerSpec: { Image: 'registry:2', Env: env, ...configSpec },
        Networks: [{ Target: 'host' }],
      },
      Mode: { Replicated: { Replicas: 2 } },
    });
    services.push(name);
    for (const port of ports) await waitForHttp(`http://127.0.0.1:${port}/v2/`, 60_000);
    return { name, ports, env };
  }

  const envOf = async (service: string): Promise<string[]> => {
    const spec = (await docker().getService(service).inspect()).Spec;
    return spec.TaskTemplate.ContainerSpec.Env ?? [];
  };

  /** The service's running task containers: id and env. */
  const tasksOf = async (service: string): Promise<Array<{ id: string; env: string[] }>> => {
    const list = await docker().listContainers({ filters: { label: [`com.docker.swarm.service.name=${service}`] } });
    return Promise.all(list.map(async (c) => ({ id: c.Id, env: (await docker().getContainer(c.Id).inspect()).Config.Env ?? [] })));
  };

  /** Every kept digest pulls whole through both replicas, every purged one is gone. */
  async function expectBothServe(ports: readonly number[], scenario: Scenario): Promise<void> {
    for (const port of ports) {
      const client = new RegistryClient(`http://127.0.0.1:${port}`);
      for (const { repository, digest } of scenario.kept) await client.pullWhole(repository, digest);
      for (const { repository, digest } of scenario.removed) expect((await client.getManifest(repository, digest)).status).toBe(404);
    }
  }

  it('no replica takes a push inside the window and both serve the kept images; after it both take pushes, every kept digest pulls whole, freed = predicted, the env as it was', async () => {
    const { name, ports, env } = await s3Service('service-window');
    // Swarm expanded the template: one address per replica.
    expect(ports.map((p) => p % 10)).toEqual([1, 2]);
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${ports[0]}`));
    const before = (await tasksOf(name)).map((t) => t.id);
    expect(before).toHaveLength(2);
    expect(await Promise.all(ports.map(uploadStatus))).toEqual([202, 202]);

    // A garbage-collect helper would not get the swarm config: refused, before anything changed.
    const refused = await runCli([name, '--yes', '--gc', 'registry'], { env: ENV });
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim()).toBe(`regsweep: the config of service ${name} (${CONFIG}) is a swarm config, which a garbage-collect helper container does not get: leave out --gc registry (regsweep's own sweep needs none)`);
    expect(await envOf(name)).toEqual(env);
    expect((await tasksOf(name)).map((t) => t.id)).toEqual(before);

    const hold = path.join(held.dir, 'held');
    const running = runCli([name, '--yes', '--json', '--grace', '0s'], { env: { ...ENV, REGSWEEP_HOLD_AT: `bucket.swept:${hold}` } });
    let inside: { statuses: number[]; env: string[]; tasks: Array<{ id: string; env: string[] }> } | undefined;
    try {
      // Held just after the swept blobs' data went, still inside the window.
      let ended: string | undefined;
      void running.then((r) => (ended = `the run ended (exit ${r.code}) outside its window: ${r.stderr}`));
      const reached = await pollUntil('the run inside its window', 180_000, async () => ended ?? fs.access(hold).then(() => 'held', () => undefined), 200);
      expect(reached).toBe('held');
      inside = { statuses: await Promise.all(ports.map(uploadStatus)), env: await envOf(name), tasks: await tasksOf(name) };
      await expectBothServe(ports, scenario);
    } finally {
      await fs.rm(hold, { force: true });
    }
    const run = await running;

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    // Inside: both replicas read-only, tasks of the new spec only (none of before still runs).
    expect(inside?.statuses).toEqual([405, 405]);
    expect(inside?.env).toEqual([...env, READ_ONLY]);
    expect(inside?.tasks).toHaveLength(2);
    for (const task of inside?.tasks ?? []) {
      expect(before).not.toContain(task.id);
      expect(task.env).toContain(READ_ONLY);
    }
    const report = JSON.parse(run.stdout) as Report;
    expectValidReport(report);
    expect(report.problems).toEqual([]);
    expect(report.predicted.blobs).toBeGreaterThan(0);
    expect(report.freed).toEqual(report.predicted);
    expect(report.broughtBack).toMatchObject({ how: 'replaced', order: 'stop-first', readOnly: [name] });
    expect(report.pausedMs).toBeGreaterThan(0);

    // After: the env exactly as it was, tasks fresh again (their blob caches empty), both take pushes.
    expect(await envOf(name)).toEqual(env);
    const after = await tasksOf(name);
    expect(after).toHaveLength(2);
    for (const task of after) expect(inside?.tasks.map((t) => t.id)).not.toContain(task.id);
    expect(await Promise.all(ports.map(uploadStatus))).toEqual([202, 202]);
    for (const [i, port] of ports.entries()) await pushImage(new RegistryClient(`http://127.0.0.1:${port}`), 'after', { tag: `r${i}`, seed: `after-${i}` });
    await expectBothServe(ports, scenario);
    await expectServesWhole(ports[1], scenario);
  }, 420_000);

  it('--gc registry: garbage-collect runs beside the task that runs here in the window (the hold replaced the one found before), with the config bind-mounted', async () => {
    const { name, ports, env } = await s3Service('service-gc', { bindConfig: true });
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${ports[1]}`));

    const run = await runCli([name, '--yes', '--json', '--gc', 'registry'], { env: ENV });

    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as Report & { gc: { mode: string; ran: boolean; exitCode: number | null } };
    expectValidReport(report);
    expect(report.gc).toMatchObject({ mode: 'registry', ran: true, exitCode: 0 });
    expect(report.problems).toEqual([]);
    expect(report.predicted.blobs).toBeGreaterThan(0);
    expect(report.freed).toEqual(report.predicted);
    expect(report.broughtBack).toMatchObject({ how: 'replaced', readOnly: [name] });
    expect(await envOf(name)).toEqual(env);
    expect(await Promise.all(ports.map(uploadStatus))).toEqual([202, 202]);
    await expectBothServe(ports, scenario);
  }, 420_000);

  it('a run killed in its window: the watchdog takes the service out of read-only mode, the next run finishes the work', async () => {
    const { name, ports, env } = await s3Service('service-kill');
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${ports[0]}`));

    const killed = await runCli([name, '--yes', '--grace', '0s'], { env: { ...ENV, REGSWEEP_CRASH_AT: 'bucket.removed' } });
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    // The watchdog puts the variable back, and swarm replaces the tasks: both take pushes again.
    await pollUntil('the service out of read-only mode', 180_000, async () => ((await envOf(name)).includes(READ_ONLY) ? undefined : true), 500);
    expect(await envOf(name)).toEqual(env);
    await pollUntil('both replicas taking pushes', 120_000, async () => ((await Promise.all(ports.map(uploadStatus))).every((s) => s === 202) ? true : undefined), 500);

    const next = await runCli([name, '--yes', '--json', '--grace', '0s', '--wait', '60s'], { env: ENV });
    expect(next.code, next.stderr).toBe(0);
    const report = JSON.parse(next.stdout) as Report;
    expectValidReport(report);
    // It took the dead run's lock over; the service was put back already.
    expect(report.recovered).toMatchObject({ by: 'takeover', services: [] });
    // The killed run removed the revisions; their blobs are this run's to sweep, and go.
    expect(report.plan.manifests).toEqual([]);
    expect(report.predicted.blobs).toBeGreaterThan(0);
    expect(report.freed).toEqual(report.predicted);
    expect(await envOf(name)).toEqual(env);
    await expectBothServe(ports, scenario);
  }, 600_000);
});
