/**
 * Carries out a Plan on the tree. First it re-reads the tags of every
 * repository the plan touches and compares them with what the plan assumed:
 * if any moved, it removes nothing at all (`onChange: 'abort'`, what a
 * maintenance window wants) or leaves just those repositories (`'skip'`).
 * Every link file is written to the journal before it is removed, so a purge
 * can be undone (restoreJournal) until garbage-collect runs.
 */
import fs from 'node:fs';
import { TreeChangedError } from '../errors.js';
import type { Problem, ProgressSink } from '../model.js';
import { type Plan, type PlannedIndexEntries, type PlannedIndexEntry, type PlannedManifest, type PlannedManifests, type PlannedRepository, type PlannedTag, type RepositoryCheck, plannedIndexEntries, plannedManifests } from '../plan/planner.js';
import type { DigestTable } from '../storage/digestTable.js';
import { Layout, type PathSpec, digestFromHex } from '../storage/layout.js';
import { type LinkRead, readLink } from '../storage/fs/read.js';
import { isMissing, isNotEmpty } from '../util/errno.js';
import { Remover } from './trash.js';

export interface ApplyOptions {
  /** Where to write the journal of removed links (JSON lines). */
  journal?: string;
  /** When a repository's tags moved since the plan: remove nothing at all, or skip that repository (default). */
  onChange?: 'abort' | 'skip';
  /** Move removals here (see Remover) and delete them later with emptyTrash. */
  trash?: string;
  /** A journal and trash already open (shared with the builtin sweep), instead of `journal` and `trash`; the caller closes it. */
  remover?: Remover;
  /** Stops between two removals (SIGINT/SIGTERM); what was removed is in the journal. */
  signal?: AbortSignal;
  /**
   * Leave the tag history entries for removeIndexEntries, after the window:
   * neither the registry nor garbage-collect reads them, so they need not be
   * gone before the registry serves again.
   */
  deferIndexEntries?: boolean;
  onProgress?: ProgressSink;
  /** The plan grouped before the window (prepareApply), so the window only looks things up; made here when absent. */
  prepared?: PreparedApply;
}

export interface ApplyResult {
  repositories: PlannedRepository[];
  tags: PlannedTag[];
  manifests: PlannedManifests;
  indexEntries: PlannedIndexEntries;
  /** Repositories left alone because the tree no longer matched the plan. */
  skipped: Problem[];
  /** How many directories were removed. */
  removals: number;
  /**
   * Every removed directory, relative to the root, made from the lists above
   * when read (a million removals would otherwise hold a string or an object each).
   */
  readonly paths: Iterable<string>;
  /** History entries of the applied repositories left for removeIndexEntries (deferIndexEntries): runs of positions in `from`. */
  deferred: { from: PlannedIndexEntries; at: Runs; readonly length: number };
}

/** The tags of a repository as they are on disk now (undefined where a current link is unreadable). */
function currentTags(layout: Layout, repository: string): Record<string, string | undefined> {
  const tags: Record<string, string | undefined> = {};
  let names: string[];
  try {
    names = fs.readdirSync(layout.pathFor({ kind: 'tags', name: repository }));
  } catch (error) {
    if (isMissing(error)) return tags;
    throw error;
  }
  for (const tag of names) {
    let link: LinkRead;
    try {
      link = readLink(layout.pathFor({ kind: 'tagCurrentLink', name: repository, tag }));
    } catch {
      link = { missing: true };
    }
    tags[tag] = 'digest' in link ? link.digest : undefined;
  }
  return tags;
}

/** Why the repository no longer matches the plan, or undefined when it does. */
function recheck(layout: Layout, check: RepositoryCheck): string | undefined {
  return tagsChanged(check, currentTags(layout, check.repository));
}

