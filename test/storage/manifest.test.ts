import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/storage/layout.js';
import { MediaTypes, parseManifest, sha256Digest } from '../../src/storage/manifest.js';
import { storageConfig } from '../../src/gc/registryConfig.js';
import { chooseGcFlags, compareVersions, parseGcSummary, parseRegistryVersion } from '../../src/gc/garbageCollect.js';

const d = (n: number): Digest => `sha256:${n.toString(16).padStart(64, '0')}`;
const desc = (n: number, mediaType = 'application/octet-stream') => ({ mediaType, digest: d(n), size: n });

function parse(doc: unknown) {
  const raw = Buffer.from(JSON.stringify(doc));
  return parseManifest(raw, sha256Digest(raw));
}

describe('parseManifest', () => {
  it('reads a Docker image: config and layers are its references', () => {
    const m = parse({ schemaVersion: 2, mediaType: MediaTypes.dockerManifest, config: desc(1), layers: [desc(2), desc(3)] });
    expect(m).toMatchObject({ kind: 'image', references: [d(1), d(2), d(3)], children: [] });
    expect(m.subject).toBeUndefined();
  });
  it('reads a Docker manifest list: children are references', () => {
    const m = parse({ schemaVersion: 2, mediaType: MediaTypes.dockerList, manifests: [desc(4), desc(5)] });
    expect(m).toMatchObject({ kind: 'index', references: [d(4), d(5)], children: [d(4), d(5)] });
  });
  it('reads an OCI referrer with its subject', () => {
    const m = parse({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, artifactType: 'x/sig', config: desc(1), layers: [desc(2)], subject: desc(9) });
    expect(m).toMatchObject({ kind: 'image', subject: d(9) });
  });
  it('identifies an OCI index and image without mediaType by shape', () => {
    expect(parse({ schemaVersion: 2, manifests: [desc(4)] })).toMatchObject({ kind: 'index', mediaType: MediaTypes.ociIndex });
    expect(parse({ schemaVersion: 2, config: desc(1), layers: [] })).toMatchObject({ kind: 'image', mediaType: MediaTypes.ociManifest });
  });
  it('reads a schema1 manifest: fsLayers are its references', () => {
    const m = parse({ schemaVersion: 1, name: 'a', tag: 'b', fsLayers: [{ blobSum: d(7) }, { blobSum: d(8) }], history: [] });
    expect(m).toMatchObject({ kind: 'schema1', references: [d(7), d(8)] });
  });
  it.each([
    ['an unknown media type', { schemaVersion: 2, mediaType: 'application/vnd.example+json', config: desc(1), layers: [] }, /unknown media type/],
    ['schemaVersion 3', { schemaVersion: 3 }, /unsupported schemaVersion/],
    ['a layer without digest', { schemaVersion: 2, mediaType: MediaTypes.dockerManifest, config: desc(1), layers: [{ size: 1 }] }, /layers\[0\] has no valid sha256 digest/],
    ['a sha512 child', { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [{ digest: `sha512:${'a'.repeat(128)}` }] }, /manifests\[0\]/],
    ['a list without manifests', { schemaVersion: 2, mediaType: MediaTypes.dockerList }, /manifests is not a list/],
    ['a JSON array', [1, 2], /not a JSON object/],
  ])('refuses %s', (_name, doc, message) => {
    expect(() => parse(doc)).toThrow(message);
  });
  it('refuses bytes that do not hash to the expected digest, and bytes that are not JSON', () => {
    expect(() => parseManifest(Buffer.from('{}'), d(1))).toThrow(/content hashes to/);
    const raw = Buffer.from('not json');
    expect(() => parseManifest(raw, sha256Digest(raw))).toThrow(/not JSON/);
  });
});

describe('registry versions and garbage-collect flags', () => {
  it.each([
    ['registry github.com/docker/distribution 2.8.2+ds1', '2.8.2'],
    ['registry github.com/docker/distribution v2.8.1+unknown', '2.8.1'],
    ['registry github.com/distribution/distribution/v3 3.0.0', '3.0.0'],
    ['registry github.com/distribution/distribution/v3 v3.1.1', '3.1.1'],
  ])('%s → %s', (output, version) => {
    expect(parseRegistryVersion(output)).toBe(version);
  });
  it('orders versions numerically', () => {
    expect(compareVersions('2.10.0', '2.8.2')).toBeGreaterThan(0);
    expect(compareVersions('2.3.9', '2.4.0')).toBeLessThan(0);
    expect(compareVersions('3.0.0', '3.0.0')).toBe(0);
  });
  it('never passes --delete-untagged on 2.x, and on 3.x only when nothing untagged is kept', () => {
    expect(chooseGcFlags('2.8.3', false).args).toEqual([]);
    expect(chooseGcFlags('2.7.0', true).args).toEqual([]);
    expect(chooseGcFlags('3.0.0', true).args).toEqual([]);
    expect(chooseGcFlags('3.1.1', false).args).toEqual(['--delete-untagged']);
  });
  it('reads the summary line', () => {
    expect(parseGcSummary('x\n\n12 blobs marked, 3 blobs and 0 manifests eligible for deletion\n')).toEqual({ marked: 12, blobsEligible: 3, manifestsEligible: 0 });
  });
});

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
