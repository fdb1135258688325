/**
 * regsweep's own sweep (`--gc builtin`), inside the maintenance window and
 * after the plan's removals: the blobs its mark says nothing references go
 * into the trash (by swaps where most of a prefix directory goes); their
 * `_layers` links (as 3.x garbage-collect removes them) and the unlinking
 * follow after the registry serves again.
 *
 * Safer than the registry's sweep against what happened since the scan: every
 * revision the tree holds now whose manifest the mark did not reach (pushed
 * since the scan, or pushed again) is read, and what it references is spared.
 * Blobs newer than the grace were already left out of the prediction.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Digest, FoundRepository, Problem } from '../model.js';
import { DigestTable } from '../storage/digestTable.js';
import { Layout, digestFromHex } from '../storage/layout.js';
import { parseManifest } from '../storage/manifest.js';
import { mtimeOf, names, readBytes, readLink } from '../storage/fs/read.js';
import { findRepositories } from '../storage/fs/scan.js';
import { failpoint } from '../util/failpoint.js';
import type { Remover } from './trash.js';

/** Names (hex digests) looked up without a set of strings. */
export interface HexSet {
  has(hex: string): boolean;
}

const TO_TAKE = 1;
const TAKEN = 2;

/**
 * The blobs the sweep is to take, as a state per id of a digest table (the
 * scan's own: a byte per blob where a map of names took a hundred), with a
 * count per prefix directory: made before the window from the mark's
 * prediction, so that the window only looks names up. The window's re-mark
 * takes out what revisions pushed since still need (spare). Used once.
 */
export class SweptBlobs {
  /** Per digest id: TO_TAKE, TAKEN, or 0. */
  private readonly state: Uint8Array;
  /** Blobs still to take per prefix directory (its first byte). */
  private readonly counts = new Int32Array(256);
  readonly spared = { blobs: 0, bytes: 0 };
  /** The blobs taken (take), by name. */
  readonly taken: HexSet = { has: (hex) => this.stateOf(hex) === TAKEN };

  constructor(
    private readonly table: DigestTable,
    sweeps: (id: number) => boolean,
  ) {
    this.state = new Uint8Array(table.count);
    for (let id = 0; id < table.count; id++) {
      if (!sweeps(id)) continue;
      this.state[id] = TO_TAKE;
      this.count(id, 1);
    }
  }

  /** From digests and their sizes, in a table of their own (tests, small trees). */
  static of(digests: readonly Digest[], sizeOf: (digest: Digest) => number): SweptBlobs {
    const table = new DigestTable();
    for (const digest of digests) table.setSize(table.id(digest), sizeOf(digest));
    return new SweptBlobs(table, () => true);
  }

  /** The prefix directories that hold blobs to take, with how many. */
  prefixes(): Array<{ prefix: string; count: number }> {
    const out: Array<{ prefix: string; count: number }> = [];
    this.counts.forEach((count, byte) => {
      if (count > 0) out.push({ prefix: byte.toString(16).padStart(2, '0'), count });
    });
    return out;
  }

  /** Every blob still to take, as its digest: where a sweep removes by name (a bucket's keys) rather than by listing. */
  *toTake(): Generator<Digest> {
    for (let id = 0; id < this.state.length; id++) if (this.state[id] === TO_TAKE) yield this.table.digest(id);
  }

  /** Is the blob named `hex` still to be taken? */
  has(hex: string): boolean {
    return this.stateOf(hex) === TO_TAKE;
  }

  /** The blob named `hex` was taken: its size. */
  take(hex: string): number {
    const id = this.idOf(hex);
    if (id < 0 || this.state[id] !== TO_TAKE) return 0;
    this.state[id] = TAKEN;
    return this.table.size(id);
  }

  /** A predicted blob that something found since the scan needs: it stays. */
  spare(digest: Digest): void {
    const id = this.table.find(digest);
    if (id < 0 || this.state[id] !== TO_TAKE) return;
    this.state[id] = 0;
    this.count(id, -1);
    this.spared.blobs++;
    this.spared.bytes += this.table.size(id);
  }

  private count(id: number, by: number): void {
    const prefix = this.table.firstByte(id);
    this.counts[prefix] = (this.counts[prefix] as number) + by;
  }

  private idOf(hex: string): number {
    const digest = digestFromHex(hex);
    return digest ? this.table.find(digest) : -1;
  }

  private stateOf(hex: string): number {
    const id = this.idOf(hex);
    return id < 0 ? 0 : (this.state[id] as number);
  }
}

export interface BlobSweepOptions {
  /** What the mark predicts the sweep frees. */
  swept: readonly Digest[];
  /** The same, grouped before the window (made from `swept` and `sizeOf` when absent). */
  prepared?: SweptBlobs;
  /** Did the scan's mark reach this digest? */
  isMarked(digest: Digest): boolean;
  /** The size of a blob's data as scanned. */
  sizeOf(digest: Digest): number;
  /** Moves swept directories into the trash (beside docker/, on the same filesystem), journaled in a quarantine. */
  remover: Remover;
  signal?: AbortSignal;
}

