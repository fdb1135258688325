/**
 * The on-disk layout of a Docker Registry v2 filesystem storage root. This is
 * the only module that joins `_manifests`, `_layers`, `blobs` and friends into
 * paths; everything else names a location with a PathSpec.
 *
 *   <root>/docker/registry/v2/
 *     blobs/sha256/<2 hex>/<hex>/data                                  content, manifests too
 *     repositories/<name>/                                             names nest: a, a/b, a/b/c
 *       _layers/sha256/<hex>/link                                      blob linked into the repo
 *       _manifests/revisions/sha256/<hex>/link                         manifest belongs to the repo
 *       _manifests/tags/<tag>/current/link                             what the tag points at now
 *       _manifests/tags/<tag>/index/sha256/<hex>/link                  every digest the tag ever had
 *       _uploads/<uuid>/...                                            uploads in progress
 *
 * A link file holds exactly `sha256:<64 hex>` with no newline. Names, tags and
 * digests are validated before they become path components, so a PathSpec can
 * never point outside the tree.
 */
import path from 'node:path';
import { LayoutError } from '../errors.js';
import type { Digest } from '../model.js';

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const HEX_RE = /^[0-9a-f]{64}$/;
// distribution's reference grammar: path components separated by '/'.
const COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const MAX_NAME_LENGTH = 255;

/** The one file of a blob's directory, and of a link directory (a revision, a tag index entry, a `_layers` entry). */
export const BLOB_FILE = 'data';
export const LINK_FILE = 'link';

/** The digest a link file or a descriptor names, or undefined if it is not a sha256 digest. */
export function parseDigest(text: string): Digest | undefined {
  return DIGEST_RE.test(text) ? (text as Digest) : undefined;
}

export function isDigest(text: string): text is Digest {
  return DIGEST_RE.test(text);
}

export function digestFromHex(hex: string): Digest | undefined {
  return HEX_RE.test(hex) ? (`sha256:${hex}` as Digest) : undefined;
}

/** What a link holds that is no digest, as a problem says it. */
export function describeCorrupt(content: string): string {
  if (content.length === 0) return 'is empty';
  const shown = JSON.stringify(content.length > 80 ? `${content.slice(0, 80)}…` : content);
  return `holds ${shown}, not a sha256 digest`;
}

export function hexOf(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

export function isRepositoryName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return false;
  return name.split('/').every((component) => COMPONENT_RE.test(component));
}

export function isTagName(tag: string): boolean {
  return TAG_RE.test(tag);
}

/** Where things live. Every spec is validated by pathFor before it becomes a path. */
export type PathSpec =
  | { kind: 'v2' }
  | { kind: 'blobs' }
  | { kind: 'blobAlgorithm' }
  | { kind: 'blobDir'; digest: Digest }
  | { kind: 'blobData'; digest: Digest }
  | { kind: 'repositories' }
  | { kind: 'repository'; name: string }
  | { kind: 'layers'; name: string }
  | { kind: 'layerLink'; name: string; digest: Digest }
  | { kind: 'layerAlgorithm'; name: string }
  | { kind: 'layerDir'; name: string; digest: Digest }
  | { kind: 'uploads'; name: string }
  | { kind: 'uploadDir'; name: string; id: string }
  | { kind: 'uploadStartedAt'; name: string; id: string }
  | { kind: 'uploadData'; name: string; id: string }
  | { kind: 'manifests'; name: string }
  | { kind: 'revisions'; name: string }
  | { kind: 'revisionDir'; name: string; digest: Digest }
  | { kind: 'revisionLink'; name: string; digest: Digest }
  | { kind: 'tags'; name: string }
  | { kind: 'tag'; name: string; tag: string }
  | { kind: 'tagCurrentLink'; name: string; tag: string }
  | { kind: 'tagIndex'; name: string; tag: string }
  | { kind: 'tagIndexEntryDir'; name: string; tag: string; digest: Digest }
  | { kind: 'tagIndexEntryLink'; name: string; tag: string; digest: Digest };

