/**
 * Manifests parsed in one place into what regsweep needs of them: the blobs
 * garbage-collect marks through them (`references`), the child manifests of a
 * list or index (`children`) and the manifest a referrer points at (`subject`).
 * The media type comes from the field, else from the shape, the way the
 * registry itself decides; anything else is a ManifestError, never a guess.
 */
import crypto from 'node:crypto';
import { ManifestError } from '../errors.js';
import type { Digest, ParsedManifest } from '../model.js';
import { isDigest } from './layout.js';

export const MediaTypes = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  schema1: 'application/vnd.docker.distribution.manifest.v1+json',
  schema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

interface Descriptor {
  digest?: unknown;
}

function descriptorDigest(d: unknown, where: string): Digest {
  const digest = (d as Descriptor | null)?.digest;
  if (typeof digest !== 'string' || !isDigest(digest)) {
    throw new ManifestError(`${where} has no valid sha256 digest`);
  }
  return digest;
}

function descriptorList(value: unknown, where: string): Digest[] {
  if (!Array.isArray(value)) throw new ManifestError(`${where} is not a list`);
  return value.map((d, i) => descriptorDigest(d, `${where}[${i}]`));
}

/** crypto.hash: one call, no Hash object (Node 20.12 and later); the scan hashes every manifest it reads. */
const oneShot = (crypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'hex') => string }).hash;

export function sha256Digest(bytes: Uint8Array): Digest {
  return `sha256:${oneShot ? oneShot('sha256', bytes, 'hex') : crypto.createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Parses the raw bytes of the manifest stored as `expected`. Throws
 * ManifestError when the bytes do not hash to `expected`, are not JSON, or
 * are not one of the five manifest formats the registry serves.
 */
export function parseManifest(raw: Uint8Array, expected: Digest): ParsedManifest {
  const actual = sha256Digest(raw);
  if (actual !== expected) throw new ManifestError(`content hashes to ${actual}`);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
  } catch {
    throw new ManifestError('not JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ManifestError('not a JSON object');
  const m = doc as Record<string, unknown>;
  const schemaVersion = m.schemaVersion;
  const declared = m.mediaType;
  if (declared !== undefined && typeof declared !== 'string') throw new ManifestError('mediaType is not a string');

  if (schemaVersion === 1) {
    if (declared !== undefined && declared !== MediaTypes.schema1 && declared !== MediaTypes.schema1Signed) {
      throw new ManifestError(`unknown media type ${declared} for schemaVersion 1`);
    }
    const fsLayers = m.fsLayers;
    if (!Array.isArray(fsLayers)) throw new ManifestError('schema1 manifest without fsLayers');
    const references = fsLayers.map((l, i) => {
      const sum = (l as { blobSum?: unknown } | null)?.blobSum;
      if (typeof sum !== 'string' || !isDigest(sum)) throw new ManifestError(`fsLayers[${i}] has no valid sha256 blobSum`);
      return sum;
    });
    return { digest: expected, mediaType: declared ?? MediaTypes.schema1Signed, kind: 'schema1', references, children: [] };
  }
  if (schemaVersion !== 2) throw new ManifestError(`unsupported schemaVersion ${JSON.stringify(schemaVersion)}`);

  // The registry identifies a manifest without mediaType by shape: manifests[] is an index, else an image.
  const mediaType = declared ?? (Array.isArray(m.manifests) ? MediaTypes.ociIndex : MediaTypes.ociManifest);
  const subject = m.subject === undefined ? undefined : descriptorDigest(m.subject, 'subject');
  switch (mediaType) {
    case MediaTypes.dockerManifest:
    case MediaTypes.ociManifest: {
      const config = descriptorDigest(m.config, 'config');
      const layers = m.layers === undefined && mediaType === MediaTypes.ociManifest ? [] : descriptorList(m.layers, 'layers');
      return { digest: expected, mediaType, kind: 'image', references: [config, ...layers], children: [], subject };
    }
    case MediaTypes.dockerList:
    case MediaTypes.ociIndex: {
      const children = descriptorList(m.manifests, 'manifests');
      return { digest: expected, mediaType, kind: 'index', references: children, children, subject };
    }
    default:
      throw new ManifestError(`unknown media type ${mediaType}`);
  }
}

/** A revision's manifest as a scan reads it: parsed, its blob missing, or why it cannot be read. */
export type ManifestRead = { manifest: ParsedManifest } | { missing: true } | { error: string };

/** The bytes of a manifest's blob as a scan reads them (undefined: no blob): what is not a manifest is an error, not a throw. */
export function manifestRead(raw: Uint8Array | undefined, digest: Digest): ManifestRead {
  if (raw === undefined) return { missing: true };
  try {
    return { manifest: parseManifest(raw, digest) };
  } catch (error) {
    if (error instanceof ManifestError) return { error: error.message };
    throw error;
  }
}
