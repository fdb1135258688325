/**
 * The plan: a pure function of an Inventory that says which revision links and
 * tag index entries go, and a simulation of garbage-collect's mark over the
 * tree as the plan leaves it, which says exactly which blobs the sweep frees.
 * Nothing here touches the disk; the plan is plain data (`--json` prints it).
 */
import { type DigestTable, PackedList } from '../storage/digestTable.js';
import { UsageError } from '../errors.js';
import { type BlobPart, Ledger, type Sweep } from './globalMark.js';
import { type Digest, isRepositoryName, isTagName } from '../storage/layout.js';
import type { ParsedManifest } from '../storage/manifest.js';
import { type Policy, type Rules, rulesFor, selectsTags } from './policy.js';
import type { Inventory, Problem, RepositoryState, TagState, Totals } from '../storage/scan.js';

/** `REPOSITORY` or `REPOSITORY:TAG` from the command line. */
export interface Selector {
  repository: string;
  tag?: string;
}

export type ManifestReason = 'untagged' | 'tag-removed' | 'repository-removed';
export type IndexEntryReason = 'untagged' | 'history';
export type TagReason = 'named' | 'policy' | 'subject-removed' | 'repository-removed';

export interface PlannedManifest {
  repository: string;
  digest: Digest;
  reason: ManifestReason;
}

export interface PlannedIndexEntry {
  repository: string;
  tag: string;
  digest: Digest;
  reason: IndexEntryReason;
}

export interface PlannedTag {
  repository: string;
  tag: string;
  digest: Digest | null;
  reason: TagReason;
  /** Which rules selected it, in words. */
  detail: string;
}

export interface PlannedRepository {
  repository: string;
  reason: 'named';
  /** Repositories below it that stay: only its own _manifests, _layers and _uploads go. */
  nested: string[];
}

/** What the plan assumed of a repository it touches: apply re-checks this before removing anything. */
export interface RepositoryCheck {
  repository: string;
  tags: Record<string, Digest>;
}

export interface SparedRepository {
  repository: string;
  problems: Problem[];
}

/** Removed manifests, packed: a tree with a million revisions can plan most of them away. */
export type PlannedManifests = PackedList<PlannedManifest>;
export type PlannedIndexEntries = PackedList<PlannedIndexEntry>;

export function plannedManifests(items: Iterable<PlannedManifest> = [], table?: DigestTable): PlannedManifests {
  const list = new PackedList<PlannedManifest>(['repository', 'digest', 'reason'], 'digest', table);
  for (const item of items) list.push(item);
  return list;
}

export function plannedIndexEntries(items: Iterable<PlannedIndexEntry> = [], table?: DigestTable): PlannedIndexEntries {
  const list = new PackedList<PlannedIndexEntry>(['repository', 'tag', 'digest', 'reason'], 'digest', table);
  for (const item of items) list.push(item);
  return list;
}

export interface Plan {
  repositories: PlannedRepository[];
  tags: PlannedTag[];
  manifests: PlannedManifests;
  indexEntries: PlannedIndexEntries;
  spared: SparedRepository[];
  checks: RepositoryCheck[];
}

/** A plan to fill; its packed lists keep digests in `table` (a Ledger's, when given). */
export function emptyPlan(table?: DigestTable): Plan {
  return { repositories: [], tags: [], manifests: plannedManifests([], table), indexEntries: plannedIndexEntries([], table), spared: [], checks: [] };
}

export type Prediction = Sweep;

export function parseSelector(text: string): Selector {
  const colon = text.lastIndexOf(':');
  // A ':' inside the last path component separates the tag; `host:port/x` never reaches a storage path.
  const hasTag = colon > text.lastIndexOf('/');
  const repository = hasTag ? text.slice(0, colon) : text;
  const tag = hasTag ? text.slice(colon + 1) : undefined;
  if (!isRepositoryName(repository)) throw new UsageError(`invalid repository name: ${JSON.stringify(repository)}`);
  if (tag !== undefined && !isTagName(tag)) throw new UsageError(`invalid tag: ${JSON.stringify(tag)} (in ${JSON.stringify(text)})`);
  return tag === undefined ? { repository } : { repository, tag };
}

/** Refuses selectors that name a repository the tree does not hold, so a typo never reads as "nothing to do". */
export function checkSelectedRepositories(root: string, names: readonly string[], selectors: readonly Selector[]): void {
  const known = new Set(names);
  for (const s of selectors) if (!known.has(s.repository)) throw new UsageError(`no repository ${s.repository} in ${root}`);
}

