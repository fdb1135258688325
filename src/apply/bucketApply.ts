/**
 * A plan carried out on a registry's bucket, inside the maintenance window:
 * what applyPlan and sweepBlobs do on a filesystem, as batched DeleteObjects.
 *
 * One flat listing of `repositories/` first (every key, kept this time): the
 * re-check of the plan's tags against the current links, as on a filesystem
 * (a tag that moved, appeared or went since the scan voids the plan: nothing
 * is removed), and the keys each removal takes. Then the plan's removals in
 * one batched removal: repositories (their own `_manifests`, `_layers` and
 * `_uploads` keys), tags, tag history entries and revision links. Only when
 * every one of them went does the own sweep follow: the revisions the mark
 * did not reach (pushed since the scan) are read and what they need is
 * spared, then the swept blobs' `data` keys go, then the `_layers` links of
 * the blobs that went, and links whose blob was gone already at the scan and
 * that are older than the grace (each only while its blob is still absent).
 *
 * A removal the server refuses is a problem of the report, never counted as
 * removed; a refused plan removal stops the sweep (a revision still linked
 * keeps what it references). S3 deletes are idempotent, so a run that died
 * halfway leaves what the next run's plan removes again: no journal.
 */
import { TreeChangedError } from '../errors.js';
import { failpoint } from '../util/failpoint.js';
import type { Digest, FoundRepository, Problem, ProgressSink } from '../model.js';
import type { Plan, PlannedIndexEntry, PlannedManifest } from '../plan/planner.js';
import { Layout, digestFromHex } from '../storage/layout.js';
import { parseManifest } from '../storage/manifest.js';
import type { BucketClient } from '../storage/s3/client.js';
import { linkContent, listRepositoryKeys } from '../storage/s3/inventory.js';
import { BucketKeys } from '../storage/s3/keys.js';
import { type Limit, bounded, readObject } from '../storage/s3/listing.js';
import { type Removal, removeKeys, removeUnless } from '../storage/s3/remove.js';
import type { RepositoryKeys } from '../storage/s3/repositoryKeys.js';
import { abortMultipart, staleUploadsIn } from '../storage/s3/uploads.js';
import type { StaleUpload } from '../storage/uploads.js';
import { type ApplyResult, type PreparedApply, emptyResult, positionsIn, prepareApply, tagsChanged } from './apply.js';
import type { BlobSweepResult, SweptBlobs } from './blobSweep.js';

/** What the own sweep needs of the scan's mark (`--gc builtin`). */
interface BucketSweep {
  swept: SweptBlobs;
  isMarked(digest: Digest): boolean;
  /** Was there a blob with this digest when the scan ran? */
  hadBlob(digest: Digest): boolean;
  /** A `_layers` link whose blob was gone at the scan goes only when last written before this (the grace). */
  staleBefore: number;
}

export interface BucketApplyOptions {
  client: BucketClient;
  /** Requests in flight at once (default 16). */
  concurrency?: number;
  prepared?: PreparedApply;
  sweep?: BucketSweep;
  /** `--stale-uploads`: uploads started before this (ms since the epoch) go, in these repositories (all when absent). */
  uploads?: { before: number; repositories?: ReadonlySet<string> };
  signal?: AbortSignal;
  onProgress?: ProgressSink;
}

export interface BucketWindowResult {
  applied: ApplyResult;
  /** The own sweep, when there was one. */
  swept?: BlobSweepResult;
  links: { layerLinks: number; dangling: number };
  /** With `uploads`: the stale uploads removed. */
  uploads?: StaleUpload[];
  /** Keys the server refused, and a sweep left undone because of them. */
  problems: Problem[];
}

/** The keys of a sorted list that start with `prefix`. */
function keysUnder(sorted: readonly string[], prefix: string): string[] {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((sorted[mid] as string) < prefix) low = mid + 1;
    else high = mid;
  }
  const out: string[] = [];
  for (let i = low; i < sorted.length && (sorted[i] as string).startsWith(prefix); i++) out.push(sorted[i] as string);
  return out;
}

/** The tags of a repository as its keys are now: each tag's current digest, undefined where its link is missing or unreadable. */
async function currentTags(client: BucketClient, limit: Limit, repo: RepositoryKeys | undefined, expected: Record<string, Digest>): Promise<Record<string, Digest | undefined>> {
  const now: Record<string, Digest | undefined> = {};
  await Promise.all(
    [...(repo?.tags ?? new Map())].map(async ([tag, keys]) => {
      const want = expected[tag];
      const content = keys.current ? await linkContent(client, limit, keys.current, want ? [want] : []) : undefined;
      now[tag] = content && 'digest' in content ? content.digest : undefined;
    }),
  );
  return now;
}

