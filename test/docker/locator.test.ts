import { describe, expect, it } from 'vitest';
import type { ContainerInfo, MountInfo } from '../../src/docker/engine.js';
import { configPathCandidates, containerPathFor, hostPathFor } from '../../src/docker/locator.js';

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
    ({ id: 'x', name: 'r', image: 'i', imageName: 'registry:2', running: true, paused: false, env, args, mounts: [], labels: {} }) as ContainerInfo;
  it('is the yml in its command, else REGISTRY_CONFIGURATION_PATH, else the image defaults', () => {
    expect(configPathCandidates(container(['/cfg/custom.yml']))).toEqual(['/cfg/custom.yml']);
    expect(configPathCandidates(container(['serve', '/cfg/x.yaml']))).toEqual(['/cfg/x.yaml']);
    expect(configPathCandidates(container([], { REGISTRY_CONFIGURATION_PATH: '/c.yml' }))).toEqual(['/c.yml']);
    expect(configPathCandidates(container([]))).toEqual(['/etc/docker/registry/config.yml', '/etc/distribution/config.yml']);
  });
});