/** Refuses selectors that name a tag the repository does not hold. */
export function checkSelectedTags(repo: RepositoryState, selectors: readonly Selector[]): void {
  for (const s of selectors) {
    if (s.repository === repo.name && s.tag !== undefined && !repo.tags.some((t) => t.name === s.tag)) {
      throw new UsageError(`no tag ${s.tag} in repository ${s.repository}`);
    }
  }
}

/** Both checks over a whole inventory. */
export function checkSelectors(inventory: Inventory, selectors: readonly Selector[]): void {
  checkSelectedRepositories(inventory.root, inventory.repositories.map((r) => r.name), selectors);
  for (const repo of inventory.repositories) checkSelectedTags(repo, selectors);
}

// Tags cosign and friends push for registries without a referrers API: `sha256-<hex>` and `sha256-<hex>.<suffix>`.
const FALLBACK_TAG = /^sha256-([0-9a-f]{64})(?:\.[A-Za-z0-9_.-]+)?$/;

/** The manifest a fallback tag (signature, attestation, SBOM) belongs to, or undefined for an ordinary tag. */
export function fallbackSubject(tag: string): Digest | undefined {
  const m = FALLBACK_TAG.exec(tag);
  return m ? (`sha256:${m[1]}` as Digest) : undefined;
}

/**
 * Grows `kept` from `roots`: the children of kept lists and indexes and the
 * referrers of kept manifests, recursively. Roots that are not revisions of
 * the repository are reported: whatever names them is already broken.
 */
class Closure {
  readonly kept = new Set<Digest>();
  readonly problems: Problem[] = [];
  private readonly revisions: Set<Digest>;
  private readonly referrers = new Map<Digest, Digest[]>();

  constructor(
    private readonly repo: RepositoryState,
    private readonly manifests: ReadonlyMap<Digest, ParsedManifest>,
  ) {
    this.revisions = new Set(repo.revisions);
    for (const digest of repo.revisions) {
      const subject = manifests.get(digest)?.subject;
      if (subject) this.referrers.set(subject, [...(this.referrers.get(subject) ?? []), digest]);
    }
  }

  has(digest: Digest): boolean {
    return this.revisions.has(digest);
  }

  add(digest: Digest, via: string): void {
    const queue: Array<{ digest: Digest; via: string }> = [{ digest, via }];
    while (queue.length > 0) {
      const next = queue.pop() as { digest: Digest; via: string };
      if (this.kept.has(next.digest)) continue;
      if (!this.revisions.has(next.digest)) {
        this.problems.push({ repository: this.repo.name, message: `${next.via} needs ${next.digest}, which is not a revision of the repository` });
        continue;
      }
      this.kept.add(next.digest);
      for (const child of this.manifests.get(next.digest)?.children ?? []) queue.push({ digest: child, via: `index ${next.digest}` });
      for (const referrer of this.referrers.get(next.digest) ?? []) queue.push({ digest: referrer, via: `referrer of ${next.digest}` });
    }
  }
}

/**
 * Every revision the repository must keep when every tag stays: each tag's
 * current manifest, the children of kept lists and indexes, and the referrers
 * of kept manifests, recursively.
 */
export function keptRevisions(repo: RepositoryState, manifests: ReadonlyMap<Digest, ParsedManifest>): { kept: Set<Digest>; problems: Problem[] } {
  const closure = new Closure(repo, manifests);
  for (const tag of repo.tags) if (tag.current) closure.add(tag.current, `tag ${tag.name}`);
  return { kept: closure.kept, problems: closure.problems };
}

export interface PlanOptions {
  /** REPOSITORY[:TAG] arguments: only these are purged (default: all). */
  selectors?: readonly Selector[];
  /** `-x`: tags and repositories to remove. */
  remove?: readonly Selector[];
  /** Tag retention rules; none means no tag is removed by rule and no history is kept. */
  policy?: Policy;
  /** The time tags are aged against (default: now). */
  now?: number;
}

function describeRules(rules: Rules, parts: { keep?: number; olderThan?: boolean; tags?: boolean }): string {
  const words: string[] = [];
  if (parts.keep !== undefined) words.push(`not among the ${rules.keep} most recent (number ${parts.keep})`);
  if (parts.olderThan) words.push(`pushed more than ${rules.olderThan} ago`);
  if (parts.tags) words.push(`matches ${rules.tags?.source}`);
  return words.join(', ');
}

