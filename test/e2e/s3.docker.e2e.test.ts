/**
 * A registry container on the s3 driver, named as users name it: the real
 * registry:2 image on the real engine (host network), its bucket on a real
 * radosgw, configured the way compose files do it (a config file mounted, the
 * keys in REGISTRY_STORAGE_S3_* env). `regsweep NAME --dry-run` finds the
 * bucket from the container's config and env and plans as `--config` does;
 * a real run is refused before anything is paused.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { dump } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { dockerAvailable, freePort, removeContainers, runRegistryContainer, uniqueName } from '../support/docker.js';
import { containerState } from '../support/e2eRegistry.js';
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

  it('a dry run finds the bucket from its config and env, plans as --config does; a real run is refused, the registry untouched', async () => {
    const bucket = 'container-s3';
    await rgw.createBucket(bucket);
    // The file names the bucket and endpoint; the keys come from the env, as a compose file passes secrets.
    const s3 = { region: S3_REGION, regionendpoint: rgw.endpoint, bucket, secure: false, v4auth: true, forcepathstyle: true, rootdirectory: '/reg' };
    const config = path.join(dir, 'config.yml');
    await fs.writeFile(config, dump({ version: '0.1', log: { level: 'warn' }, storage: { s3, delete: { enabled: true }, redirect: { disable: true }, cache: { blobdescriptor: 'inmemory' } }, http: { addr: ':5000' } }));
    const name = uniqueName('reg-s3');
    names.push(name);
    const port = await freePort();
    const keys = [`REGISTRY_STORAGE_S3_ACCESSKEY=${S3_ACCESS_KEY}`, `REGISTRY_STORAGE_S3_SECRETKEY=${S3_SECRET_KEY}`];
    await runRegistryContainer({ name, port, binds: [`${config}:/etc/docker/registry/config.yml:ro`], env: keys });
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${port}`));

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

    const real = await runCli([name, '--yes'], { env: ENV });
    expect(real.code).toBe(2);
    expect(real.stderr.trim().split('\n')).toHaveLength(1);
    expect(real.stderr).toMatch(/a real run on object storage is not built yet/);
    expect(await containerState(name)).toMatchObject({ running: true, paused: false });
  }, 240_000);
});
