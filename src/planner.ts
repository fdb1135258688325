/**
 * The plan: a pure function of an Inventory that says which revision links and
 * tag index entries go, and a simulation of garbage-collect's mark over the
 * tree as the plan leaves it, which says exactly which blobs the sweep frees.
 * Nothing here touches the disk; the plan is plain data (`--json` prints it).
 */
import { UsageError } from './errors.js';
import { type Digest, isRepositoryName, isTagName } from './layout.js';
import type { ParsedManifest } from './manifest.js';
import type { Inventory, Problem, RepositoryState, Totals } from './scanner.js';
import { totalsOf } from './scanner.js';

/** `REPOSITORY` or `REPOSITORY:TAG` from the command line. */
export interface Selector {
  repository: string;
  tag?: string;
}

export type ManifestReason = 'untagged';
export type IndexEntryReason = 'untagged' | 'history';

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
  reason: string;
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

export interface Plan {
  manifests: PlannedManifest[];
  indexEntries: PlannedIndexEntry[];
  tags: PlannedTag[];
  spared: SparedRepository[];
  checks: RepositoryCheck[];
}

export interface Prediction {
  blobs: number;
  bytes: number;
  digests: Digest[];
  /** When non-empty, garbage-collect must not run (it would abort or mis-mark) and frees nothing. */
  blockedBy: Problem[];
}

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

/** Refuses selectors that name nothing in the tree, so a typo never reads as "nothing to do". */
export function checkSelectors(inventory: Inventory, selectors: readonly Selector[]): void {
  const byName = new Map(inventory.repositories.map((r) => [r.name, r]));
  for (const s of selectors) {
    const repo = byName.get(s.repository);
    if (!repo) throw new UsageError(`no repository ${s.repository} in ${inventory.root}`);
    if (s.tag !== undefined && !repo.tags.some((t) => t.name === s.tag)) {
      throw new UsageError(`no tag ${s.tag} in repository ${s.repository}`);
    }
  }
}

/**
 * Every revision the repository must keep: each tag's current manifest, the
 * children of kept lists and indexes, and the referrers of kept manifests,
 * recursively. Problems are returned for tags that are already broken.
 */
export function keptRevisions(repo: RepositoryState, manifests: ReadonlyMap<Digest, ParsedManifest>): { kept: Set<Digest>; problems: Problem[] } {
  const revisions = new Set(repo.revisions);
  const referrers = new Map<Digest, Digest[]>();
  for (const digest of repo.revisions) {
    const subject = manifests.get(digest)?.subject;
    if (subject) referrers.set(subject, [...(referrers.get(subject) ?? []), digest]);
  }
  const kept = new Set<Digest>();
  const problems: Problem[] = [];
  const queue: Array<{ digest: Digest; via: string }> = [];
  for (const tag of repo.tags) {
    if (tag.current) queue.push({ digest: tag.current, via: `tag ${tag.name}` });
  }
  while (queue.length > 0) {
    const { digest, via } = queue.pop() as { digest: Digest; via: string };
    if (kept.has(digest)) continue;
    if (!revisions.has(digest)) {
      problems.push({ repository: repo.name, message: `${via} needs ${digest}, which is not a revision of the repository` });
      continue;
    }
    kept.add(digest);
    for (const child of manifests.get(digest)?.children ?? []) queue.push({ digest: child, via: `index ${digest}` });
    for (const referrer of referrers.get(digest) ?? []) queue.push({ digest: referrer, via: `referrer of ${digest}` });
  }
  return { kept, problems };
}

function inScope(repo: RepositoryState, selectors: readonly Selector[]): { all: boolean; tags: Set<string> } | undefined {
  if (selectors.length === 0) return { all: true, tags: new Set() };
  const mine = selectors.filter((s) => s.repository === repo.name);
  if (mine.length === 0) return undefined;
  if (mine.some((s) => s.tag === undefined)) return { all: true, tags: new Set() };
  return { all: false, tags: new Set(mine.map((s) => s.tag as string)) };
}

/**
 * The default policy: keep what every tag needs, remove every other revision
 * and every tag index entry that is not the tag's current digest. With
 * `REPOSITORY:TAG` selectors only that tag's history is in scope.
 */
