import { describe, expect, it } from 'vitest';
import type { ContainerInfo, MountInfo } from '../../src/docker/engine.js';
import {
  configPathCandidates,
  containerPathFor,
  containerRegistryVersion,
  hostPathFor,
  imageRegistryVersion,
  locateNamed,
  locateVolume,
  reachFromHere,
} from '../../src/docker/locator.js';
import { UsageError } from '../../src/errors.js';
import { FakeEngine, type FakeContainerSpec } from '../support/fakeEngine.js';
import { rejection } from '../support/rejection.js';

const mounts: MountInfo[] = [
  { type: 'volume', source: '/var/lib/docker/volumes/data/_data', destination: '/srv/registry', name: 'data' },
  { type: 'bind', source: '/etc/reg', destination: '/cfg' },
  { type: 'bind', source: '/mnt/deep', destination: '/srv/registry/store/deep' },
];

describe('paths across mounts', () => {
  it.each([
    ['/srv/registry', '/var/lib/docker/volumes/data/_data'],
    ['/srv/registry/store', '/var/lib/docker/volumes/data/_data/store'],
    ['/srv/registry/store/deep/x', '/mnt/deep/x'],
    ['/srv/registryX', undefined],
    ['/var/lib/registry', undefined],
  ])('%s inside is %s on the host', (inside, host) => {
    expect(hostPathFor(mounts, inside)).toBe(host);
  });
  it.each([
    ['/var/lib/docker/volumes/data/_data/store', '/srv/registry/store'],
    ['/mnt/deep', '/srv/registry/store/deep'],
    ['/var/lib/docker/volumes/other/_data', undefined],
  ])('%s on the host is %s inside', (host, inside) => {
    expect(containerPathFor(mounts, host)).toBe(inside);
  });
});

describe('the config a registry container runs with', () => {
  const container = (args: string[], env: Record<string, string> = {}): ContainerInfo =>
    ({ id: 'x', name: 'r', image: 'i', imageName: 'registry:2', running: true, paused: false, created: 0, env, args, mounts: [], labels: {} }) as ContainerInfo;
  it('is the yml in its command, else REGISTRY_CONFIGURATION_PATH, else the image defaults', () => {
    expect(configPathCandidates(container(['/cfg/custom.yml']))).toEqual(['/cfg/custom.yml']);
    expect(configPathCandidates(container(['serve', '/cfg/x.yaml']))).toEqual(['/cfg/x.yaml']);
    expect(configPathCandidates(container([], { REGISTRY_CONFIGURATION_PATH: '/c.yml' }))).toEqual(['/c.yml']);
    expect(configPathCandidates(container([]))).toEqual(['/etc/docker/registry/config.yml', '/etc/distribution/config.yml']);
  });
});

// ---------------------------------------------------------------------------
// Against a fake engine: from a name to the storage root and its containers.

const VOLUME_DATA = '/var/lib/docker/volumes/regdata/_data';
const REGISTRY_VOLUME: MountInfo = { type: 'volume', source: VOLUME_DATA, destination: '/var/lib/registry', name: 'regdata' };

const fsConfig = (rootdirectory?: string): string =>
  `version: 0.1\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n${rootdirectory ? `    rootdirectory: ${rootdirectory}\n` : '    {}\n'}http:\n  addr: :5000\n`;

/** A fake engine with one registry container, with these fields. */
function withRegistry(spec: Partial<FakeContainerSpec> = {}): { engine: FakeEngine; registry: ContainerInfo } {
  const engine = new FakeEngine();
  const registry = engine.addContainer({ id: 'c0ffee', name: 'registry', mounts: [REGISTRY_VOLUME], ...spec });
  return { engine, registry };
}