/** The ordinary tags the rules remove, each with the words that say why. */
export function tagsSelectedByRules(tags: readonly TagState[], rules: Rules, now: number): Map<string, string> {
  const selected = new Map<string, string>();
  if (!selectsTags(rules)) return selected;
  // Protected tags are never candidates and do not count toward keep N.
  const candidates = tags
    .filter((t) => !rules.keepTags.test(t.name))
    .sort((a, b) => (b.pushedMs ?? 0) - (a.pushedMs ?? 0) || (a.name < b.name ? -1 : 1));
  candidates.forEach((tag, rank) => {
    const byKeep = rules.keep === undefined || rank >= rules.keep;
    const byAge = rules.olderThanMs === undefined || (tag.pushedMs ?? now) < now - rules.olderThanMs;
    const byName = rules.tags === undefined || rules.tags.test(tag.name);
    if (byKeep && byAge && byName) {
      selected.set(tag.name, describeRules(rules, { keep: rules.keep === undefined ? undefined : rank + 1, olderThan: rules.olderThanMs !== undefined, tags: rules.tags !== undefined }));
    }
  });
  return selected;
}

interface Scope {
  all: boolean;
  tags: Set<string>;
}

function scopeOf(repo: RepositoryState, options: PlanOptions): Scope | undefined {
  const selectors = options.selectors ?? [];
  const named = (options.remove ?? []).some((r) => r.repository === repo.name);
  if (selectors.length === 0) return { all: true, tags: new Set() };
  const mine = selectors.filter((s) => s.repository === repo.name);
  if (mine.length === 0) return named ? { all: false, tags: new Set() } : undefined;
  if (mine.some((s) => s.tag === undefined)) return { all: true, tags: new Set() };
  return { all: false, tags: new Set(mine.map((s) => s.tag as string)) };
}

function nestedBelow(names: readonly string[], name: string): string[] {
  return names.filter((n) => n.startsWith(`${name}/`));
}

/** What planning one repository needs besides the repository itself. */
export interface PlanContext {
  options: PlanOptions;
  now: number;
  /** Every repository name in the tree (a removed repository's nested ones stay). */
  names: readonly string[];
}

export function planContext(names: readonly string[], options: PlanOptions = {}): PlanContext {
  return { options, now: options.now ?? Date.now(), names };
}

/**
 * The plan. Per repository: `-x` removals; tags the retention rules select
 * (fallback signature tags follow their subject instead); then every revision
 * that no remaining tag, kept history entry, list or referrer chain still
 * reaches; and every tag index entry that is neither current nor kept history.
 * A repository with a problem is spared whole.
 */
export function planPurge(inventory: Inventory, options: PlanOptions = {}): Plan {
  const plan = emptyPlan();
  const context = planContext(inventory.repositories.map((r) => r.name), options);
  for (const repo of inventory.repositories) planRepository(repo, inventory.manifests, context, plan);
  return plan;
}

const NOTHING: ReadonlySet<Digest> = new Set();

/**
 * Plans one repository into `plan`, given the manifests its revisions name,
 * and returns the revisions it removes. Repositories are independent, so the
 * scan can hand them over one at a time and forget each afterwards.
 */