/** Why tags as they are `now` (undefined: unreadable) void what the plan assumed of their repository, or undefined when they do not. */
export function tagsChanged(check: RepositoryCheck, now: Record<string, string | undefined>): string | undefined {
  for (const tag of Object.keys(check.tags)) {
    if (!(tag in now)) return `tag ${tag} was removed since the scan`;
    if (now[tag] !== check.tags[tag]) return `tag ${tag} moved since the scan (now ${now[tag] ?? 'unreadable'})`;
  }
  for (const tag of Object.keys(now)) {
    if (!(tag in check.tags)) return `tag ${tag} appeared since the scan`;
  }
  return undefined;
}

/** Every check before any removal, each repository read once: the repositories that changed, and why. */
function recheckAll(layout: Layout, plan: Plan, onChange: ApplyOptions['onChange']): Map<string, string> {
  const changed = new Map<string, string>();
  for (const check of plan.checks) {
    const why = recheck(layout, check);
    if (why) changed.set(check.repository, why);
  }
  if (changed.size > 0 && onChange === 'abort') {
    throw new TreeChangedError(`the registry changed since the scan, nothing was removed (${[...changed].map(([r, why]) => `${r}: ${why}`).join('; ')})`);
  }
  return changed;
}

/** Removes the repository's directory and its parents while they are empty, up to repositories/. */
function removeEmptyDirectories(layout: Layout, repository: string): void {
  const parts = repository.split('/');
  while (parts.length > 0) {
    try {
      fs.rmdirSync(layout.pathFor({ kind: 'repository', name: parts.join('/') }));
    } catch (error) {
      if (isNotEmpty(error) || isMissing(error)) return;
      throw error;
    }
    parts.pop();
  }
}

function groupBy<T extends { repository: string }>(items: Iterable<T>): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const list = groups.get(item.repository);
    if (list) list.push(item);
    else groups.set(item.repository, [item]);
  }
  return groups;
}

/**
 * Positions in a plan list as runs `[from, to, from, to…]` (to exclusive): the
 * planner lists a repository's entries together, so a repository's positions
 * are one run, two numbers where a number per entry took megabytes.
 */
type Runs = number[];

export function* positionsIn(runs: Runs): Generator<number> {
  for (let r = 0; r < runs.length; r += 2) for (let i = runs[r] as number; i < (runs[r + 1] as number); i++) yield i;
}

function countOf(runs: Runs): number {
  let n = 0;
  for (let r = 0; r < runs.length; r += 2) n += (runs[r + 1] as number) - (runs[r] as number);
  return n;
}

/** The positions of a plan list's entries by repository, as runs. */
function positionsBy(list: PlannedManifests | PlannedIndexEntries): Map<string, Runs> {
  const groups = new Map<string, Runs>();
  const key = list.keys.indexOf('repository');
  for (let i = 0; i < list.length; i++) {
    const repository = list.valueAt(i, key) as string;
    const runs = groups.get(repository);
    if (!runs) groups.set(repository, [i, i + 1]);
    else if (runs[runs.length - 1] === i) runs[runs.length - 1] = i + 1;
    else runs.push(i, i + 1);
  }
  return groups;
}

/** Removals the apply will make: three directories per removed repository, one per other entry. */
function removalCount(plan: Plan): number {
  let total = plan.repositories.length * 3 + plan.tags.filter((t) => t.reason !== 'repository-removed').length + plan.indexEntries.length;
  const reason = plan.manifests.keys.indexOf('reason');
  for (let i = 0; i < plan.manifests.length; i++) if (plan.manifests.valueAt(i, reason) !== 'repository-removed') total++;
  return total;
}

/** The plan's entries by repository, for the apply's walk over its checks: tags as they are, manifests and history entries by position. */
class PlanByRepository {
  readonly tags: Map<string, PlannedTag[]>;
  readonly indexEntries: Map<string, Runs>;
  readonly manifests: Map<string, Runs>;
  readonly removals: Map<string, PlannedRepository>;

  constructor(plan: Plan) {
    this.tags = groupBy(plan.tags);
    this.indexEntries = positionsBy(plan.indexEntries);
    this.manifests = positionsBy(plan.manifests);
    this.removals = new Map(plan.repositories.map((r) => [r.repository, r]));
  }
}

