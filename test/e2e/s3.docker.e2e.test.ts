/**
 * A registry container on the s3 driver, named as users name it: the real
 * registry:2 image on the real engine (host network), its bucket on a real
 * radosgw, configured the way compose files do it (a config file mounted, the
 * keys in REGISTRY_STORAGE_S3_* env). `regsweep NAME --dry-run` finds the
 * bucket from the container's config and env and plans as `--config` does;
 * a real run pauses the container for its window (and another registry
 * container serving the same bucket), removes and sweeps in the bucket, and
 * brings them back serving every kept image whole. A run killed
 * (SIGKILL) inside its window leaves the registry paused for no longer than
 * its watchdog takes to bring it back, and the next run finishes its work.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { dump } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, pushImage } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { dockerAvailable, freePort, removeContainers, runRegistryContainer, uniqueName } from '../support/docker.js';
import { containerEvents, containerState, expectServesWhole, pollUntil } from '../support/e2eRegistry.js';
import { RADOSGW_MISSING, type Radosgw, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, startRadosgw } from '../support/radosgw.js';
import { pushMixedScenario } from '../support/scenario.js';
import { expectValidReport } from '../support/schema.js';
import { tempDir } from '../support/tmp.js';

const ENV = { AWS_EC2_METADATA_DISABLED: 'true' };

interface Report {
  target: { kind: string; name: string; root: string; registryVersion: string | null };
  plan: { manifests: Array<{ repository: string; digest: string }> };
  predicted: { blobs: number; bytes: number };
  requests: { total: number } | null;
}

interface RealReport extends Report {
  freed: { blobs: number; bytes: number } | null;
  pausedMs: number;
  broughtBack: { how: string } | null;
  problems: unknown[];
}

describe.skipIf(!dockerAvailable() || RADOSGW_MISSING !== undefined)('a registry container on the s3 driver', () => {
  let rgw: Radosgw;
  let dir: string;
  const names: string[] = [];
  beforeAll(async () => {
    rgw = await startRadosgw();
    dir = await tempDir('regsweep-s3-container-');
  }, 60_000);
  afterAll(async () => {
    await removeContainers(names);
    await rgw?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  /**
   * A registry:2 container serving `bucket` from a mounted config: its keys in
   * REGISTRY_STORAGE_S3_* env (as a compose file passes secrets), or in the
   * file (`keysInFile`). `config` names a file to serve from again.
   */
  async function s3Container(bucket: string, options: { config?: string; rootdirectory?: string; keysInFile?: boolean; cache?: boolean } = {}): Promise<{ name: string; port: number; config: string }> {
    const keys = { accesskey: S3_ACCESS_KEY, secretkey: S3_SECRET_KEY };
    const s3 = { region: S3_REGION, regionendpoint: rgw.endpoint, bucket, secure: false, v4auth: true, forcepathstyle: true, rootdirectory: options.rootdirectory ?? '/reg', ...(options.keysInFile ? keys : {}) };
    const config = options.config ?? path.join(dir, `${bucket}.yml`);
    if (!options.config) {
      const cache = options.cache ? { cache: { blobdescriptor: 'inmemory' } } : {};
      await fs.writeFile(config, dump({ version: '0.1', log: { level: 'warn' }, storage: { s3, delete: { enabled: true }, redirect: { disable: true }, ...cache }, http: { addr: ':5000' } }));
    }
    const name = uniqueName(`reg-${bucket}`);
    names.push(name);
    const port = await freePort();
    const env = options.keysInFile ? [] : [`REGISTRY_STORAGE_S3_ACCESSKEY=${keys.accesskey}`, `REGISTRY_STORAGE_S3_SECRETKEY=${keys.secretkey}`];
    await runRegistryContainer({ name, port, binds: [`${config}:/etc/docker/registry/config.yml:ro`], env });
    return { name, port, config };
  }

  it('a dry run finds the bucket from its config and env, plans as --config does; a real run removes it, paused, and the registry serves every kept image', async () => {
    const bucket = 'container-s3';
    await rgw.createBucket(bucket);
    // The file names the bucket and endpoint; the keys come from the env.
    const { name, port, config } = await s3Container(bucket, { cache: true });
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${port}`));
    // S3 keeps LastModified (and its Date header) to the second: a blob written within a second of a scan may count as
    // recent in one dry run and not in the next, and the two dry runs below must predict the same.
    await new Promise((r) => setTimeout(r, 2000));

    const run = await runCli([name, '--dry-run', '--json', '--grace', '0s'], { env: ENV });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as Report;
    expectValidReport(report);
    expect(report.target).toMatchObject({ kind: 'container', name, registryVersion: '2.8.2' });
    expect(report.target.root).toContain(`s3://${bucket}`);
    expect(report.requests?.total).toBeGreaterThan(0);
    const planned = report.plan.manifests.map((m) => `${m.repository}@${m.digest}`);
    for (const r of scenario.removed) expect(planned).toContain(`${r.repository}@${r.digest}`);
    for (const k of scenario.kept) expect(planned).not.toContain(`${k.repository}@${k.digest}`);

    // The same storage named by its config file (the keys from this environment, as the registry takes them): the same plan.
    const again = await runCli(['--config', config, '--dry-run', '--json', '--grace', '0s'], { env: { ...ENV, REGISTRY_STORAGE_S3_ACCESSKEY: S3_ACCESS_KEY, REGISTRY_STORAGE_S3_SECRETKEY: S3_SECRET_KEY } });
    expect(again.code).toBe(0);
    const viaConfig = JSON.parse(again.stdout) as Report;
    expect(viaConfig.plan.manifests).toEqual(report.plan.manifests);
    expect(viaConfig.predicted).toEqual(report.predicted);

    // A second registry container on the same bucket (as a compose file scales one): the window must hold it too.
    const { name: replica, port: replicaPort } = await s3Container(bucket, { config });
    const started = Date.now();
    const real = await runCli([name, '--yes', '--json', '--grace', '0s'], { env: ENV });
    const ended = Date.now();
    expect(real.stderr).toBe('');
    expect(real.code).toBe(0);
    expect((await containerEvents(replica, started, ended)).map((e) => e.action)).toContain('pause');
    expect(await containerState(replica)).toMatchObject({ running: true, paused: false });
    const done = JSON.parse(real.stdout) as RealReport;
    expectValidReport(done);
    expect(done.problems).toEqual([]);
    expect(done.plan.manifests).toEqual(report.plan.manifests);
    expect(done.freed).toEqual(report.predicted);
    expect(done.pausedMs).toBeGreaterThan(0);
    // Its blob descriptor cache is in its memory: restarted, so it forgets the swept blobs.
    expect(done.broughtBack?.how).toBe('restarted');
    expect(await containerState(name)).toMatchObject({ running: true, paused: false });
    // The replica first: expectServesWhole pushes a purged image again.
    const viaReplica = new RegistryClient(`http://127.0.0.1:${replicaPort}`);
    for (const { repository, digest } of scenario.kept) await viaReplica.pullWhole(repository, digest);
    for (const { repository, digest } of scenario.removed) expect((await viaReplica.getManifest(repository, digest)).status).toBe(404);
    await expectServesWhole(port, scenario);
  }, 240_000);

  it("--gc registry: garbage-collect runs in a helper on the registry's network, with its config and env, while it is paused", async () => {
    const bucket = 'container-s3-gc';
    await rgw.createBucket(bucket);
    const { name, port } = await s3Container(bucket);
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${port}`));
    const run = await runCli([name, '--yes', '--json', '--grace', '0s', '--gc', 'registry'], { env: ENV });
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as RealReport & { gc: { mode: string; ran: boolean; exitCode: number | null } };
    expect(report.gc).toMatchObject({ mode: 'registry', ran: true, exitCode: 0 });
    expect(report.predicted.blobs).toBeGreaterThan(0);
    expect(report.freed).toEqual(report.predicted);
    expect(report.problems).toEqual([]);
    expect(await containerState(name)).toMatchObject({ running: true, paused: false });
    await expectServesWhole(port, scenario);
  }, 240_000);

  it('a run killed in its window: the watchdog brings the registry back, the next run finishes the work', async () => {
    const bucket = 'container-s3-kill';
    await rgw.createBucket(bucket);
    // The keys in the file this time, the tree at the bucket's top.
    const { name, port } = await s3Container(bucket, { rootdirectory: '/', keysInFile: true });
    const client = new RegistryClient(`http://127.0.0.1:${port}`);
    const scenario = await pushMixedScenario(client);
    // The points a run passes, learned from a whole run (the same shape of work as the one killed below).
    const points = path.join(dir, 'points');
    const learn = await runCli([name, '--yes', '--grace', '0s'], { env: { ...ENV, REGSWEEP_CRASH_COUNT: points } });
    expect(learn.code, learn.stderr).toBe(0);
    const lines = (await fs.readFile(points, 'utf8')).trim().split('\n');
    const at = lines.find((l) => l.endsWith(' bucket.removed'))?.split(' ')[0];
    expect(at).toBeDefined();

    await pushImage(client, 'app', { tag: 'latest', seed: 'kill-a' });
    const kept = await pushImage(client, 'app', { tag: 'latest', seed: 'kill-b' });
    const killed = await runCli([name, '--yes', '--grace', '0s'], { env: { ...ENV, REGSWEEP_CRASH_AT: at as string } });
    expect(killed.signal).toBe('SIGKILL');
    await pollUntil('the registry serving again', 20_000, async () => {
      const state = await containerState(name);
      return state.running && !state.paused ? state : undefined;
    });
    const next = await runCli([name, '--yes', '--json', '--grace', '0s', '--wait', '60s'], { env: ENV });
    expect(next.code, next.stderr).toBe(0);
    const after = JSON.parse(next.stdout) as RealReport & { recovered: { by: string } | null };
    expect(after.recovered?.by).toBe('takeover');
    // The killed run removed its revision; its blobs are this run's to sweep, and go.
    expect(after.plan.manifests).toEqual([]);
    expect(after.predicted.blobs).toBeGreaterThan(0);
    expect(after.freed).toEqual(after.predicted);
    await expectServesWhole(port, scenario);
    await client.pullWhole('app', kept.descriptor.digest);
  }, 300_000);
});
