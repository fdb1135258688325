/**
 * The plan: a pure function of one repository at a time that says which tags,
 * revision links and tag index entries go. Nothing here touches the disk; the
 * plan is plain data (`--json` prints it), and apply/ carries it out.
 *
 * Per repository, in steps: its scope (what the arguments select), an `-x`
 * removal of the whole repository, the tags `-x` names and the retention rules
 * select, the closure of what the remaining tags keep (with kept history),
 * the digests in use (pinned), the fallback signature tags that follow their
 * subject, and the result.
 * A repository with a problem is spared whole.
 */
import type { Digest, ParsedManifest, Problem, RepositoryState, TagState, Totals, Prediction } from '../model.js';
import { type DigestTable, PackedList } from '../storage/digestTable.js';
import { Closure, fallbackSubject, keptRevisions } from './closure.js';
import { type InUseDigest, type Pinned, emptyPins } from './pins.js';
import { type LastUse, type Policy, type Rules, pullWindowMs, rulesFor, tagsSelectedByRules } from './policy.js';
import type { Coverage, PullIndex } from './pullIndex.js';
import type { Selector } from './selectors.js';

type ManifestReason = 'untagged' | 'tag-removed' | 'repository-removed';
type IndexEntryReason = 'untagged' | 'history';
type TagReason = 'named' | 'policy' | 'subject-removed' | 'repository-removed';

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
  /** Where pull rules selected it: its last pull (ISO time), null when the index saw none. */
  lastPulled?: string | null;
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