/** The revisions one repository loses: their digest ids, sorted, looked up by a revision directory's name. */
export class GoingRevisions {
  private readonly ids: Uint32Array;

  constructor(
    private readonly table: DigestTable,
    ids: Iterable<number>,
  ) {
    this.ids = Uint32Array.from(ids).sort();
  }

  get count(): number {
    return this.ids.length;
  }

  has(hex: string): boolean {
    const digest = digestFromHex(hex);
    const id = digest ? this.table.find(digest) : -1;
    if (id < 0) return false;
    let low = 0;
    let high = this.ids.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const at = this.ids[mid] as number;
      if (at === id) return true;
      if (at < id) low = mid + 1;
      else high = mid - 1;
    }
    return false;
  }
}

/** The plan grouped for the apply: what a window should not spend its time on. */
export interface PreparedApply {
  byRepository: PlanByRepository;
  total: number;
  /** The revisions each repository loses. */
  going: Map<string, GoingRevisions>;
}

export function prepareApply(plan: Plan): PreparedApply {
  const byRepository = new PlanByRepository(plan);
  const going = new Map<string, GoingRevisions>();
  for (const [repository, at] of byRepository.manifests) {
    going.set(repository, new GoingRevisions(plan.manifests.table, Array.from(positionsIn(at), (i) => plan.manifests.digestIdAt(i))));
  }
  return { byRepository, total: removalCount(plan), going };
}

/** How the apply takes things out: one directory, or a repository's removed revisions together. */
interface Removals {
  deferIndexEntries: boolean;
  remove(spec: PathSpec): Promise<void>;
  revisions(repository: string, count: number): Promise<void>;
}

/** Removes what the plan names of one repository, recording each removal in `result`. */
async function applyRepository(repository: string, plan: Plan, planned: PlanByRepository, layout: Layout, removals: Removals, result: ApplyResult): Promise<void> {
  const { remove } = removals;
  const removal = planned.removals.get(repository);
  const manifests = planned.manifests.get(repository) ?? [];
  if (removal) {
    // Only its own directories: repositories nested below it keep working.
    for (const kind of ['manifests', 'layers', 'uploads'] as const) await remove({ kind, name: repository });
    removeEmptyDirectories(layout, repository);
    result.repositories.push(removal);
    result.tags.push(...(planned.tags.get(repository) ?? []));
    for (const i of positionsIn(manifests)) result.manifests.push(plan.manifests.at(i) as PlannedManifest);
    return;
  }
  for (const tag of planned.tags.get(repository) ?? []) {
    await remove({ kind: 'tag', name: repository, tag: tag.tag });
    result.tags.push(tag);
  }
  const entries = planned.indexEntries.get(repository) ?? [];
  if (removals.deferIndexEntries) result.deferred.at.push(...entries);
  else {
    for (const i of positionsIn(entries)) {
      const entry = plan.indexEntries.at(i) as PlannedIndexEntry;
      await remove({ kind: 'tagIndexEntryDir', name: repository, tag: entry.tag, digest: entry.digest });
      result.indexEntries.push(entry);
    }
  }
  const count = countOf(manifests);
  if (count > 0) await removals.revisions(repository, count);
  for (const i of positionsIn(manifests)) result.manifests.push(plan.manifests.at(i) as PlannedManifest);
}

/** The directories an apply removed, relative to the root, made one at a time from its lists. */
function* removedPaths(layout: Layout, result: ApplyResult): Generator<string> {
  const relative = (spec: PathSpec): string => layout.relativePathFor(spec);
  for (const { repository: name } of result.repositories) for (const kind of ['manifests', 'layers', 'uploads'] as const) yield relative({ kind, name });
  for (const t of result.tags) if (t.reason !== 'repository-removed') yield relative({ kind: 'tag', name: t.repository, tag: t.tag });
  for (const e of result.indexEntries) yield relative({ kind: 'tagIndexEntryDir', name: e.repository, tag: e.tag, digest: e.digest });
  for (const m of result.manifests) if (m.reason !== 'repository-removed') yield relative({ kind: 'revisionDir', name: m.repository, digest: m.digest });
}