/** The re-check before any removal (as apply.ts's): throws when a tag the plan read moved, went or appeared. */
async function recheck(client: BucketClient, limit: Limit, plan: Plan, repos: ReadonlyMap<string, RepositoryKeys>): Promise<void> {
  const changed: string[] = [];
  await Promise.all(
    plan.checks.map(async (check) => {
      const why = tagsChanged(check, await currentTags(client, limit, repos.get(check.repository), check.tags));
      if (why) changed.push(`${check.repository}: ${why}`);
    }),
  );
  if (changed.length > 0) throw new TreeChangedError(`the registry changed since the scan, nothing was removed (${changed.sort().join('; ')})`);
}

/** The plan's removals as keys, and the apply's result listing them (as applyPlan's lists would). */
function planKeys(plan: Plan, prepared: PreparedApply, keys: BucketKeys, repos: ReadonlyMap<string, RepositoryKeys>): { keys: string[]; result: ApplyResult } {
  const result = emptyResult(new Layout('/'), plan);
  const out: string[] = [];
  const own = (name: string): readonly string[] => repos.get(name)?.keys ?? [];
  const planned = prepared.byRepository;
  for (const { repository: name } of plan.checks) {
    const manifests = planned.manifests.get(name) ?? [];
    const removal = planned.removals.get(name);
    if (removal) {
      // Only its own keys: repositories nested below it keep theirs.
      for (const kind of ['manifests', 'layers', 'uploads'] as const) out.push(...keysUnder(own(name), keys.dirFor({ kind, name })));
      result.repositories.push(removal);
      result.tags.push(...(planned.tags.get(name) ?? []));
    } else {
      for (const tag of planned.tags.get(name) ?? []) {
        out.push(...keysUnder(own(name), keys.dirFor({ kind: 'tag', name, tag: tag.tag })));
        result.tags.push(tag);
      }
      for (const i of positionsIn(planned.indexEntries.get(name) ?? [])) {
        const entry = plan.indexEntries.at(i) as PlannedIndexEntry;
        out.push(...keysUnder(own(name), keys.dirFor({ kind: 'tagIndexEntryDir', name, tag: entry.tag, digest: entry.digest })));
        result.indexEntries.push(entry);
      }
      for (const i of positionsIn(manifests)) out.push(...keysUnder(own(name), keys.dirFor({ kind: 'revisionDir', name, digest: plan.manifests.table.digest(plan.manifests.digestIdAt(i)) })));
    }
    for (const i of positionsIn(manifests)) result.manifests.push(plan.manifests.at(i) as PlannedManifest);
  }
  result.removals = out.length;
  return { keys: out, result };
}

function refused(removal: Removal, keys: BucketKeys, what: string): Problem[] {
  return removal.failed.map((f) => ({ path: keys.display(f.key), message: `${what} not removed: the server answered ${f.code}${f.message ? ` (${f.message})` : ''}` }));
}

/** A revision linked now that the mark did not reach: what it references, or why it cannot be read. */
async function unmarkedNeeds(client: BucketClient, limit: Limit, keys: BucketKeys, repo: RepositoryKeys, digest: Digest): Promise<Digest[] | Problem | undefined> {
  const link = repo.revisions.get(digest.slice('sha256:'.length))?.link;
  if (!link) return undefined; // no link: garbage-collect ignores the directory too
  const content = await linkContent(client, limit, link, [digest]);
  if (!('digest' in content) || content.digest !== digest) return { repository: repo.name, message: `revision ${digest}, linked since the scan, has a corrupt link: nothing was swept`, blocksGc: true };
  const raw = await readObject(client, limit, keys.keyFor({ kind: 'blobData', digest }));
  if (raw === undefined) return undefined; // its blob is gone: it protects nothing
  try {
    return [digest, ...parseManifest(raw, digest).references];
  } catch (error) {
    return { repository: repo.name, message: `revision ${digest}, linked since the scan, cannot be read (${(error as Error).message}): nothing was swept`, blocksGc: true };
  }
}

/** Reads every revision still linked that the mark did not reach and the apply did not remove, and spares what it needs. */
async function remark(client: BucketClient, limit: Limit, keys: BucketKeys, repos: readonly RepositoryKeys[], gone: (repo: string, hex: string) => boolean, sweep: BucketSweep): Promise<number | Problem> {
  const reads: Array<Promise<Digest[] | Problem | undefined>> = [];
  for (const repo of repos) {
    for (const hex of repo.revisions.keys()) {
      const digest = digestFromHex(hex);
      if (!digest || sweep.isMarked(digest) || gone(repo.name, hex)) continue;
      reads.push(unmarkedNeeds(client, limit, keys, repo, digest));
    }
  }
  let remarked = 0;
  for (const needs of await Promise.all(reads)) {
    if (needs === undefined) continue;
    if (!Array.isArray(needs)) return needs;
    remarked++;
    for (const digest of needs) sweep.swept.spare(digest);
  }
  return remarked;
}

