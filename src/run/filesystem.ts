/**
 * A run on a filesystem root, from the confirmation on: removals into a trash
 * (one per filesystem the tree spans), swaps where many entries of one
 * directory go, the own sweep or garbage-collect in the window, the links
 * and history entries after it, then the trash emptied and the tree scanned
 * again. What the sweep asks of a storage (RunStorage), for a filesystem.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type ApplyResult, type PreparedApply, applyPlan, prepareApply, removeIndexEntries } from '../apply/apply.js';
import { type BlobSweepResult, type LayerLinks, SweptBlobs, sweepBlobs, sweepLayerLinks } from '../apply/blobSweep.js';
import { QUARANTINE_JOURNAL, Remover, type SwapCandidate, emptyTrash, quarantineExpiry, trashFor } from '../apply/trash.js';
import { removeUploads } from '../apply/uploads.js';
import { exclusively, findings } from '../exclusiveRun.js';
import { RollbackError } from '../errors.js';
import type { GcDecision } from '../gc/garbageCollect.js';
import type { TreePlan } from '../plan/planTree.js';
import { findStaleUploads } from '../storage/fs/uploads.js';
import { readPullIndexFile, writePullIndexFile } from '../storage/fs/pullIndexFile.js';
import { PULL_INDEX_NAME } from '../storage/pullIndexStore.js';
import { otherFilesystems } from '../storage/fs/filesystems.js';
import { findRepositories, requireRegistryRoot } from '../storage/fs/scan.js';
import type { ScanPool } from '../storage/fs/scanPool.js';
import { filesystemSource } from '../storage/fs/source.js';
import { WORTH } from '../storage/fs/swap.js';
import { requireWritableStorage } from '../storage/fs/writable.js';
import { BLOB_FILE, LINK_FILE, Layout } from '../storage/layout.js';
import type { StaleUpload } from '../storage/uploads.js';
import { type GcReport, type RealRun, type RunStorage, builtinReport, collectGarbage, forgetRemoved, inWindow, measureFreed, reportOutcome, unlinkedByRepository } from '../sweep.js';
import { failpoint } from '../util/failpoint.js';
import type { Storage } from './storage.js';

/**
 * While the registry serves again: the tag history entries of removed
 * revisions (nothing reads them) and, with the builtin sweep, the `_layers`
 * links of swept blobs and of blobs gone before the scan (a link without its
 * blob reads as no blob), each left where a push since the window needs it.
 */
async function afterWindow(root: string, outcome: { applied: ApplyResult; swept?: BlobSweepResult }, remover: Remover, links: Omit<LayerLinks, 'taken'> | undefined): Promise<{ layerLinks: number; dangling: number } | undefined> {
  await removeIndexEntries(root, outcome.applied, remover);
  if (!links) return undefined;
  const { swept } = outcome;
  return sweepLayerLinks(root, { ...links, taken: swept?.taken ?? { has: () => false }, repositories: swept ? swept.repositories.map((r) => r.name) : links.repositories }, remover);
}

/** The directories the window may swap: a repository's revisions where many go, a blob prefix directory where many blobs go; each with what it loses. */
function swapCandidates(root: string, apply: PreparedApply, swept: SweptBlobs | undefined): SwapCandidate[] {
  const layout = new Layout(root);
  const removedRepositories = new Set(apply.byRepository.removals.keys());
  const candidates: SwapCandidate[] = [...apply.going]
    .filter(([name, going]) => going.count >= WORTH && !removedRepositories.has(name))
    .map(([name, going]) => ({ dir: layout.pathFor({ kind: 'revisions', name }), removing: (hex) => going.has(hex), leaf: LINK_FILE }));
  const blobs = layout.pathFor({ kind: 'blobAlgorithm' });
  for (const { prefix, count } of swept?.prefixes() ?? []) if (count >= WORTH) candidates.push({ dir: `${blobs}${path.sep}${prefix}`, removing: (hex) => swept?.has(hex) ?? false, leaf: BLOB_FILE });
  return candidates;
}

/**
 * Before the window, what would count inside it: the plan grouped for the
 * apply, the blobs the sweep takes by prefix with their sizes, and the swaps
 * announced with their spares made (and filled).
 */
function prepareWindow(root: string, planned: TreePlan, remover: Remover, uses: { builtin: boolean; cache: boolean }): { apply: PreparedApply; swept: SweptBlobs } {
  const apply = prepareApply(planned.plan);
  // The cache forgets the swept digests in the window: made now too.
  if (uses.cache) planned.sweptDigests();
  const swept = new SweptBlobs(planned.table, (id) => uses.builtin && planned.sweeps(id));
  remover.prepareSwaps(new Layout(root).pathFor({ kind: 'blobAlgorithm' }), swapCandidates(root, apply, uses.builtin ? swept : undefined));
  return { apply, swept };
}

/** regsweep's own sweep, reported as garbage-collect is. */
async function builtinCollect(root: string, planned: TreePlan, remover: Remover, prepared: SweptBlobs, signal: AbortSignal, decision: GcDecision | undefined): Promise<{ gc: GcReport; swept: BlobSweepResult }> {
  const started = Date.now();
  const swept = await sweepBlobs(root, { swept: [], prepared, isMarked: planned.isMarked, sizeOf: planned.sizeOf, remover, signal });
  return { gc: builtinReport(swept.problems[0]?.message ?? null, decision, started), swept };
}

/** Syncs the run's journals; a quarantine that holds nothing (nothing was removed) is not kept. */
function closeRemover(remover: Remover, quarantine: string | undefined): void {
  remover.close();
  if (quarantine && remover.entries === 0) fs.rmSync(quarantine, { recursive: true, force: true });
}