export function planPurge(inventory: Inventory, selectors: readonly Selector[] = []): Plan {
  const plan: Plan = { manifests: [], indexEntries: [], tags: [], spared: [], checks: [] };
  for (const repo of inventory.repositories) {
    const scope = inScope(repo, selectors);
    if (!scope) continue;
    const { kept, problems } = keptRevisions(repo, inventory.manifests);
    const all = [...repo.problems, ...problems];
    if (all.length > 0) {
      plan.spared.push({ repository: repo.name, problems: all });
      continue;
    }
    const scopedTags = repo.tags.filter((t) => scope.all || scope.tags.has(t.name));
    const candidates = scope.all ? repo.revisions : [...new Set(scopedTags.flatMap((t) => t.index))];
    const revisions = new Set(repo.revisions);
    const removed = new Set(candidates.filter((d) => !kept.has(d) && revisions.has(d)));
    for (const digest of [...removed].sort()) plan.manifests.push({ repository: repo.name, digest, reason: 'untagged' });

    const entriesBefore = plan.indexEntries.length;
    for (const tag of repo.tags) {
      const tagInScope = scope.all || scope.tags.has(tag.name);
      for (const digest of tag.index) {
        if (digest === tag.current) continue;
        if (removed.has(digest)) plan.indexEntries.push({ repository: repo.name, tag: tag.name, digest, reason: 'untagged' });
        else if (tagInScope) plan.indexEntries.push({ repository: repo.name, tag: tag.name, digest, reason: 'history' });
      }
    }
    if (removed.size > 0 || plan.indexEntries.length > entriesBefore) {
      plan.checks.push({ repository: repo.name, tags: Object.fromEntries(repo.tags.map((t) => [t.name, t.current as Digest])) });
    }
  }
  return plan;
}

/**
 * Does the tree, as the plan leaves it, hold a manifest that no tag names
 * directly (a child, a referrer, or anything in a spared or unselected
 * repository)? Then `--delete-untagged` would remove more than the plan.
 */
export function keepsUntagged(inventory: Inventory, plan: Plan): boolean {
  const removed = new Set(plan.manifests.map((m) => `${m.repository}@${m.digest}`));
  return inventory.repositories.some((repo) => {
    const tagged = new Set(repo.tags.map((t) => t.current));
    return repo.revisions.some((d) => !tagged.has(d) && !removed.has(`${repo.name}@${d}`));
  });
}

/** Major version of a registry version string such as `2.8.2` or `3.0.0`. */
function majorOf(version: string | undefined): number | undefined {
  const major = version === undefined ? NaN : Number.parseInt(version, 10);
  return Number.isFinite(major) ? major : undefined;
}

/**
 * Simulates garbage-collect's mark on the tree the plan leaves: for every
 * repository it enumerates, every remaining revision and what that manifest
 * references is marked, globally. Every blob not marked is swept.
 */
export function predictCollect(inventory: Inventory, plan: Plan, registryVersion?: string): Prediction {
  const major = majorOf(registryVersion);
  const removed = new Map<string, Set<Digest>>();
  for (const m of plan.manifests) {
    const set = removed.get(m.repository) ?? new Set<Digest>();
    set.add(m.digest);
    removed.set(m.repository, set);
  }
  const blockedBy: Problem[] = [...inventory.problems, ...inventory.repositories.flatMap((r) => r.problems)].filter((p) => p.blocksGc);
  const marked = new Set<Digest>();
  for (const repo of inventory.repositories) {
    // 2.x enumerates repositories by `_layers`, 3.x by `_manifests`.
    const enumerated = major !== undefined && major >= 3 ? repo.hasManifests : repo.hasLayers;
    if (!enumerated) continue;
    const gone = removed.get(repo.name);
    for (const digest of repo.revisions) {
      if (gone?.has(digest)) continue;
      const manifest = inventory.manifests.get(digest);
      // A revision whose blob is missing is skipped by garbage-collect, and so not marked.
      if (!manifest) continue;
      if (major !== undefined && major >= 3 && manifest.kind === 'schema1') {
        blockedBy.push({ repository: repo.name, message: `registry ${registryVersion} cannot read schema1 manifest ${digest}; its garbage-collect aborts`, blocksGc: true });
      }
      marked.add(digest);
      for (const ref of manifest.references) marked.add(ref);
    }
  }
  if (blockedBy.length > 0) return { blobs: 0, bytes: 0, digests: [], blockedBy };
  const digests: Digest[] = [];
  let bytes = 0;
  for (const [digest, size] of inventory.blobs) {
    if (marked.has(digest)) continue;
    digests.push(digest);
    bytes += size;
  }
  return { blobs: digests.length, bytes, digests: digests.sort(), blockedBy };
}

/** The totals the tree will have once the plan is applied and garbage-collect has run. */
export function predictTotals(inventory: Inventory, plan: Plan, prediction: Prediction): Totals {
  const before = totalsOf(inventory);
  return {
    repositories: before.repositories,
    tags: before.tags - plan.tags.length,
    manifests: before.manifests - plan.manifests.length,
    blobs: before.blobs - prediction.blobs,
    bytes: before.bytes - prediction.bytes,
  };
}