describe('locateNamed: where a registry container stores', () => {
  it('reads the config named in the container args, not the image default', async () => {
    const { engine } = withRegistry({
      args: ['/cfg/custom.yml'],
      mounts: [{ type: 'bind', source: '/srv/registry-data', destination: '/data' }, REGISTRY_VOLUME],
      files: { '/cfg/custom.yml': fsConfig('/data'), '/etc/docker/registry/config.yml': fsConfig('/var/lib/registry') },
    });

    const target = await locateNamed(engine, 'registry');

    expect(target).toMatchObject({ kind: 'container', name: 'registry', configPath: '/cfg/custom.yml', containerRoot: '/data', root: '/srv/registry-data', hostRoot: '/srv/registry-data' });
    expect(target.containers.map((c) => c.id)).toEqual(['c0ffee']);
    expect(engine.callsOf('readFile')).toEqual(['readFile c0ffee /cfg/custom.yml']);
    expect(engine.calls[0]).toBe('ping');
  });

  it('reads the config named by REGISTRY_CONFIGURATION_PATH when the args name none', async () => {
    const { engine } = withRegistry({
      args: [],
      env: { REGISTRY_CONFIGURATION_PATH: '/conf/registry.yaml' },
      mounts: [{ type: 'bind', source: '/srv/store', destination: '/store' }, REGISTRY_VOLUME],
      files: { '/conf/registry.yaml': fsConfig('/store'), '/etc/docker/registry/config.yml': fsConfig('/var/lib/registry') },
    });

    const target = await locateNamed(engine, 'registry');

    expect(target).toMatchObject({ configPath: '/conf/registry.yaml', containerRoot: '/store', root: '/srv/store' });
  });

  it.each([
    ['2.x', '/etc/docker/registry/config.yml'],
    ['3.x', '/etc/distribution/config.yml'],
  ])('falls back to the %s image default config %s', async (_version, file) => {
    const { engine } = withRegistry({
      args: [],
      mounts: [{ type: 'bind', source: '/srv/r', destination: '/r' }],
      files: { [file]: fsConfig('/r/storage') },
    });

    const target = await locateNamed(engine, 'registry');

    expect(target).toMatchObject({ configPath: file, containerRoot: '/r/storage', root: '/srv/r/storage' });
    expect(engine.callsOf('readFile')[0]).toBe('readFile c0ffee /etc/docker/registry/config.yml');
  });

  it('lets REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY override the rootdirectory of the file', async () => {
    const { engine } = withRegistry({
      env: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/override' },
      mounts: [{ type: 'bind', source: '/srv/override', destination: '/override' }, REGISTRY_VOLUME],
      files: { '/etc/docker/registry/config.yml': fsConfig('/var/lib/registry') },
    });

    expect(await locateNamed(engine, 'registry')).toMatchObject({ containerRoot: '/override', root: '/srv/override' });
  });

  it('uses /var/lib/registry and the environment when no config file is readable', async () => {
    const { engine } = withRegistry({ args: [] });

    const target = await locateNamed(engine, 'registry');

    expect(target).toMatchObject({ containerRoot: '/var/lib/registry', root: VOLUME_DATA });
    expect(target.configPath).toBeUndefined();
  });

  it('maps the root to the host through the deepest mount that holds it', async () => {
    const { engine } = withRegistry({
      mounts: [
        { type: 'bind', source: '/srv', destination: '/srv' },
        { type: 'bind', source: '/mnt/fast/registry', destination: '/srv/registry/data' },
        { type: 'volume', source: '/var/lib/docker/volumes/x/_data', destination: '/srv/registry', name: 'x' },
      ],
      files: { '/etc/docker/registry/config.yml': fsConfig('/srv/registry/data/v') },
    });

    expect(await locateNamed(engine, 'registry')).toMatchObject({ containerRoot: '/srv/registry/data/v', root: '/mnt/fast/registry/v', hostRoot: '/mnt/fast/registry/v' });
  });

  it.each([
    ['its config', { files: { '/etc/docker/registry/config.yml': 'storage:\n  gcs:\n    bucket: images\n' } }, /gcs/],
    ['REGISTRY_STORAGE', { env: { REGISTRY_STORAGE: 'azure' }, files: { '/etc/docker/registry/config.yml': fsConfig() } }, /azure/],
  ])('refuses a storage driver other than filesystem and s3, named by %s (exit 2)', async (_by, spec, driver) => {
    const { engine } = withRegistry(spec);

    const error = await rejection(locateNamed(engine, 'registry'));

    expect(error).toBeInstanceOf(UsageError);
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(driver);
    expect(error.message).toMatch(/filesystem/);
  });

  it.each([
    ['its config', { files: { '/etc/docker/registry/config.yml': 'storage:\n  s3:\n    bucket: images\n    region: eu-west-1\n    rootdirectory: /reg\n' } }],
    ['REGISTRY_STORAGE and its env alone', { env: { REGISTRY_STORAGE: 's3', REGISTRY_STORAGE_S3_BUCKET: 'images', REGISTRY_STORAGE_S3_REGION: 'eu-west-1', REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/reg' }, files: { '/etc/docker/registry/config.yml': fsConfig() } }],
  ])('finds the bucket of a registry on the s3 driver, named by %s', async (_by, spec) => {
    const { engine } = withRegistry(spec);
    const target = await locateNamed(engine, 'registry');
    expect(target).toMatchObject({ kind: 'container', root: 's3://images', bucket: { bucket: 'images', region: 'eu-west-1', rootdirectory: '/reg' } });
    expect(target.hostRoot).toBeUndefined();
  });

  it('holds every running registry container of the engine that serves the same bucket tree, and no other', async () => {
    const s3 = (bucket: string, root: string): string => `storage:\n  s3:\n    bucket: ${bucket}\n    region: eu-west-1\n    rootdirectory: ${root}\n`;
    const { engine } = withRegistry({ files: { '/etc/docker/registry/config.yml': s3('images', '/reg') } });
    // The same tree named another way: the bucket and root in the env over a config of another bucket.
    engine.addContainer({ id: 'peer1', name: 'replica', mounts: [], env: { REGISTRY_STORAGE_S3_BUCKET: 'images' }, files: { '/etc/docker/registry/config.yml': s3('other', '/reg') } });
    engine.addContainer({ id: 'peer2', name: 'paused-replica', mounts: [], paused: true, files: { '/etc/docker/registry/config.yml': s3('images', 'reg/') } });
    engine.addContainer({ id: 'elsewhere', name: 'other-root', mounts: [], files: { '/etc/docker/registry/config.yml': s3('images', '/other') } });
    engine.addContainer({ id: 'stopped', name: 'stopped-replica', mounts: [], running: false, files: { '/etc/docker/registry/config.yml': s3('images', '/reg') } });
    engine.addContainer({ id: 'fs', name: 'on-disk', mounts: [REGISTRY_VOLUME], files: { '/etc/docker/registry/config.yml': fsConfig() } });
    engine.addContainer({ id: 'web', name: 'not-a-registry', mounts: [] });
    const target = await locateNamed(engine, 'registry');
    expect(target.containers.map((c) => c.name).sort()).toEqual(['paused-replica', 'registry', 'replica']);
  });

  it('refuses a root that is on no volume or bind mount (exit 2)', async () => {
    const { engine } = withRegistry({
      mounts: [{ type: 'bind', source: '/etc/reg', destination: '/etc/docker/registry' }],
      files: { '/etc/docker/registry/config.yml': fsConfig() },
    });

    const error = await rejection(locateNamed(engine, 'registry'));

    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/\/var\/lib\/registry .*not on a volume or bind mount/);
  });

  it('refuses a name that is neither a container nor a service (exit 2)', async () => {
    const { engine } = withRegistry();

    const error = await rejection(locateNamed(engine, 'nope'));

    expect(error).toBeInstanceOf(UsageError);
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/no container or service named nope/);
    expect(engine.calls).toEqual(['ping', 'container nope', 'serviceContainers nope']);
  });

  it('asks nothing else when the engine cannot be reached', async () => {
    const { engine } = withRegistry();
    engine.failOn('ping', undefined, { error: new UsageError('cannot reach the Docker engine at /var/run/docker.sock: ENOENT') });

    const error = await rejection(locateNamed(engine, 'registry'));

    expect(error.exitCode).toBe(2);
    expect(engine.calls).toEqual(['ping']);
  });
});

describe('locateNamed: a swarm service', () => {
  function service(roots: string[]): FakeEngine {
    const engine = new FakeEngine();
    roots.forEach((root, i) =>
      engine.addContainer({
        id: `task${i + 1}`,
        name: `reg.${i + 1}.abc`,
        mounts: [{ type: 'bind', source: root, destination: '/var/lib/registry' }],
        files: { '/etc/docker/registry/config.yml': fsConfig() },
      }),
    );
    engine.addService('reg', roots.map((_, i) => `task${i + 1}`));
    return engine;
  }

  it('is found by name when no container has it, with all its task containers', async () => {
    const target = await locateNamed(service(['/srv/shared', '/srv/shared']), 'reg');

    expect(target).toMatchObject({ kind: 'service', name: 'reg', root: '/srv/shared', containerRoot: '/var/lib/registry' });
    expect(target.containers.map((c) => c.id)).toEqual(['task1', 'task2']);
  });

  it('refuses a service whose tasks store at different places (exit 2)', async () => {
    const error = await rejection(locateNamed(service(['/srv/node-a', '/srv/node-b']), 'reg'));

    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/different places/);
    expect(error.message).toMatch(/\/srv\/node-a/);
    expect(error.message).toMatch(/\/srv\/node-b/);
  });

  it('refuses a service with no running task on this host (exit 2)', async () => {
    const error = await rejection(locateNamed(service([]), 'reg'));

    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/service reg has no running task/);
  });
});

