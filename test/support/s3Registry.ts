/**
 * The real registry (2.8.2, or 3.0.0 through REGISTRY_V3_BIN) served as a
 * process with the `s3` storage driver on a radosgw bucket (radosgw.ts), with
 * the settings TESTING.md lists: path style, no TLS, v4 auth, no redirects to
 * presigned URLs, and no AWS_CA_BUNDLE (2.8.2's driver panics on this
 * machine's). Returns the config it served with, so a test can read the
 * bucket's location out of it as regsweep would.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { dump } from 'js-yaml';
import { afterAll, beforeAll } from 'vitest';
import { RegistryClient, registryBinary } from '../../scripts/registryClient.js';
import { freePort } from './docker.js';
import { type Radosgw, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, startRadosgw } from './radosgw.js';
import { RegistryOnRoot, type Scenario, pushMixedScenario } from './scenario.js';
import { tempDir } from './tmp.js';
import { registryV3Bin } from './registryV3.js';

export interface S3Registry {
  url: string;
  /** The YAML the registry serves with. */
  configText: string;
  stop(): Promise<void>;
}

/** How the registry serves besides its bucket: `redis`, its blob descriptor cache in Redis (this `redis` section, else in memory); `secret`, its http.secret (else a new one: upload URLs then outlive no restart). */
interface ServeOptions {
  redis?: Record<string, unknown>;
  secret?: string;
}

/** The registry's config for a bucket of this radosgw. */
function s3RegistryConfig(rgw: Radosgw, bucket: string, rootdirectory: string, port: number, { redis, secret }: ServeOptions): string {
  return dump({
    version: '0.1',
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: {
      s3: {
        region: S3_REGION,
        regionendpoint: rgw.endpoint,
        bucket,
        accesskey: S3_ACCESS_KEY,
        secretkey: S3_SECRET_KEY,
        secure: false,
        v4auth: true,
        forcepathstyle: true,
        rootdirectory,
      },
      delete: { enabled: true },
      redirect: { disable: true },
      cache: { blobdescriptor: redis ? 'redis' : 'inmemory' },
    },
    ...(redis ? { redis } : {}),
    http: { addr: `127.0.0.1:${port}`, secret: secret ?? randomBytes(16).toString('hex') },
  });
}

/** Serves the bucket with `bin` until stop(). */
export async function startS3Registry(bin: string, rgw: Radosgw, bucket: string, rootdirectory = '/', options: ServeOptions = {}): Promise<S3Registry> {
  const port = await freePort();
  const configText = s3RegistryConfig(rgw, bucket, rootdirectory, port, options);
  const configDir = await tempDir('regsweep-s3-registry-');
  const configPath = path.join(configDir, 'config.yml');
  await fs.writeFile(configPath, configText);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_') && k !== 'AWS_CA_BUNDLE'));
  const child = spawn(bin, ['serve', configPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer): void => void (output = (output + chunk.toString()).slice(-8192));
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await fs.rm(configDir, { recursive: true, force: true });
      throw new Error(`${bin} exited before it served:\n${output}`);
    }
    const status = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) }).then((r) => r.status, () => 0);
    if (status === 200) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      await fs.rm(configDir, { recursive: true, force: true });
      throw new Error(`${bin} did not serve on ${url} within 20 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    configText,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await fs.rm(configDir, { recursive: true, force: true });
    },
  };
}

/** Every key of a bucket with its ETag and size, sorted: to see what a run changed. */
export async function keysOf(rgw: Radosgw, bucket: string): Promise<string[]> {
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await rgw.client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(`${o.Key} ${o.ETag} ${o.Size}`);
    token = page.NextContinuationToken;
  } while (token);
  return keys.sort();
}


/** The registry versions a bucket test runs on: version, binary (undefined where missing), and a bucket name of its own. */
export function registryVersions(prefix: string): Array<[string, string | undefined, string]> {
  return [
    ['2.8.2', registryBinary(), `${prefix}-v2`],
    ['3.0.0', registryV3Bin, `${prefix}-v3`],
  ];
}

/** A radosgw and a scratch directory for the tests of one describe block, started before them and gone after. */
export function withRadosgw(prefix: string): { readonly rgw: Radosgw; readonly dir: string } {
  const held = {} as { rgw: Radosgw; dir: string };
  beforeAll(async () => {
    held.rgw = await startRadosgw();
    held.dir = await tempDir(prefix);
  }, 60_000);
  afterAll(async () => {
    await held.rgw?.stop();
    if (held.dir) await fs.rm(held.dir, { recursive: true, force: true });
  });
  return held;
}

/** The mixed scenario pushed through `bin` into `bucket` (below /reg), with the config it served with written to `dir`. */
export async function pushOnBucket(bin: string, rgw: Radosgw, bucket: string, dir: string): Promise<{ config: string; scenario: Scenario }> {
  await rgw.createBucket(bucket);
  const config = path.join(dir, `${bucket}.yml`);
  const registry = await startS3Registry(bin, rgw, bucket, '/reg');
  try {
    const scenario = await pushMixedScenario(new RegistryClient(registry.url));
    await fs.writeFile(config, registry.configText);
    return { config, scenario };
  } finally {
    await registry.stop();
  }
}

/** The same, and the same scenario onto a filesystem root in `dir`. */
export async function pushOnBucketAndDisk(bin: string, rgw: Radosgw, bucket: string, dir: string): Promise<{ config: string; root: string; scenario: Scenario }> {
  const { config, scenario } = await pushOnBucket(bin, rgw, bucket, dir);
  const root = path.join(dir, `${bucket}-fs`);
  await fs.mkdir(root);
  const onRoot = new RegistryOnRoot(() => root, bin);
  try {
    await pushMixedScenario(await onRoot.serve());
  } finally {
    await onRoot.stop();
  }
  return { config, root, scenario };
}