/** The window's work on a filesystem, with the trash and journals it writes; a failed window leaves nothing behind but what a registry that could not be brought back needs. */
async function filesystemWindow(root: string, run: RealRun, remover: Remover, trash: string) {
  const { options, planned, window, decision, stale } = run;
  const { gcRunner, builtin } = options;
  const { plan, predicted } = planned;
  const journal = options.quarantineMs === undefined ? options.journal : path.join(trash, QUARANTINE_JOURNAL);
  const prepared = prepareWindow(root, planned, remover, { builtin: builtin !== undefined, cache: options.blobCache !== undefined });
  const windowed = inWindow(window, options, { trash, trashes: remover.trashes, journal }, async (signal, onStarted) => {
    // The plan was made while the registry served; anything pushed since then voids it.
    const applied = await applyPlan(root, plan, { remover, onChange: 'abort', signal, onProgress: options.onProgress, deferIndexEntries: true, prepared: prepared.apply });
    failpoint('window.applied');
    // A lock taken on a full disk: its record goes on disk now that the removals made room.
    options.lock?.persist();
    const uploads = stale ? await removeUploads(root, stale, remover, signal) : undefined;
    const own = builtin ? (signal: AbortSignal) => builtinCollect(root, planned, remover, prepared.swept, signal, decision) : undefined;
    const collected = await collectGarbage({ runner: gcRunner, own, decision, predicted, applied, signal, onProgress: options.onProgress, onStarted });
    // Before the registry serves again: a cache that still lists swept blobs breaks the next push of them.
    const cache = options.blobCache ? await forgetRemoved(options.blobCache, collected.gc.ran ? planned.sweptDigests() : [], unlinkedByRepository(applied)) : undefined;
    return { applied, uploads, ...collected, cleared: cache?.cleared ?? null, cacheProblem: cache?.problem };
  });
  return windowed.catch((error: unknown) => {
    // The registry serves again: a failed run leaves nothing behind. Not so when it could not be brought back: the watchdog or the next run needs the trash.
    closeRemover(remover, options.quarantineMs !== undefined ? trash : undefined);
    if (!(error instanceof RollbackError)) remover.discard();
    throw error;
  });
}

/** A real run on a filesystem, confirmed: the window, the work after it, the trash emptied, the rescan. */
async function carryOut(root: string, run: RealRun): Promise<void> {
  const { options, report, planned, now } = run;
  const { builtin } = options;
  const trash = trashFor(root, options.quarantineMs);
  // Parts of the tree on other filesystems: a trash in each, since a rename cannot cross into one beside docker/.
  const elsewhere = otherFilesystems(root, planned.repositories);
  const remover = Remover.open(root, { journals: options.journal ? [options.journal] : [], trash, elsewhere });
  const closeJournals = (): void => closeRemover(remover, options.quarantineMs !== undefined ? trash : undefined);
  const { value: outcome, pausedMs, windowMs, broughtBack } = await filesystemWindow(root, run, remover, trash);
  report.windowMs = windowMs;
  report.broughtBack = broughtBack ?? null;
  failpoint('window.ended');
  // Outside the window, what the registry never reads or reads as absent; then the journals are synced.
  const links = builtin ? { repositories: planned.repositories, hadBlob: planned.hadBlob, staleBefore: now - builtin.graceMs } : undefined;
  const linksSwept = await afterWindow(root, outcome, remover, links).then(
    (swept) => {
      closeJournals();
      return swept;
    },
    (error: unknown) => {
      closeJournals();
      remover.discard();
      throw error;
    },
  );

  // Outside the window: the registry already serves again while the removed directories are unlinked.
  failpoint('afterWindow.done');
  await emptyTrash(root, Date.now(), elsewhere);
  if (options.quarantineMs !== undefined && remover.entries > 0) report.quarantine = { path: trash, until: new Date(quarantineExpiry(trash) as number).toISOString() };
  reportOutcome(report, planned, { ...outcome, pausedMs, linksSwept, blobCache: options.blobCache });
  await measureFreed(report, planned, options, { now, gc: outcome.gc, spared: outcome.swept?.spared });
}

/** `--stale-uploads` on a filesystem: found before the window (a dry run lists them), removed in it. */
function staleUploads(root: string, before: number, named: Set<string> | undefined): StaleUpload[] {
  const repositories = findRepositories(new Layout(root), []).filter((r) => !named || named.has(r.name));
  return findStaleUploads(root, repositories, before);
}

/** A storage root on a filesystem, as a run works on it; `pool`: the scan threads the caller started (and closes). */
export function filesystemRun(root: string, pool?: ScanPool): RunStorage {
  const where = new Layout(root).root;
  return {
    where,
    source: filesystemSource(where, pool),
    check: () => requireRegistryRoot(where),
    staleUploads: async (before, named) => staleUploads(where, before, named),
    requests: () => null,
    // Until the rescan the scan threads have nothing to do: their memory is given back meanwhile.
    idle: async () => pool?.rest(),
    carryOut: (run) => carryOut(where, run),
  };
}

/** A storage root on a filesystem, as the CLI drives a run on it. */
export function filesystemStorage(root: string, pool?: ScanPool): Storage {
  return {
    run: filesystemRun(root, pool),
    requireWritable: () => requireWritableStorage(root, 'run'),
    clock: async () => undefined,
    findings: (containers) => findings(root, containers),
    exclusively: (options, body) => exclusively({ ...options, root }, body),
    pullIndex: {
      where: path.join(new Layout(root).root, PULL_INDEX_NAME),
      read: () => readPullIndexFile(root),
      write: (text) => writePullIndexFile(root, text),
    },
    close: () => {},
  };
}