interface SparedRepository {
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

export interface PlanOptions {
  /** REPOSITORY[:TAG] arguments: only these are purged (default: all). */
  selectors?: readonly Selector[];
  /** `-x`: tags and repositories to remove. */
  remove?: readonly Selector[];
  /** Tag retention rules; none means no tag is removed by rule and no history is kept. */
  policy?: Policy;
  /** The time tags are aged against (default: now). */
  now?: number;
  /** Digests something uses (containers, services, `--keep-digests`): roots like tags, where the repository holds them. */
  pinned?: Pinned;
  /** The pull index, for the pull rules; without it they select nothing. */
  pulls?: PullView;
}

/** The pull index as this run judges by it. */
export interface PullView {
  index: PullIndex;
  /** What the index has seen of the log without a gap, as of this run's read; undefined when this run read no log. */
  coverage?: Coverage;
  /** Why there is no coverage to judge by. */
  why?: string;
}

/** What planning one repository needs besides the repository itself. */
export interface PlanContext {
  options: PlanOptions;
  now: number;
  /** Every repository name in the tree (a removed repository's nested ones stay). */
  names: readonly string[];
  /** Filled as repositories are planned: the pinned digests kept that the plan would otherwise have removed. */
  inUse: InUseDigest[];
  /** Why pull rules selected nothing, each reason once (the pull index's coverage is shorter than a rule's window). */
  pullsHeld: string[];
}

export function planContext(names: readonly string[], options: PlanOptions = {}): PlanContext {
  return { options, now: options.now ?? Date.now(), names, inUse: [], pullsHeld: [] };
}

/** A span of milliseconds in the unit people read it in: 40s, 12m, 5.5h, 3.2 days. */
function spanText(ms: number): string {
  if (ms < 120_000) return `${Math.max(0, Math.round(ms / 1000))}s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)}m`;
  if (ms < 172_800_000) return `${Math.round(ms / 360_000) / 10}h`;
  return `${Math.round(ms / 8_640_000) / 10} days`;
}

/**
 * How old the end of the log files read may be (their latest line) before the
 * pull rules hold: a file is taken to hold the log up to now, unless it ends
 * over a day ago. A stale copy (a rotated file without the current one, a
 * log shipped late) would otherwise make every tag pulled since look unpulled.
 * A registry quiet for a day holds them too, until it logs again.
 */
const LOG_END_SLACK_MS = 24 * 3600 * 1000;

/** Why the pull rules cannot be judged for a window this long, or undefined when they can. */
function pullsHeldBecause(view: PullView | undefined, rules: Rules, now: number): string | undefined {
  const window = pullWindowMs(rules);
  const rule = (rules.unpulledForMs ?? 0) >= window ? `--unpulled-for ${rules.unpulledFor}` : `--keep-pulled-within ${rules.keepPulledWithin}`;
  if (!view?.coverage) return `${rule} selects nothing: ${view?.why ?? 'this run read no registry log'}`;
  const { from, to } = view.coverage;
  if (from > now - window) return `${rule} selects nothing: the pull index has seen the registry's log without a gap only since ${new Date(from).toISOString()} (coverage ${spanText(now - from)})`;
  if (to < now - LOG_END_SLACK_MS) return `${rule} selects nothing: the log the pull index has seen ends at ${new Date(to).toISOString()} (${spanText(now - to)} ago), and pulls since then are unknown: pass the registry's current log`;
  return undefined;
}

interface PullJudgement {
  lastUse?: LastUse;
  /** Digests pulled by digest within the rules' window: kept like digests in use. */
  pulled: Map<Digest, string[]>;
}

/** What the pull rules know of this repository: each tag's last use, and the digests pulled within their window. */
function judgePulls(repo: RepositoryState, rules: Rules | undefined, context: PlanContext): PullJudgement {
  if (!rules || pullWindowMs(rules) === 0) return { pulled: new Map() };
  const view = context.options.pulls;
  // Pulls the index saw within the window are facts, whatever its coverage: those digests stay even where the rules are held.
  const since = context.now - pullWindowMs(rules);
  const seen = view?.index.digestsPulledSince(repo.name, since) ?? new Map<Digest, number>();
  const pulled = new Map([...seen].map(([digest, at]): [Digest, string[]] => [digest, [`pulled ${new Date(at).toISOString()}`]]));
  const held = pullsHeldBecause(view, rules, context.now);
  if (held || !view) {
    if (held && !context.pullsHeld.includes(held)) context.pullsHeld.push(held);
    return { pulled };
  }
  return { lastUse: (tag) => view.index.lastUse(repo.name, tag, context.now), pulled };
}

/** What the arguments select of a repository: all of it, or the history of some tags. */
interface Scope {
  all: boolean;
  tags: Set<string>;
}

function inScope(scope: Scope, tag: string): boolean {
  return scope.all || scope.tags.has(tag);
}

/**
 * Step 1: the repository's scope, or undefined when the arguments leave it
 * alone. No REPOSITORY argument means every repository, unless `-x` is all
 * there is: then only what it names (and what that leaves unreachable), as
 * users of other tools expect; retention options widen it again.
 */
function scopeOf(repo: RepositoryState, options: PlanOptions): Scope | undefined {
  const selectors = options.selectors ?? [];
  const remove = options.remove ?? [];
  const named = remove.some((r) => r.repository === repo.name);
  if (selectors.length === 0 && remove.length > 0 && options.policy === undefined) return named ? { all: false, tags: new Set() } : undefined;
  if (selectors.length === 0) return { all: true, tags: new Set() };
  const mine = selectors.filter((s) => s.repository === repo.name);
  if (mine.length === 0) return named ? { all: false, tags: new Set() } : undefined;
  if (mine.some((s) => s.tag === undefined)) return { all: true, tags: new Set() };
  return { all: false, tags: new Set(mine.map((s) => s.tag as string)) };
}

const NOTHING: ReadonlySet<Digest> = new Set();

function spare(plan: Plan, repo: RepositoryState, problems: Problem[]): ReadonlySet<Digest> {
  plan.spared.push({ repository: repo.name, problems });
  return NOTHING;
}

/**
 * A RepositoryCheck held compactly: its tags' names in one string and their
 * digests as ids in the plan's digest table. A plan keeps a check of every
 * repository it touches to the end of the run; on a million-revision tree
 * (a thousand repositories of a hundred tags) objects of strings took 10 MiB
 * of heap. `tags` is made when read, an own enumerable property as before
 * (JSON and deep equality see it). The last one made is kept (`lastMade`):
 * apply's re-check reads one check's tags tag by tag, and a weak reference
 * would keep every check's alive until the report was written.
 */
class PackedCheck implements RepositoryCheck {
  declare readonly tags: Record<string, Digest>;

