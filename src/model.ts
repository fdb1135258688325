/**
 * The shapes every part of regsweep speaks in: what the scan finds in a
 * storage tree, what a manifest references, what the prediction and the
 * progress sink carry. This module imports nothing of regsweep's, so any
 * module may import it without making a cycle.
 */

/** A sha256 digest as the registry writes it in link files: `sha256:<64 lowercase hex>`. */
export type Digest = `sha256:${string}`;

/** Something regsweep found and did not understand or could not do; the repository it names is spared. */
export interface Problem {
  repository?: string;
  path?: string;
  message: string;
  /** The registry's garbage-collect would abort, or mis-mark, on this: collecting is unsafe until it is fixed. */
  blocksGc?: boolean;
}

export interface TagState {
  name: string;
  /** The digest of current/link; undefined when it is missing or corrupt (see problems). */
  current?: Digest;
  /** Digests in the tag's index/ (its history, the current one included). */
  index: Digest[];
  /** With ScanOptions.times: when the tag was last pushed (mtime of current/link). */
  pushedMs?: number;
  /** With ScanOptions.times: when the tag got each digest of its index (mtime of its link). */
  indexTimes?: Record<string, number>;
}

/** A directory of repositories/ that holds `_layers` (what 2.x enumerates) or `_manifests` (3.x). */
export interface FoundRepository {
  name: string;
  hasLayers: boolean;
  hasManifests: boolean;
}

export interface RepositoryState extends FoundRepository {
  hasTagsDir: boolean;
  tags: TagState[];
  /** Manifests linked into the repository (`_manifests/revisions`). */
  revisions: Digest[];
  /** Why this repository must not be touched; empty when it is understood. */
  problems: Problem[];
}

type ManifestKind = 'image' | 'index' | 'schema1';

export interface ParsedManifest {
  digest: Digest;
  mediaType: string;
  kind: ManifestKind;
  /** Blobs garbage-collect marks when this manifest is a revision: config + layers, children, or fsLayers. */
  references: Digest[];
  /** Child manifests of a list or index. */
  children: Digest[];
  /** The manifest this one is a referrer of (signature, SBOM, attestation). */
  subject?: Digest;
}

/** Blobs found under some prefix directories: 32 bytes of digest and a size per blob. */
export interface BlobPart {
  digests: Uint8Array;
  sizes: Float64Array;
  /** Indexes of the blobs whose data is newer than the scan was asked to note (`recentAfter`). */
  recent: number[];
  problems: Problem[];
}

/** The repositories, tags and manifests (revisions) of a tree. */
export interface Counts {
  repositories: number;
  tags: number;
  manifests: number;
}

export interface Totals extends Counts {
  blobs: number;
  bytes: number;
}

/** What garbage-collect's sweep frees. */
export interface Prediction {
  blobs: number;
  bytes: number;
  /** Unreferenced blobs regsweep's own sweep leaves, their data being newer than the grace allows (`--gc builtin`). */
  recent: { blobs: number; bytes: number };
  /** When non-empty, garbage-collect must not run (it would abort or mis-mark) and frees nothing. */
  blockedBy: Problem[];
}

/** What the core reports while it works. The core only calls a sink; the CLI decides whether anything is drawn. */
export type Phase = 'scan' | 'apply' | 'collect' | 'rescan';

export interface ProgressEvent {
  phase: Phase;
  /** Items done so far in this phase (repositories, removals, marked blobs). */
  done: number;
  total?: number;
  /** A short word on what is counted. */
  unit: string;
}

export type ProgressSink = (event: ProgressEvent) => void;