describe('locateVolume', () => {
  it('a volume no container uses: the root is its mountpoint, with no container to pause', async () => {
    const engine = new FakeEngine();
    engine.addVolume('regdata');

    const target = await locateVolume(engine, 'regdata');

    expect(target).toMatchObject({ kind: 'volume', name: 'regdata', volume: 'regdata', root: VOLUME_DATA, hostRoot: VOLUME_DATA, containers: [] });
  });

  it('a volume a registry uses: its containers are found and its root inside the volume is used', async () => {
    const { engine } = withRegistry({ files: { '/etc/docker/registry/config.yml': fsConfig('/var/lib/registry/sub') } });
    engine.addContainer({ id: 'other', name: 'unrelated', mounts: [] });
    engine.addVolume('regdata');

    const target = await locateVolume(engine, 'regdata');

    expect(target).toMatchObject({ kind: 'volume', volume: 'regdata', root: `${VOLUME_DATA}/sub`, containerRoot: '/var/lib/registry/sub' });
    expect(target.containers.map((c) => c.name)).toEqual(['registry']);
  });

  it('refuses a volume whose registry stores outside it (exit 2)', async () => {
    const { engine } = withRegistry({
      mounts: [REGISTRY_VOLUME, { type: 'bind', source: '/srv/elsewhere', destination: '/data' }],
      files: { '/etc/docker/registry/config.yml': fsConfig('/data') },
    });
    engine.addVolume('regdata');

    const error = await rejection(locateVolume(engine, 'regdata'));

    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/store outside it, at \/srv\/elsewhere/);
  });

  it('refuses a volume of a driver other than local (exit 2)', async () => {
    const engine = new FakeEngine();
    engine.addVolume('nfsdata', { driver: 'rexray/efs' });

    const error = await rejection(locateVolume(engine, 'nfsdata'));

    expect(error).toBeInstanceOf(UsageError);
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/rexray\/efs/);
    expect(engine.callsOf('containersUsingVolume')).toEqual([]);
  });

  it('refuses a volume that does not exist (exit 2)', async () => {
    const error = await rejection(locateVolume(new FakeEngine(), 'ghost'));

    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/no volume named ghost/);
  });
});