/** The swept blobs' data, then their `_layers` links and the dangling old ones (each only while its blob is absent). */
async function sweepBucket(client: BucketClient, keys: BucketKeys, repos: readonly RepositoryKeys[], sweep: BucketSweep, concurrency: number): Promise<{ blobs: number; bytes: number; links: BucketWindowResult['links']; problems: Problem[] }> {
  const data = new Map<string, string>();
  for (const digest of sweep.swept.toTake()) data.set(keys.keyFor({ kind: 'blobData', digest }), digest.slice('sha256:'.length));
  const removed = await removeKeys(client, data.keys(), { concurrency });
  failpoint('bucket.swept');
  let bytes = 0;
  for (const key of removed.removed) bytes += sweep.swept.take(data.get(key) as string);
  const taken = sweep.swept.taken;
  const links: string[] = [];
  const dangling: Array<{ key: string; unless: string }> = [];
  for (const repo of repos) {
    for (const [hex, link] of repo.layerLinks ?? []) {
      const digest = digestFromHex(hex);
      if (!digest) continue;
      if (taken.has(hex)) links.push(link.key);
      else if (!sweep.hadBlob(digest) && link.modified < sweep.staleBefore) dangling.push({ key: link.key, unless: keys.keyFor({ kind: 'blobData', digest }) });
    }
  }
  const unlinked = await removeKeys(client, links, { concurrency });
  const old = await removeUnless(client, dangling, { concurrency });
  const problems = [...refused(removed, keys, 'swept blob'), ...refused(unlinked, keys, '_layers link'), ...refused(old, keys, '_layers link')];
  return { blobs: removed.removed.length, bytes, links: { layerLinks: unlinked.removed.length, dangling: old.removed.length }, problems };
}

/** `--stale-uploads`: removes the stale uploads of `repos` (their refused keys into `problems`); returns those that went whole. */
async function removeStaleUploads(client: BucketClient, limit: Limit, repos: readonly RepositoryKeys[], wanted: NonNullable<BucketApplyOptions['uploads']>, problems: Problem[]): Promise<StaleUpload[]> {
  const named = repos.filter((r) => !wanted.repositories || wanted.repositories.has(r.name));
  const stale = await staleUploadsIn(client, limit, named, wanted.before);
  // Its bytes first (the parts of its data), then its keys: a key left names an upload still to remove.
  await abortMultipart(client, limit, stale.flatMap((u) => u.multipart));
  const removal = await removeKeys(client, stale.flatMap((u) => u.keys));
  problems.push(...refused(removal, new BucketKeys(client.location), 'stale upload'));
  const failed = new Set(removal.failed.map((f) => f.key));
  return stale.filter((u) => !u.keys.some((k) => failed.has(k))).map(({ keys: _, multipart: __, ...upload }) => upload);
}

/** Carries out `plan` on the bucket, then the own sweep when `options.sweep` is given. See the top of this file. */
export async function applyOnBucket(plan: Plan, options: BucketApplyOptions): Promise<BucketWindowResult> {
  const { client, signal } = options;
  const concurrency = options.concurrency ?? 16;
  const limit = bounded(concurrency);
  const keys = new BucketKeys(client.location);
  const prepared = options.prepared ?? prepareApply(plan);
  const listed = await listRepositoryKeys(client, limit, keys, true);
  const repos = new Map(listed.map((r) => [r.name, r]));
  await recheck(client, limit, plan, repos);
  signal?.throwIfAborted();
  const { keys: going, result: applied } = planKeys(plan, prepared, keys, repos);
  const removal = await removeKeys(client, going, { concurrency: Math.max(1, concurrency / 2) });
  const problems = refused(removal, keys, 'planned removal');
  failpoint('bucket.removed');
  options.onProgress?.({ phase: 'apply', done: removal.removed.length, total: going.length, unit: 'removals' });
  const left = listed.filter((r) => !prepared.byRepository.removals.has(r.name));
  const uploads = options.uploads && (await removeStaleUploads(client, limit, left, options.uploads, problems));
  const links = { layerLinks: 0, dangling: 0 };
  const { sweep } = options;
  if (!sweep) return { applied, links, problems, uploads };
  const found: FoundRepository[] = left.map((r) => ({ name: r.name, hasLayers: r.hasLayers, hasManifests: r.hasManifests }));
  const result: BlobSweepResult = { blobs: 0, bytes: 0, remarked: 0, spared: sweep.swept.spared, taken: sweep.swept.taken, repositories: found, problems: [] };
  if (problems.length > 0) return { applied, links, uploads, problems: [...problems, { message: 'the planned removals did not all go: nothing was swept' }], swept: result };
  signal?.throwIfAborted();
  const remarked = await remark(client, limit, keys, left, (repo, hex) => prepared.going.get(repo)?.has(hex) ?? false, sweep);
  if (typeof remarked !== 'number') return { applied, links, uploads, problems, swept: { ...result, spared: { blobs: 0, bytes: 0 }, problems: [remarked] } };
  signal?.throwIfAborted();
  const swept = await sweepBucket(client, keys, left, sweep, Math.max(1, concurrency / 2));
  return { applied, links: swept.links, uploads, problems: [...problems, ...swept.problems], swept: { ...result, remarked, blobs: swept.blobs, bytes: swept.bytes } };
}