export function planRepository(repo: RepositoryState, manifests: ReadonlyMap<Digest, ParsedManifest>, context: PlanContext, plan: Plan): ReadonlySet<Digest> {
  const { options, now } = context;
  const removals = options.remove ?? [];
  {
    const scope = scopeOf(repo, options);
    if (!scope) return NOTHING;
    const existing = keptRevisions(repo, manifests);
    const problems = [...repo.problems, ...existing.problems];
    if (problems.length > 0) {
      plan.spared.push({ repository: repo.name, problems });
      return NOTHING;
    }
    const check = (): void => {
      plan.checks.push({ repository: repo.name, tags: Object.fromEntries(repo.tags.map((t) => [t.name, t.current as Digest])) });
    };

    if (removals.some((r) => r.repository === repo.name && r.tag === undefined)) {
      plan.repositories.push({ repository: repo.name, reason: 'named', nested: nestedBelow(context.names, repo.name) });
      for (const t of repo.tags) plan.tags.push({ repository: repo.name, tag: t.name, digest: t.current ?? null, reason: 'repository-removed', detail: `repository ${repo.name} removed` });
      for (const digest of repo.revisions) plan.manifests.push({ repository: repo.name, digest, reason: 'repository-removed' });
      check();
      return new Set(repo.revisions);
    }

    const rules = options.policy ? rulesFor(options.policy, repo.name) : undefined;
    const inTagScope = (tag: string): boolean => scope.all || scope.tags.has(tag);
    const removedTags = new Map<string, { reason: TagReason; detail: string }>();
    for (const r of removals) {
      if (r.repository === repo.name && r.tag !== undefined) removedTags.set(r.tag, { reason: 'named', detail: `named by --remove ${r.repository}:${r.tag}` });
    }
    const ordinary = repo.tags.filter((t) => fallbackSubject(t.name) === undefined);
    if (rules) {
      const eligible = ordinary.filter((t) => inTagScope(t.name) && !removedTags.has(t.name));
      for (const [tag, detail] of tagsSelectedByRules(eligible, rules, now)) removedTags.set(tag, { reason: 'policy', detail });
    }

    const closure = new Closure(repo, manifests);
    const keptHistory = new Map<string, Set<Digest>>();
    for (const tag of ordinary) {
      if (removedTags.has(tag.name) || !tag.current) continue;
      closure.add(tag.current, `tag ${tag.name}`);
      const depth = rules?.history ?? 0;
      if (depth > 0) {
        // The N most recent earlier digests of the tag stay, so a rollback remains possible.
        const earlier = tag.index
          .filter((d) => d !== tag.current && closure.has(d))
          .sort((a, b) => (tag.indexTimes?.[b] ?? 0) - (tag.indexTimes?.[a] ?? 0) || (a < b ? -1 : 1))
          .slice(0, depth);
        keptHistory.set(tag.name, new Set(earlier));
        for (const d of earlier) closure.add(d, `history of tag ${tag.name}`);
      }
    }
    // Fallback tags follow their subject: kept with it, removed with it. One whose subject was never here is left alone.
    const fallbacks = repo.tags.filter((t) => fallbackSubject(t.name) !== undefined && !removedTags.has(t.name));
    const undecided = new Set(fallbacks);
    for (const t of fallbacks) {
      if (!closure.has(fallbackSubject(t.name) as Digest)) {
        undecided.delete(t);
        if (t.current) closure.add(t.current, `tag ${t.name}`);
      }
    }
    for (let changed = true; changed; ) {
      changed = false;
      for (const t of undecided) {
        if (closure.kept.has(fallbackSubject(t.name) as Digest)) {
          undecided.delete(t);
          if (t.current) closure.add(t.current, `tag ${t.name}`);
          changed = true;
        }
      }
    }
    for (const t of undecided) {
      if (inTagScope(t.name)) removedTags.set(t.name, { reason: 'subject-removed', detail: `its subject ${fallbackSubject(t.name)} is removed` });
      else if (t.current) closure.add(t.current, `tag ${t.name}`);
    }
    if (closure.problems.length > 0) {
      plan.spared.push({ repository: repo.name, problems: closure.problems });
      return NOTHING;
    }

    const candidates = scope.all
      ? repo.revisions
      : [...new Set(repo.tags.filter((t) => inTagScope(t.name) || removedTags.has(t.name)).flatMap((t) => t.index))].filter((d) => closure.has(d));
    const removed = new Set(candidates.filter((d) => !closure.kept.has(d)));
    const currentOfRemoved = new Set(repo.tags.filter((t) => removedTags.has(t.name)).map((t) => t.current));
    for (const digest of [...removed].sort()) {
      plan.manifests.push({ repository: repo.name, digest, reason: currentOfRemoved.has(digest) ? 'tag-removed' : 'untagged' });
    }
    for (const tag of repo.tags) {
      const why = removedTags.get(tag.name);
      if (why) plan.tags.push({ repository: repo.name, tag: tag.name, digest: tag.current ?? null, ...why });
    }
    const entriesBefore = plan.indexEntries.length;
    for (const tag of repo.tags) {
      if (removedTags.has(tag.name)) continue; // its whole directory goes
      for (const digest of tag.index) {
        if (digest === tag.current || keptHistory.get(tag.name)?.has(digest)) continue;
        if (removed.has(digest)) plan.indexEntries.push({ repository: repo.name, tag: tag.name, digest, reason: 'untagged' });
        else if (inTagScope(tag.name)) plan.indexEntries.push({ repository: repo.name, tag: tag.name, digest, reason: 'history' });
      }
    }
    if (removed.size > 0 || removedTags.size > 0 || plan.indexEntries.length > entriesBefore) check();
    return removed;
  }
}