describe('reachFromHere', () => {
  it('leaves the target unchanged when regsweep does not run in a container', async () => {
    const { engine } = withRegistry();
    const target = await locateNamed(engine, 'registry');

    expect(await reachFromHere(engine, target)).toBe(target);
    expect(engine.callsOf('self')).toEqual(['self']);
  });

  it('maps the host root through the mounts of the container regsweep runs in', async () => {
    const { engine } = withRegistry();
    engine.addContainer({ id: 'me', name: 'regsweep', mounts: [{ ...REGISTRY_VOLUME, destination: '/mnt/registry' }] });
    engine.setSelf('me');
    const target = await locateNamed(engine, 'registry');

    const here = await reachFromHere(engine, target);

    expect(here).toMatchObject({ root: '/mnt/registry', hostRoot: VOLUME_DATA, containerRoot: '/var/lib/registry' });
  });

  it('refuses a storage not mounted into its container, with a --volumes-from hint naming the registry (exit 2)', async () => {
    const { engine } = withRegistry();
    engine.addContainer({ id: 'me', name: 'regsweep', mounts: [] });
    engine.setSelf('me');
    const target = await locateNamed(engine, 'registry');

    const error = await rejection(reachFromHere(engine, target));

    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/not mounted into this container/);
    expect(error.message).toMatch(/--volumes-from registry\b/);
  });

  it('for a volume no container uses, hints at mounting the host path', async () => {
    const engine = new FakeEngine();
    engine.addVolume('regdata');
    engine.addContainer({ id: 'me', name: 'regsweep', mounts: [] });
    engine.setSelf('me');

    const error = await rejection(reachFromHere(engine, await locateVolume(engine, 'regdata')));

    expect(error.exitCode).toBe(2);
    expect(error.message).toContain(`-v ${VOLUME_DATA}:${VOLUME_DATA}`);
  });
});

