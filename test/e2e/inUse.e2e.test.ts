/**
 * Images in use, on a real Docker engine and a real registry: images pushed
 * with `docker push`, their tag moved by pushing others to it, and the old
 * digest pinned by a container created from it (`docker create
 * localhost:PORT/team/app@sha256:…`, never started), by a swarm service
 * (`docker service create` pins `name:tag@sha256:…`), or by `--keep-digests -`
 * on stdin. A real run keeps the pinned digest, which pulls whole afterwards,
 * names its user in the report, and still removes the other untagged
 * revision; `--no-in-use` removes it.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../src/model.js';
import { runCli } from '../support/cli.js';
import { TEST_LABEL, docker, dockerAvailable, freePort, removeContainers, removeVolume, runRegistryContainer, uniqueName, waitForHttp } from '../support/docker.js';
import { DockerLikeClient } from '../support/dockerLikeClient.js';
import { startSwarmRegistry } from '../support/e2eRegistry.js';
import { expectValidReport } from '../support/schema.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const enabled = dockerAvailable();
const REPOSITORY = 'team/app';

function dockerCli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('docker', args, { env: process.env, maxBuffer: 16 * 1024 * 1024 });
}

/** Pushes a fresh one-file image (`docker import`: no base image needed) as `ref` with `docker push`; returns its digest. */
async function pushNew(ref: string, dir: string): Promise<Digest> {
  const seed = uniqueName('img');
  const src = path.join(dir, seed);
  await fs.mkdir(src, { recursive: true });
  await fs.writeFile(path.join(src, 'marker'), `${seed}\n`.repeat(200));
  await run('tar', ['-C', src, '-cf', `${src}.tar`, '.']);
  await dockerCli(['import', `${src}.tar`, ref]);
  const { stdout } = await dockerCli(['push', ref]);
  const digest = /digest: (sha256:[0-9a-f]{64})/.exec(stdout)?.[1];
  if (!digest) throw new Error(`docker push ${ref}: no digest in ${stdout}`);
  return digest as Digest;
}

interface History {
  /** `localhost:PORT/team/app`. */
  ref: string;
  /** Pinned before the tag moved on. */
  old: Digest;
  /** Untagged too, and pinned by nothing: it goes. */
  between: Digest;
  current: Digest;
}

/** Three pushes to `v1`; `pin` runs after the first, while its digest is still tagged. */
async function pushHistory(port: number, dir: string, pin: (ref: string, old: Digest) => Promise<void>): Promise<History> {
  const ref = `localhost:${port}/${REPOSITORY}`;
  const old = await pushNew(`${ref}:v1`, dir);
  await pin(ref, old);
  const between = await pushNew(`${ref}:v1`, dir);
  const current = await pushNew(`${ref}:v1`, dir);
  return { ref, old, between, current };
}

/** The digests a report's plan removes from the repository. */
const removedOf = (report: { plan: { manifests: Array<{ repository: string; digest: string }> } }): string[] =>
  report.plan.manifests.filter((m) => m.repository === REPOSITORY).map((m) => m.digest);

/** What the registry at `port` serves: `present` pull whole (every byte checked), `gone` are 404. */
async function expectServes(port: number, present: string[], gone: string[]): Promise<void> {
  const client = new DockerLikeClient(`http://127.0.0.1:${port}`);
  await client.pullWhole(REPOSITORY, 'v1');
  for (const digest of present) await client.pullWhole(REPOSITORY, digest);
  for (const digest of gone) expect((await client.getManifest(REPOSITORY, digest)).status).toBe(404);
}

/** Forgets the local copies of the pushed images, so a `docker pull` must fetch every layer from the registry. */
async function forgetLocalImages(ref: string): Promise<void> {
  const images = await docker().listImages({ filters: { reference: [`${ref}*`] } });
  for (const image of images) await docker().getImage(image.Id).remove({ force: true }).catch(() => {});
}