export interface BlobSweepResult {
  /** Blobs (and their bytes) taken out of the tree. */
  blobs: number;
  bytes: number;
  /** Revisions found since the scan whose manifests were read and marked. */
  remarked: number;
  /** Predicted blobs those revisions still need: left in place. */
  spared: { blobs: number; bytes: number };
  /** The hex of every blob taken out, and the repositories found in the window: for sweepLayerLinks. */
  taken: HexSet;
  repositories: readonly FoundRepository[];
  /** A revision found since the scan that could not be read: nothing was swept. */
  problems: Problem[];
}

/** A revision of `repo` the mark did not reach: its manifest's digest and references, or why it cannot be read. */
function unmarkedRevision(layout: Layout, repo: FoundRepository, digest: Digest): { needs: Digest[] } | { problem: Problem } | undefined {
  const link = readLink(layout.pathFor({ kind: 'revisionLink', name: repo.name, digest }));
  if ('missing' in link) return undefined; // no link file: garbage-collect ignores the directory too
  if ('corrupt' in link || link.digest !== digest) {
    return { problem: { repository: repo.name, message: `revision ${digest}, linked since the scan, has a corrupt link: nothing was swept`, blocksGc: true } };
  }
  const raw = readBytes(layout.pathFor({ kind: 'blobData', digest }));
  if (raw === undefined) return undefined; // its blob is gone: garbage-collect skips it, and it protects nothing
  try {
    return { needs: [digest, ...parseManifest(raw, digest).references] };
  } catch (error) {
    return { problem: { repository: repo.name, message: `revision ${digest}, linked since the scan, cannot be read (${(error as Error).message}): nothing was swept`, blocksGc: true } };
  }
}

/**
 * Reads every revision of every repository that the mark did not reach and
 * takes what it needs out of `swept`. Returns how many were read, or the
 * problem that stops the sweep.
 */
function remark(layout: Layout, repositories: readonly FoundRepository[], swept: SweptBlobs, options: BlobSweepOptions): { remarked: number } | { problem: Problem } {
  let remarked = 0;
  for (const repo of repositories) {
    for (const hex of names(layout.pathFor({ kind: 'revisions', name: repo.name }))) {
      const digest = digestFromHex(hex);
      if (!digest || options.isMarked(digest)) continue;
      const revision = unmarkedRevision(layout, repo, digest);
      if (!revision) continue;
      if ('problem' in revision) return revision;
      remarked++;
      for (const needed of revision.needs) swept.spare(needed);
    }
  }
  return { remarked };
}

export async function sweepBlobs(root: string, options: BlobSweepOptions): Promise<BlobSweepResult> {
  const layout = new Layout(root);
  const repositories = findRepositories(layout, []);
  const swept = options.prepared ?? SweptBlobs.of(options.swept, options.sizeOf);
  const result: BlobSweepResult = { blobs: 0, bytes: 0, remarked: 0, spared: swept.spared, taken: swept.taken, repositories, problems: [] };
  const checked = remark(layout, repositories, swept, options);
  if ('problem' in checked) return { ...result, spared: { blobs: 0, bytes: 0 }, problems: [checked.problem] };
  result.remarked = checked.remarked;
  const { remover } = options;
  const blobs = layout.pathFor({ kind: 'blobAlgorithm' });
  for (const { prefix } of swept.prefixes()) {
    options.signal?.throwIfAborted();
    for (const hex of await remover.takeEntries(`${blobs}${path.sep}${prefix}`, (name) => swept.has(name), 'swept')) {
      result.blobs++;
      result.bytes += swept.take(hex);
    }
    failpoint('blobSweep.prefix');
  }
  return result;
}

/** What sweepLayerLinks looks at. */
export interface LayerLinks {
  /** The hex of every blob this run's sweep took. */
  taken: HexSet;
  /** The repositories to look in: those the window found (a repository made since holds no link of a taken blob unless it pushed that blob again). */
  repositories: readonly string[];
  /** Was there a blob with this digest when the scan ran? */
  hadBlob(digest: Digest): boolean;
  /** A link whose blob was gone already at the scan goes only when last written before this (ms since the epoch: the grace). */
  staleBefore: number;
}

/**
 * After the window, while the registry serves: the `_layers` links of the
 * blobs sweepBlobs took, as 3.x garbage-collect removes them, and the links
 * whose blob was gone already when the scan ran and that were last written
 * before the grace (a run that died after its sweep left them: the next run
 * finishes its work). A dangling link is harmless meanwhile (the registry
 * finds no blob behind it and answers unknown, so a client uploads it again);
 * a link whose blob was pushed again since stays.
 */
export function sweepLayerLinks(root: string, links: LayerLinks, remover: Remover): { layerLinks: number; dangling: number } {
  const layout = new Layout(root);
  const swept = { layerLinks: 0, dangling: 0 };
  for (const name of links.repositories) {
    const dir = layout.pathFor({ kind: 'layerAlgorithm', name });
    for (const hex of names(dir)) {
      const digest = digestFromHex(hex);
      if (!digest) continue;
      const taken = links.taken.has(hex);
      if (!taken && links.hadBlob(digest)) continue;
      const data = layout.pathFor({ kind: 'blobData', digest });
      if (!taken && (fs.existsSync(data) || !((mtimeOf(layout.pathFor({ kind: 'layerLink', name, digest })) ?? Infinity) < links.staleBefore))) continue;
      if (!remover.sweepUnless(`${dir}${path.sep}${hex}`, () => fs.existsSync(data))) continue;
      if (taken) swept.layerLinks++;
      else swept.dangling++;
    }
  }
  return swept;
}