describe('the registry version of a container', () => {
  const DEBIAN_282 = { exitCode: 0, output: 'registry github.com/docker/distribution 2.8.2+ds1\n' };

  it('asks the running container by exec, and parses 2.8.2+ds1 as 2.8.2', async () => {
    const { engine, registry } = withRegistry();
    engine.setExecResult(registry.id, DEBIAN_282);

    expect(await containerRegistryVersion(engine, registry)).toBe('2.8.2');
    expect(engine.callsOf('exec')).toEqual(['exec c0ffee registry --version']);
    expect(engine.callsOf('runOnce')).toEqual([]);
  });

  it.each([
    ['paused', { paused: true }],
    ['stopped', { running: false }],
  ])('asks the image of a %s container, in a helper container', async (_state, fields) => {
    const { engine, registry } = withRegistry({ image: 'sha256:feed', ...fields });
    engine.setRunOnceResult('sha256:feed', { exitCode: 0, output: 'registry github.com/distribution/distribution/v3 v3.0.0+unknown\n' });

    expect(await containerRegistryVersion(engine, registry)).toBe('3.0.0');
    expect(engine.callsOf('exec')).toEqual([]);
    expect(engine.runOnceOptions).toMatchObject([{ image: 'sha256:feed', cmd: ['--version'] }]);
  });

  it('refuses an answer it cannot read as a version (exit 2)', async () => {
    const { engine, registry } = withRegistry();
    engine.setExecResult(registry.id, { exitCode: 127, output: 'exec: "registry": executable file not found in $PATH\n' });

    const error = await rejection(containerRegistryVersion(engine, registry));

    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/registry version of container registry/);
    expect(error.message).toMatch(/executable file not found/);
  });

  it('refuses a version printed by a command that then failed (exit 2)', async () => {
    const { engine, registry } = withRegistry();
    engine.setExecResult(registry.id, { exitCode: 1, output: 'registry github.com/docker/distribution 2.8.2+ds1\n' });

    expect((await rejection(containerRegistryVersion(engine, registry))).exitCode).toBe(2);
  });

  it('imageRegistryVersion reads the version of an image (2.8.1 from v2.8.1+unknown)', async () => {
    const engine = new FakeEngine();
    engine.setRunOnceResult('registry:2.8.1', { exitCode: 0, output: 'registry github.com/docker/distribution v2.8.1+unknown\n' });

    expect(await imageRegistryVersion(engine, 'registry:2.8.1')).toBe('2.8.1');
  });
});