/** An upload's id as the registry makes them (a UUID); anything else is no upload directory of its. */
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Path components of a spec below the storage root (the `rootdirectory`). */
function componentsFor(spec: PathSpec): string[] {
  const v2 = ['docker', 'registry', 'v2'];
  const repo = (name: string): string[] => {
    if (!isRepositoryName(name)) throw new LayoutError(`invalid repository name: ${JSON.stringify(name)}`);
    return [...v2, 'repositories', ...name.split('/')];
  };
  const hex = (digest: Digest): string => {
    if (!isDigest(digest)) throw new LayoutError(`invalid digest: ${JSON.stringify(digest)}`);
    return hexOf(digest);
  };
  const tagDir = (name: string, tag: string): string[] => {
    if (!isTagName(tag)) throw new LayoutError(`invalid tag: ${JSON.stringify(tag)}`);
    return [...repo(name), '_manifests', 'tags', tag];
  };
  switch (spec.kind) {
    case 'v2':
      return v2;
    case 'blobs':
      return [...v2, 'blobs'];
    case 'blobAlgorithm':
      return [...v2, 'blobs', 'sha256'];
    case 'blobDir': {
      const h = hex(spec.digest);
      return [...v2, 'blobs', 'sha256', h.slice(0, 2), h];
    }
    case 'blobData':
      return [...componentsFor({ kind: 'blobDir', digest: spec.digest }), BLOB_FILE];
    case 'repositories':
      return [...v2, 'repositories'];
    case 'repository':
      return repo(spec.name);
    case 'layers':
      return [...repo(spec.name), '_layers'];
    case 'layerAlgorithm':
      return [...repo(spec.name), '_layers', 'sha256'];
    case 'layerDir':
      return [...repo(spec.name), '_layers', 'sha256', hex(spec.digest)];
    case 'layerLink':
      return [...repo(spec.name), '_layers', 'sha256', hex(spec.digest), 'link'];
    case 'uploads':
      return [...repo(spec.name), '_uploads'];
    case 'uploadDir':
      if (!UPLOAD_ID.test(spec.id)) throw new LayoutError(`invalid upload id: ${JSON.stringify(spec.id)}`);
      return [...repo(spec.name), '_uploads', spec.id];
    case 'uploadStartedAt':
      return [...componentsFor({ kind: 'uploadDir', name: spec.name, id: spec.id }), 'startedat'];
    case 'uploadData':
      return [...componentsFor({ kind: 'uploadDir', name: spec.name, id: spec.id }), 'data'];
    case 'manifests':
      return [...repo(spec.name), '_manifests'];
    case 'revisions':
      return [...repo(spec.name), '_manifests', 'revisions', 'sha256'];
    case 'revisionDir':
      return [...repo(spec.name), '_manifests', 'revisions', 'sha256', hex(spec.digest)];
    case 'revisionLink':
      return [...repo(spec.name), '_manifests', 'revisions', 'sha256', hex(spec.digest), LINK_FILE];
    case 'tags':
      return [...repo(spec.name), '_manifests', 'tags'];
    case 'tag':
      return tagDir(spec.name, spec.tag);
    case 'tagCurrentLink':
      return [...tagDir(spec.name, spec.tag), 'current', 'link'];
    case 'tagIndex':
      return [...tagDir(spec.name, spec.tag), 'index', 'sha256'];
    case 'tagIndexEntryDir':
      return [...tagDir(spec.name, spec.tag), 'index', 'sha256', hex(spec.digest)];
    case 'tagIndexEntryLink':
      return [...tagDir(spec.name, spec.tag), 'index', 'sha256', hex(spec.digest), 'link'];
  }
}

/** A storage root: the registry's `rootdirectory`, the directory that holds `docker/registry/v2`. */
export class Layout {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  /** Components are validated names, so a plain join is already normal (path.join costs more than the rename it names). */
  pathFor(spec: PathSpec): string {
    const base = this.root.endsWith(path.sep) ? this.root : `${this.root}${path.sep}`;
    return `${base}${componentsFor(spec).join(path.sep)}`;
  }

  /** The same location relative to the root, with '/' separators: what journals record. */
  relativePathFor(spec: PathSpec): string {
    return componentsFor(spec).join('/');
  }

  /** Turns a root-relative path from a journal back into an absolute one, refusing anything outside the tree. */
  resolveRelative(relative: string): string {
    const absolute = path.resolve(this.root, relative);
    const v2 = this.pathFor({ kind: 'v2' });
    if (!absolute.startsWith(v2 + path.sep)) {
      throw new LayoutError(`path outside the registry tree: ${relative}`);
    }
    return absolute;
  }
}

/**
 * Paths inside one repository and the blob store, for the scanner's hot loop:
 * the repository's directories are built (and validated) once, and each link
 * or blob path is then one concatenation of a validated component. pathFor
 * would validate the name and normalise the path again for each of the tens of
 * thousands of links a large repository holds.
 */
export class ScanPaths {
  readonly revisions: string;
  readonly tags: string;
  private readonly blobs: string;

  constructor(layout: Layout, name: string) {
    this.revisions = layout.pathFor({ kind: 'revisions', name });
    this.tags = layout.pathFor({ kind: 'tags', name });
    this.blobs = layout.pathFor({ kind: 'blobAlgorithm' });
  }

  /** An entry of a directory this class named: `dir/entry`. */
  static child(dir: string, entry: string): string {
    return `${dir}${path.sep}${entry}`;
  }

  revisionLink(digest: Digest): string {
    return `${this.revisions}${path.sep}${checkedHex(digest)}${path.sep}link`;
  }

  tag(tag: string): string {
    if (!isTagName(tag)) throw new LayoutError(`invalid tag: ${JSON.stringify(tag)}`);
    return `${this.tags}${path.sep}${tag}`;
  }

  /** `tagDir` is what tag() returned. */
  static tagCurrentLink(tagDir: string): string {
    return `${tagDir}${path.sep}current${path.sep}link`;
  }

  static tagIndex(tagDir: string): string {
    return `${tagDir}${path.sep}index${path.sep}sha256`;
  }

  /** `indexDir` is what tagIndex() returned. */
  static tagIndexEntryLink(indexDir: string, digest: Digest): string {
    return `${indexDir}${path.sep}${checkedHex(digest)}${path.sep}link`;
  }

  blobData(digest: Digest): string {
    const hex = checkedHex(digest);
    return ScanPaths.blobDataIn(ScanPaths.child(this.blobs, hex.slice(0, 2)), hex);
  }

  /**
   * The data file of entry `entry` of a blob prefix directory (a child of
   * blobAlgorithm). Not validated: the blob scan stats it for any entry, to
   * report one at a path garbage-collect would abort on.
   */
  static blobDataIn(prefixDir: string, entry: string): string {
    return `${prefixDir}${path.sep}${entry}${path.sep}data`;
  }
}

function checkedHex(digest: Digest): string {
  if (!isDigest(digest)) throw new LayoutError(`invalid digest: ${JSON.stringify(digest)}`);
  return hexOf(digest);
}

