import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/model.js';
import { MediaTypes, parseManifest, sha256Digest } from '../../src/storage/manifest.js';

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