/** Manifests the plan removes, by repository. */
function removedByRepository(plan: Plan): Map<string, Set<Digest>> {
  const removed = new Map<string, Set<Digest>>();
  for (const m of plan.manifests) {
    const set = removed.get(m.repository) ?? new Set<Digest>();
    set.add(m.digest);
    removed.set(m.repository, set);
  }
  return removed;
}

/**
 * Does the repository, as the plan leaves it, hold a manifest that no tag
 * names directly (a child, a referrer, or anything spared or unselected)?
 * Then `--delete-untagged` would remove more than the plan.
 */
export function repositoryKeepsUntagged(repo: RepositoryState, removed: ReadonlySet<Digest>): boolean {
  const tagged = new Set(repo.tags.map((t) => t.current));
  return repo.revisions.some((d) => !tagged.has(d) && !removed.has(d));
}

export function keepsUntagged(inventory: Inventory, plan: Plan): boolean {
  const removed = removedByRepository(plan);
  return inventory.repositories.some((repo) => repositoryKeepsUntagged(repo, removed.get(repo.name) ?? NOTHING));
}

/** A Ledger fed with a whole inventory and the plan for it. */
function ledgerFor(inventory: Inventory, plan: Plan, registryVersion?: string): Ledger {
  const ledger = new Ledger(registryVersion);
  const removed = removedByRepository(plan);
  ledger.treeProblem(inventory.problems);
  for (const repo of inventory.repositories) ledger.repository(repo, inventory.manifests, removed.get(repo.name) ?? NOTHING);
  ledger.blobs(blobPartOf(inventory.blobs));
  return ledger;
}

function blobPartOf(blobs: ReadonlyMap<Digest, number>): BlobPart {
  const digests = new Uint8Array(blobs.size * 32);
  const sizes = new Float64Array(blobs.size);
  let i = 0;
  for (const [digest, size] of blobs) {
    digests.set(Buffer.from(digest.slice('sha256:'.length), 'hex'), i * 32);
    sizes[i++] = size;
  }
  return { digests, sizes, problems: [] };
}

/**
 * Simulates garbage-collect's mark on the tree the plan leaves: for every
 * repository it enumerates, every remaining revision and what that manifest
 * references is marked, globally. Every blob not marked is swept.
 */
export function predictCollect(inventory: Inventory, plan: Plan, registryVersion?: string): Prediction & { digests: Digest[] } {
  const ledger = ledgerFor(inventory, plan, registryVersion);
  return { ...ledger.sweep(), digests: ledger.sweptDigests() };
}

/** The totals the tree will have once the plan is applied and garbage-collect has run. */
export function predictTotals(before: Totals, plan: Plan, prediction: Prediction): Totals {
  return {
    repositories: before.repositories - plan.repositories.length,
    tags: before.tags - plan.tags.length,
    manifests: before.manifests - plan.manifests.length,
    blobs: before.blobs - prediction.blobs,
    bytes: before.bytes - prediction.bytes,
  };
}

export interface RepositoryReclaim {
  repository: string;
  manifests: number;
  tags: number;
  /** Bytes of the blobs garbage-collect will sweep that this repository's removed manifests used. */
  predictedBytes: number;
}

/** Label for swept blobs that no removed manifest used: orphan uploads and leftovers of earlier runs. */
export const UNREFERENCED = '(unreferenced blobs)';

/**
 * Splits the predicted bytes by repository. A swept blob counts once, for the
 * first repository (by name) whose removed manifests used it, so the rows add
 * up to the prediction exactly.
 */
export function reclaimRows(plan: Plan, ledger: Ledger): RepositoryReclaim[] {
  const rows = new Map<string, RepositoryReclaim>();
  const row = (repository: string): RepositoryReclaim => {
    let r = rows.get(repository);
    if (!r) rows.set(repository, (r = { repository, manifests: 0, tags: 0, predictedBytes: 0 }));
    return r;
  };
  for (const t of plan.tags) row(t.repository).tags++;
  for (const m of plan.manifests) row(m.repository).manifests++;
  const { repositories, unreferenced } = ledger.bytesByRepository();
  for (const [repository, bytes] of repositories) row(repository).predictedBytes += bytes;
  if (unreferenced > 0) row(UNREFERENCED).predictedBytes += unreferenced;
  return [...rows.values()].sort((a, b) => b.predictedBytes - a.predictedBytes || (a.repository < b.repository ? -1 : 1));
}

export function reclaimByRepository(inventory: Inventory, plan: Plan, registryVersion?: string): RepositoryReclaim[] {
  return reclaimRows(plan, ledgerFor(inventory, plan, registryVersion));
}
