import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/errors.js';
import { keyPrefix, s3Location, storageDriver } from '../../../src/storage/s3/location.js';

const S3_CONFIG = `
version: 0.1
storage:
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
  s3:
    region: eu-west-1
    bucket: images
    accesskey: AK
    secretkey: SK
    rootdirectory: /registry/
`;

describe('storageDriver', () => {
  it('reads an s3 config: bucket, region, keys, rootdirectory; AWS endpoint, https, virtual hosts', () => {
    expect(storageDriver(S3_CONFIG, {})).toEqual({
      driver: 's3',
      location: {
        bucket: 'images',
        region: 'eu-west-1',
        endpoint: undefined,
        forcePathStyle: false,
        rootdirectory: '/registry/',
        credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' },
        secure: true,
        skipVerify: false,
      },
    });
  });

  it('takes REGISTRY_STORAGE_S3_* over the file, as the registry does (new keys lower-cased, values as YAML)', () => {
    const got = storageDriver(S3_CONFIG, {
      REGISTRY_STORAGE_S3_BUCKET: 'other',
      REGISTRY_STORAGE_S3_REGIONENDPOINT: 'http://127.0.0.1:9000',
      REGISTRY_STORAGE_S3_SECURE: 'false',
      REGISTRY_STORAGE_S3_SKIPVERIFY: 'true',
      REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/',
    });
    expect(got).toMatchObject({ driver: 's3', location: { bucket: 'other', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, secure: false, skipVerify: true, rootdirectory: '/' } });
  });

  it('names the driver of a config set wholly by the environment, and of a file without storage', () => {
    const env = { REGISTRY_STORAGE: 's3', REGISTRY_STORAGE_S3_BUCKET: 'b', REGISTRY_STORAGE_S3_REGION: 'us-east-1' };
    expect(storageDriver('storage:\n  filesystem: {}\n', env)).toMatchObject({ driver: 's3', location: { bucket: 'b', region: 'us-east-1', credentials: undefined } });
    expect(storageDriver(undefined, env)).toMatchObject({ driver: 's3' });
    expect(storageDriver('storage:\n  s3aws:\n    bucket: b\n    region: r\n', {})).toMatchObject({ driver: 's3', location: { bucket: 'b' } });
  });

  it('says filesystem with its rootdirectory (default /var/lib/registry), and other drivers by name', () => {
    expect(storageDriver('storage:\n  filesystem:\n    rootdirectory: /data\n', {})).toEqual({ driver: 'filesystem', rootdirectory: '/data' });
    expect(storageDriver('storage:\n  filesystem: {}\n', {})).toEqual({ driver: 'filesystem', rootdirectory: '/var/lib/registry' });
    expect(storageDriver('storage:\n  filesystem: {}\n', { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/env' })).toEqual({ driver: 'filesystem', rootdirectory: '/env' });
    expect(storageDriver('storage:\n  gcs:\n    bucket: b\n  cache: {}\n', {})).toEqual({ driver: 'other', name: 'gcs' });
  });

  it('adds the scheme a bare regionendpoint gets from secure, and keeps forcepathstyle when given', () => {
    const base = { bucket: 'b', region: 'r' };
    expect(s3Location({ ...base, regionendpoint: 'minio:9000' }).endpoint).toBe('https://minio:9000');
    expect(s3Location({ ...base, regionendpoint: 'minio:9000', secure: false }).endpoint).toBe('http://minio:9000');
    expect(s3Location({ ...base, regionendpoint: 'http://minio:9000', forcepathstyle: false }).forcePathStyle).toBe(false);
    expect(s3Location({ ...base, forcepathstyle: 'true' }).forcePathStyle).toBe(true);
    // Keys: both or neither (the SDK's default chain then), as the driver does.
    expect(s3Location({ ...base, accesskey: 'AK' }).credentials).toBeUndefined();
  });

  it('refuses (exit 2) what the registry itself would not start with', () => {
    const refused = (text: string | undefined, env: Record<string, string> = {}): UsageError => {
      try {
        storageDriver(text, env);
      } catch (error) {
        return error as UsageError;
      }
      throw new Error('not refused');
    };
    expect(refused('storage:\n  s3:\n    region: r\n').message).toMatch(/storage.s3 names no bucket/);
    expect(refused('storage:\n  s3:\n    bucket: b\n').message).toMatch(/storage.s3 names no region/);
    expect(refused('storage:\n  s3:\n    bucket: b\n    region: r\n    secure: maybe\n').message).toMatch(/storage.s3.secure must be a boolean/);
    expect(refused('storage:\n  s3: {}\n  filesystem: {}\n').message).toMatch(/more than one storage driver/);
    expect(refused('version: 0.1\n').message).toMatch(/no storage driver/);
    expect(refused('storage: [').message).toMatch(/not valid YAML/);
    expect(refused('storage: [')).toBeInstanceOf(UsageError);
    expect(refused('storage: [').exitCode).toBe(2);
  });
});

describe('keyPrefix', () => {
  it("is the driver's s3Path prefix: rootdirectory without its slashes at either end, then '/'", () => {
    expect(keyPrefix({ rootdirectory: '' })).toBe('');
    expect(keyPrefix({ rootdirectory: '/' })).toBe('');
    expect(keyPrefix({ rootdirectory: '/registry/' })).toBe('registry/');
    expect(keyPrefix({ rootdirectory: 'a/b' })).toBe('a/b/');
    expect(keyPrefix({ rootdirectory: '//a//' })).toBe('a/');
  });
});