/** An apply's result with nothing removed yet; `layout` makes its removed paths. */
export function emptyResult(layout: Layout, plan: Plan): ApplyResult {
  const at: Runs = [];
  const result: ApplyResult = {
    repositories: [],
    tags: [],
    // The plan's digest table: the applied lists add no digest of their own.
    manifests: plannedManifests([], plan.manifests.table),
    indexEntries: plannedIndexEntries([], plan.indexEntries.table),
    skipped: [],
    removals: 0,
    get paths() {
      return { [Symbol.iterator]: () => removedPaths(layout, result) };
    },
    deferred: {
      from: plan.indexEntries,
      at,
      get length() {
        return countOf(at);
      },
    },
  };
  return result;
}

export async function applyPlan(root: string, plan: Plan, options: ApplyOptions = {}): Promise<ApplyResult> {
  const layout = new Layout(root);
  const result = emptyResult(layout, plan);
  const prepared = options.prepared ?? prepareApply(plan);
  const { total } = prepared;
  const remover = options.remover ?? Remover.open(root, { journals: options.journal ? [options.journal] : [], trash: options.trash });
  const removed = (count = 1): void => {
    result.removals += count;
    options.onProgress?.({ phase: 'apply', done: result.removals, total, unit: 'removals' });
  };
  const removals: Removals = {
    deferIndexEntries: options.deferIndexEntries ?? false,
    async remove(spec) {
      options.signal?.throwIfAborted();
      const dir = layout.pathFor(spec);
      if (spec.kind === 'tagIndexEntryDir') await remover.linkDirectory(dir);
      else await remover.tree(dir);
      removed();
    },
    // Most of a repository's revisions often go: together, in a fraction of the renames (Remover.takeEntries).
    async revisions(repository, count) {
      options.signal?.throwIfAborted();
      const going = prepared.going.get(repository);
      await remover.takeEntries(layout.pathFor({ kind: 'revisions', name: repository }), (hex) => going?.has(hex) ?? false, 'links');
      removed(count);
    },
  };
  try {
    const changed = recheckAll(layout, plan, options.onChange);
    const planned = prepared.byRepository;
    for (const check of plan.checks) {
      const why = changed.get(check.repository);
      if (why) result.skipped.push({ repository: check.repository, message: `not purged: ${why}` });
      else await applyRepository(check.repository, plan, planned, layout, removals, result);
    }
  } finally {
    if (!options.remover) remover.close();
  }
  return result;
}

const isCurrent = (link: LinkRead, digest: string): boolean => 'digest' in link && link.digest === digest;

/**
 * After the window, while the registry serves: the tag history entries
 * applyPlan left (deferIndexEntries). An entry the digest's push since the
 * window wrote again stays: an `untagged` entry's revision went in the window,
 * so its link back means a push; a `history` entry's revision stays (another
 * tag or a child keeps it), so only the tag naming it again as its current
 * one means a push there.
 */
export async function removeIndexEntries(root: string, applied: ApplyResult, remover: Remover): Promise<void> {
  const layout = new Layout(root);
  const { from, at } = applied.deferred;
  for (const i of positionsIn(at.splice(0))) {
    const entry = from.at(i) as PlannedIndexEntry;
    const { repository: name, tag, digest } = entry;
    if (entry.reason === 'untagged' ? fs.existsSync(layout.pathFor({ kind: 'revisionLink', name, digest })) : isCurrent(readLink(layout.pathFor({ kind: 'tagCurrentLink', name, tag })), digest)) continue;
    await remover.linkDirectory(layout.pathFor({ kind: 'tagIndexEntryDir', name, tag, digest }));
    applied.indexEntries.push(entry);
    applied.removals++;
  }
}
