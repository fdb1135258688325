import { describe, expect, it } from 'vitest';
import { imageConfigPath, storageConfig } from '../../src/gc/registryConfig.js';

describe('storageConfig', () => {
  it('reads the rootdirectory, and the env overrides it', () => {
    const yml = 'storage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: /data\n  delete:\n    enabled: true\n';
    expect(storageConfig(yml, {})).toEqual({ driver: 'filesystem', rootdirectory: '/data' });
    expect(storageConfig(yml, { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/env' })).toEqual({ driver: 'filesystem', rootdirectory: '/env' });
  });
  it('defaults the rootdirectory and names other drivers', () => {
    expect(storageConfig('storage:\n  filesystem: {}\n', {})).toEqual({ driver: 'filesystem', rootdirectory: '/var/lib/registry' });
    expect(storageConfig('storage:\n  s3:\n    bucket: b\n', {})).toEqual({ driver: 's3' });
    expect(storageConfig('storage:\n  filesystem: {}\n', { REGISTRY_STORAGE: 'gcs' })).toEqual({ driver: 'gcs' });
  });
  it('refuses a config without exactly one driver, and bad YAML', () => {
    expect(() => storageConfig('version: 0.1\n', {})).toThrow(/no storage driver/);
    expect(() => storageConfig('storage:\n  filesystem: {}\n  s3: {}\n', {})).toThrow(/more than one storage driver/);
    expect(() => storageConfig('storage: [', {})).toThrow(/not valid YAML/);
  });
});

describe('imageConfigPath', () => {
  it('names the config of the official image: /etc/docker/registry on 2.x, /etc/distribution on 3.x', () => {
    expect(imageConfigPath('2.8.2')).toBe('/etc/docker/registry/config.yml');
    expect(imageConfigPath('3.0.0-rc.1')).toBe('/etc/distribution/config.yml');
    expect(imageConfigPath('3.1.1')).toBe('/etc/distribution/config.yml');
  });
});