  constructor(
    readonly repository: string,
    names: string,
    ids: Uint32Array,
    table: DigestTable,
  ) {
    const make = (): Record<string, Digest> => {
      const tags: Record<string, Digest> = {};
      // Tag names hold no newline (the scan spares a repository with any other name).
      if (ids.length > 0) names.split('\n').forEach((name, i) => (tags[name] = table.digest(ids[i] as number)));
      lastMade = { check: this, tags };
      return tags;
    };
    Object.defineProperty(this, 'tags', { enumerable: true, get: () => (lastMade?.check === this ? lastMade.tags : make()) });
  }
}

let lastMade: { check: PackedCheck; tags: Record<string, Digest> } | undefined;

/** What apply re-checks before removing anything of the repository: every tag as the plan saw it. */
function check(plan: Plan, repo: RepositoryState): void {
  if (repo.tags.some((t) => t.current === undefined)) {
    plan.checks.push({ repository: repo.name, tags: Object.fromEntries(repo.tags.map((t) => [t.name, t.current as Digest])) });
    return;
  }
  const { table } = plan.manifests;
  const ids = Uint32Array.from(repo.tags, (t) => table.id(t.current as Digest));
  plan.checks.push(new PackedCheck(repo.name, repo.tags.map((t) => t.name).join('\n'), ids, table));
}

/** Step 2: `-x REPOSITORY`: every tag and revision goes; repositories nested below it stay. */
function planRemoval(repo: RepositoryState, context: PlanContext, plan: Plan): ReadonlySet<Digest> {
  const nested = context.names.filter((n) => n.startsWith(`${repo.name}/`));
  plan.repositories.push({ repository: repo.name, reason: 'named', nested });
  for (const t of repo.tags) plan.tags.push({ repository: repo.name, tag: t.name, digest: t.current ?? null, reason: 'repository-removed', detail: `repository ${repo.name} removed` });
  for (const digest of repo.revisions) plan.manifests.push({ repository: repo.name, digest, reason: 'repository-removed' });
  check(plan, repo);
  return new Set(repo.revisions);
}

type RemovedTags = Map<string, { reason: TagReason; detail: string; lastPulled?: string | null }>;

/** Step 3: the tags `-x` names, then the ordinary tags in scope that the retention rules select. */
function selectRemovedTags(repo: RepositoryState, scope: Scope, rules: Rules | undefined, context: PlanContext, lastUse: LastUse | undefined): RemovedTags {
  const removed: RemovedTags = new Map();
  for (const r of context.options.remove ?? []) {
    if (r.repository === repo.name && r.tag !== undefined) removed.set(r.tag, { reason: 'named', detail: `named by --remove ${r.repository}:${r.tag}` });
  }
  if (rules) {
    const eligible = repo.tags.filter((t) => fallbackSubject(t.name) === undefined && inScope(scope, t.name) && !removed.has(t.name));
    const byName = new Map(eligible.map((t) => [t.name, t]));
    for (const [tag, detail] of tagsSelectedByRules(eligible, rules, context.now, lastUse)) {
      const pulled = lastUse ? lastUse(byName.get(tag) as TagState).pulled : undefined;
      removed.set(tag, { reason: 'policy', detail, ...(lastUse ? { lastPulled: pulled === undefined ? null : new Date(pulled).toISOString() } : {}) });
    }
  }
  return removed;
}

/** The `depth` most recent earlier digests of a tag, so a rollback remains possible. */
function recentHistory(tag: TagState, closure: Closure, depth: number): Digest[] {
  return tag.index
    .filter((d) => d !== tag.current && closure.has(d))
    .sort((a, b) => (tag.indexTimes?.[b] ?? 0) - (tag.indexTimes?.[a] ?? 0) || (a < b ? -1 : 1))
    .slice(0, depth);
}

/** Step 4: every remaining ordinary tag keeps its manifest and `depth` earlier ones; returns the kept history by tag. */
function keepTags(repo: RepositoryState, closure: Closure, removed: RemovedTags, depth: number): Map<string, Set<Digest>> {
  const keptHistory = new Map<string, Set<Digest>>();
  for (const tag of repo.tags) {
    if (fallbackSubject(tag.name) !== undefined || removed.has(tag.name) || !tag.current) continue;
    closure.add(tag.current, `tag ${tag.name}`);
    if (depth === 0) continue;
    const earlier = recentHistory(tag, closure, depth);
    keptHistory.set(tag.name, new Set(earlier));
    for (const d of earlier) closure.add(d, `history of tag ${tag.name}`);
  }
  return keptHistory;
}

/** The pinned digests this repository holds, each with its users (pinned here by name, or anywhere). */
function pinsHeld(closure: Closure, repository: string, pinned: Pinned, pulled: ReadonlyMap<Digest, string[]>): Map<Digest, string[]> {
  const held = new Map<Digest, string[]>();
  const note = (digest: Digest, users: readonly string[]): void => {
    if (!closure.has(digest)) return; // a digest the repository does not hold is no root here
    const known = held.get(digest) ?? [];
    held.set(digest, [...known, ...users.filter((u) => !known.includes(u))]);
  };
  for (const [digest, users] of pinned.byRepository.get(repository) ?? []) note(digest, users);
  for (const [digest, users] of pinned.anywhere) note(digest, users);
  for (const [digest, users] of pulled) note(digest, users);
  return held;
}

/**
 * Step 4b: digests in use are roots like tags (their children and referrers
 * stay). Returns those the tags alone did not keep, with their users: what
 * the report names. Checked before any is added, so a pinned child of a
 * pinned index counts too.
 */
function keepPinned(repo: RepositoryState, closure: Closure, pinned: Pinned | undefined, pulled: ReadonlyMap<Digest, string[]>): Map<Digest, string[]> {
  const held = pinned || pulled.size > 0 ? pinsHeld(closure, repo.name, pinned ?? emptyPins(), pulled) : new Map<Digest, string[]>();
  const keptByPin = new Map([...held].filter(([digest]) => !closure.kept.has(digest)));
  for (const [digest, users] of held) closure.add(digest, `in use by ${users.join(', ')}`);
  return keptByPin;
}

/**
 * Step 5: fallback tags follow their subject: kept with it (and what they name
 * kept too, which may keep further subjects), removed with it when in scope.
 * One whose subject was never here is left alone.
 */
function decideFallbackTags(repo: RepositoryState, closure: Closure, removed: RemovedTags, scope: Scope): void {
  const keep = (t: TagState): void => {
    if (t.current) closure.add(t.current, `tag ${t.name}`);
  };
  const undecided = new Set(repo.tags.filter((t) => fallbackSubject(t.name) !== undefined && !removed.has(t.name)));
  for (const t of undecided) {
    if (closure.has(fallbackSubject(t.name) as Digest)) continue;
    undecided.delete(t);
    keep(t);
  }
  for (let changed = true; changed; ) {
    changed = false;
    for (const t of undecided) {
      if (!closure.kept.has(fallbackSubject(t.name) as Digest)) continue;
      undecided.delete(t);
      keep(t);
      changed = true;
    }
  }
  for (const t of undecided) {
    if (inScope(scope, t.name)) removed.set(t.name, { reason: 'subject-removed', detail: `its subject ${fallbackSubject(t.name)} is removed` });
    else keep(t);
  }
}

interface Decision {
  repo: RepositoryState;
  scope: Scope;
  removedTags: RemovedTags;
  closure: Closure;
  keptHistory: Map<string, Set<Digest>>;
  /** Pinned digests kept that the tags alone did not keep, with their users. */
  keptByPin: Map<Digest, string[]>;
}

/** The revisions the arguments let go, kept or not. */
function candidates({ repo, scope, removedTags, closure }: Decision): readonly Digest[] {
  if (scope.all) return repo.revisions;
  return [...new Set(repo.tags.filter((t) => inScope(scope, t.name) || removedTags.has(t.name)).flatMap((t) => t.index))].filter((d) => closure.has(d));
}

/** The revisions that go: in scope, and outside what the remaining tags (and pins) keep. */
function removedRevisions(decision: Decision): Set<Digest> {
  return new Set(candidates(decision).filter((d) => !decision.closure.kept.has(d)));
}

/** The pinned digests the plan would have removed but for their users, sorted, into the context. */
function noteInUse(decision: Decision, context: PlanContext): void {
  if (decision.keptByPin.size === 0) return;
  const couldGo = new Set(candidates(decision));
  for (const digest of [...decision.keptByPin.keys()].sort()) {
    if (couldGo.has(digest)) context.inUse.push({ repository: decision.repo.name, digest, users: decision.keptByPin.get(digest) as string[] });
  }
}

/** Tag index entries that are neither current nor kept history, of the tags that stay. */
function planIndexEntries({ repo, scope, removedTags, keptHistory }: Decision, removed: ReadonlySet<Digest>, plan: Plan): void {
  for (const tag of repo.tags) {
    if (removedTags.has(tag.name)) continue; // its whole directory goes
    for (const digest of tag.index) {
      if (digest === tag.current || keptHistory.get(tag.name)?.has(digest)) continue;
      if (removed.has(digest)) plan.indexEntries.push({ repository: repo.name, tag: tag.name, digest, reason: 'untagged' });
      else if (inScope(scope, tag.name)) plan.indexEntries.push({ repository: repo.name, tag: tag.name, digest, reason: 'history' });
    }
  }
}

/** Step 6: the decision into the plan: manifests (sorted), tags, index entries, and the re-check. */
function record(decision: Decision, plan: Plan): ReadonlySet<Digest> {
  const { repo, removedTags } = decision;
  const removed = removedRevisions(decision);
  const currentOfRemoved = new Set(repo.tags.filter((t) => removedTags.has(t.name)).map((t) => t.current));
  for (const digest of [...removed].sort()) {
    plan.manifests.push({ repository: repo.name, digest, reason: currentOfRemoved.has(digest) ? 'tag-removed' : 'untagged' });
  }
  for (const tag of repo.tags) {
    const why = removedTags.get(tag.name);
    if (why) plan.tags.push({ repository: repo.name, tag: tag.name, digest: tag.current ?? null, ...why });
  }
  const entriesBefore = plan.indexEntries.length;
  planIndexEntries(decision, removed, plan);
  if (removed.size > 0 || removedTags.size > 0 || plan.indexEntries.length > entriesBefore) check(plan, repo);
  return removed;
}

/**
 * Plans one repository into `plan`, given the manifests its revisions name,
 * and returns the revisions it removes. Repositories are independent, so the
 * scan can hand them over one at a time and forget each afterwards.
 */
export function planRepository(repo: RepositoryState, manifests: ReadonlyMap<Digest, ParsedManifest>, context: PlanContext, plan: Plan): ReadonlySet<Digest> {
  const scope = scopeOf(repo, context.options);
  if (!scope) return NOTHING;
  const problems = [...repo.problems, ...keptRevisions(repo, manifests).problems];
  if (problems.length > 0) return spare(plan, repo, problems);
  if ((context.options.remove ?? []).some((r) => r.repository === repo.name && r.tag === undefined)) return planRemoval(repo, context, plan);
  const rules = context.options.policy ? rulesFor(context.options.policy, repo.name) : undefined;
  const pulls = judgePulls(repo, rules, context);
  const removedTags = selectRemovedTags(repo, scope, rules, context, pulls.lastUse);
  const closure = new Closure(repo, manifests);
  const keptHistory = keepTags(repo, closure, removedTags, rules?.history ?? 0);
  const keptByPin = keepPinned(repo, closure, context.options.pinned, pulls.pulled);
  decideFallbackTags(repo, closure, removedTags, scope);
  if (closure.problems.length > 0) return spare(plan, repo, closure.problems);
  const decision = { repo, scope, removedTags, closure, keptHistory, keptByPin };
  noteInUse(decision, context);
  return record(decision, plan);
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