describe.skipIf(!enabled)('images in use on a real Docker engine', () => {
  const volumes: string[] = [];
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir();
  });
  afterEach(async () => {
    await removeContainers({ label: TEST_LABEL });
    for (const v of volumes.splice(0)) await removeVolume(v);
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  /** A registry container storing on a fresh named volume; returns its name, port and storage root on this host. */
  async function registry(prefix: string): Promise<{ name: string; port: number; root: string }> {
    const name = uniqueName(prefix);
    const volume = uniqueName('vol');
    volumes.push(volume);
    const port = await freePort();
    await runRegistryContainer({ name, port, volume: { name: volume } });
    const root = ((await docker().getVolume(volume).inspect()) as { Mountpoint: string }).Mountpoint;
    return { name, port, root };
  }

  it('a container created from an old digest keeps it through a real run; --no-in-use removes it', async () => {
    const { name, port } = await registry('reg-inuse');
    const user = uniqueName('pinned');
    const history = await pushHistory(port, dir, async (ref, old) => {
      await dockerCli(['create', '--label', `${TEST_LABEL}=1`, '--name', user, `${ref}@${old}`, '/marker']);
    });
    const { old, between } = history;

    const dry = await runCli([name, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`Kept 1 manifest in use (it would otherwise go):\n  + ${REPOSITORY}@${old}: container ${user}\n`);

    // The default sweep, regsweep's own; the images were pushed just now, hence --grace 0s.
    const kept = await runCli([name, '--yes', '--json', '--grace', '0s']);
    expect(kept.stderr).toBe('');
    expect(kept.code).toBe(0);
    const report = JSON.parse(kept.stdout);
    expectValidReport(report);
    expect(report.inUse).toEqual([{ repository: REPOSITORY, digest: old, users: [`container ${user}`] }]);
    expect(removedOf(report)).toEqual([between]);
    expect(report.gc).toMatchObject({ mode: 'builtin', ran: true, exitCode: 0 });
    expect(report.freed).toEqual(report.predicted);
    await expectServes(port, [old], [between]);

    const unprotected = await runCli([name, '--yes', '--json', '--grace', '0s', '--no-in-use']);
    expect(unprotected.code).toBe(0);
    const after = JSON.parse(unprotected.stdout);
    expectValidReport(after);
    expect(after.inUse).toEqual([]);
    expect(removedOf(after)).toEqual([old]);
    await expectServes(port, [], [old, between]);
  }, 240_000);

  it('--path asks the engine too, and --keep-digests - adds what stdin lists (kubectl output)', async () => {
    const { name, port, root } = await registry('reg-inuse-path');
    const user = uniqueName('pinned');
    const { ref, old, between, current } = await pushHistory(port, dir, async (r, d) => {
      await dockerCli(['create', '--label', `${TEST_LABEL}=1`, '--name', user, `${r}@${d}`, '/marker']);
    });
    const extra = await pushNew(`${ref}:v1`, dir); // `current` is untagged now too, and pinned by nothing but stdin
    await docker().getContainer(name).stop();

    const input = `docker-pullable://${ref}@${current} docker-pullable://registry.example.com/other@${between}\n`;
    const result = await runCli(['--path', root, '--yes', '--json', '--gc', 'builtin', '--grace', '0s', '--keep-digests', '-'], { input });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expectValidReport(report);
    const expected = [
      { repository: REPOSITORY, digest: old, users: [`container ${user}`] },
      { repository: REPOSITORY, digest: current, users: ['stdin'] },
    ].sort((a, b) => (a.digest < b.digest ? -1 : 1));
    expect(report.inUse).toEqual(expected);
    // `between` is pinned in another repository only: it goes.
    expect(removedOf(report)).toEqual([between]);
    expect(report.freed).toEqual(report.predicted);

    await docker().getContainer(name).start();
    await waitForHttp(`http://127.0.0.1:${port}/v2/`, 30_000);
    await expectServes(port, [old, current, extra], [between]);
  }, 240_000);
});

describe.skipIf(!enabled)('a swarm service pinned to a digest', () => {
  let service: string;
  let port: number;
  let stop: () => Promise<void>;
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir();
    ({ service, port, stop } = await startSwarmRegistry('regsvc-inuse'));
  }, 120_000);
  afterAll(async () => {
    await stop();
    await fs.rm(dir, { recursive: true, force: true });
  }, 120_000);

  it('keeps the digest `docker service create` pinned after the tag moved, and it pulls again with docker pull', async () => {
    const app = uniqueName('app');
    const history = await pushHistory(port, dir, async (ref) => {
      // No replicas: the service pins the image and runs nothing, so it alone uses the digest.
      await dockerCli(['service', 'create', '--detach', '--replicas', '0', '--name', app, `${ref}:v1`]);
    });
    const { ref, old, between } = history;
    try {
      const spec = (await docker().getService(app).inspect()).Spec as { TaskTemplate: { ContainerSpec: { Image: string } } };
      expect(spec.TaskTemplate.ContainerSpec.Image).toBe(`${ref}:v1@${old}`);

      const result = await runCli([service, '--yes', '--json', '--grace', '0s']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const report = JSON.parse(result.stdout);
      expectValidReport(report);
      expect(report.inUse).toEqual([{ repository: REPOSITORY, digest: old, users: [`service ${app}`] }]);
      expect(removedOf(report)).toEqual([between]);
      await expectServes(port, [old], [between]);
      await forgetLocalImages(ref);
      const pulled = await dockerCli(['pull', `${ref}@${old}`]);
      expect(pulled.stdout).toMatch(/Downloaded newer image/); // every layer came from the registry
    } finally {
      await docker().getService(app).remove().catch(() => {});
    }
  }, 240_000);
});
