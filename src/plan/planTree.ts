/**
 * The read-only half of a sweep in one streaming pass: scan, plan and the
 * exact prediction together. Each repository is planned and marked as soon as
 * it is scanned and then forgotten; what stays is the plan (packed) and the
 * global mark's compact digest table, so memory follows the number of distinct
 * digests, not the size of every manifest and tag in the tree.
 */
import type { BlobPart, Digest, Prediction, Problem, Totals } from '../model.js';
import { type DigestTable, Flag } from '../storage/digestTable.js';
import type { ScanOptions, TreeSource } from '../storage/source.js';
import { GlobalMark } from './globalMark.js';
import type { InUseDigest } from './pins.js';
import { type Plan, type PlanContext, type PlanOptions, emptyPlan, planContext, planRepository, predictTotals, repositoryKeepsUntagged } from './planner.js';
import { type BlobsLeft, nothingLeft } from './freed.js';
import { checkSelectedRepositories, checkSelectedTags } from './selectors.js';
import { type UsageReport, UsageTally } from './usage.js';

export interface PlanTreeOptions extends ScanOptions, PlanOptions {
  /**
   * This run recovered a run that died (its watchdog's note, or its lock
   * taken over): a `-x` target that is gone is taken as removed by it, not
   * refused, so the same command run again finishes its work.
   */
  afterDeadRun?: boolean;
  /** Decides how garbage-collect enumerates repositories and reads manifests. */
  registryVersion?: string;
  /** regsweep sweeps the blobs itself (`--gc builtin`): blobs newer than `recentAfter` stay. */
  builtin?: boolean;
  /** `--usage`: also tally the blobs each repository references (nothing of it is done otherwise). */
  usage?: boolean;
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

export interface TreePlan {
  root: string;
  /** The name of every repository the scan found. */
  repositories: string[];
  plan: Plan;
  predicted: Prediction;
  before: Totals;
  /** The totals once the plan is applied and garbage-collect has run. */
  after: Totals;
  perRepository: RepositoryReclaim[];
  /** Does the tree, as the plan leaves it, keep a manifest no tag names? (`--delete-untagged` would take it.) */
  keepsUntagged: boolean;
  /** Problems outside any repository. */
  problems: Problem[];
  /** Pinned digests (in use) kept that the plan would otherwise have removed, by repository. */
  inUse: InUseDigest[];
  /** Why pull rules selected nothing (the pull index's coverage is shorter than their window). */
  pullsHeld: string[];
  /** With `usage`: where the disk goes, per repository. */
  usage?: UsageReport;
  /** The digests garbage-collect's sweep will free, sorted (a string each: made on the first call, inside the window). */
  sweptDigests(): Digest[];
  /** The scan's digest table (ids for sweeps), and whether the sweep frees the blob of an id: no string per blob. */
  table: DigestTable;
  sweeps(id: number): boolean;
  /** Did the mark reach this digest (a kept revision, or what one references)? */
  isMarked(digest: Digest): boolean;
  /** Was there a blob with this digest when the scan ran? */
  hadBlob(digest: Digest): boolean;
  /** The size of a blob's data as scanned. */
  sizeOf(digest: Digest): number;
  /**
   * After the run: walks the tree again for its totals, and finds which of the
   * scanned blobs are still there (with `recentAfter`, which predicted ones have
   * data newer than that). Blobs new since the scan count in the totals only.
   */
  remeasure(options: ScanOptions): Promise<{ after: Totals; left: BlobsLeft }>;
}

/**
 * Splits the predicted bytes by repository. A swept blob counts once, for the
 * first repository (by name) whose removed manifests used it, so the rows add
 * up to the prediction exactly.
 */
export function reclaimRows(plan: Plan, mark: GlobalMark): RepositoryReclaim[] {
  const rows = new Map<string, RepositoryReclaim>();
  const row = (repository: string): RepositoryReclaim => {
    let r = rows.get(repository);
    if (!r) rows.set(repository, (r = { repository, manifests: 0, tags: 0, predictedBytes: 0 }));
    return r;
  };
  for (const t of plan.tags) row(t.repository).tags++;
  for (const m of plan.manifests) row(m.repository).manifests++;
  const { repositories, unreferenced } = mark.bytesByRepository();
  for (const [repository, bytes] of repositories) row(repository).predictedBytes += bytes;
  if (unreferenced > 0) row(UNREFERENCED).predictedBytes += unreferenced;
  return [...rows.values()].sort((a, b) => b.predictedBytes - a.predictedBytes || (a.repository < b.repository ? -1 : 1));
}

/** Scans, plans and predicts in one pass over the tree, whichever storage holds it. */
export async function planTree(source: TreeSource, options: PlanTreeOptions = {}): Promise<TreePlan> {
  const mark = new GlobalMark(options.registryVersion, undefined, { builtin: options.builtin });
  const plan = emptyPlan(mark.table);
  // `-x` naming what is gone after a run died with the same work: done already, not a typo.
  const selectors = [...(options.selectors ?? []), ...(options.afterDeadRun ? [] : (options.remove ?? []))];
  let context: PlanContext | undefined;
  let found: string[] = [];
  let keepsUntagged = false;
  const usage = options.usage ? new UsageTally(mark, options.pulls?.index.coverage ? options.pulls.index : undefined) : undefined;
  const { counts, problems } = await source.walk(options, {
    found(repositories) {
      const names = repositories.map((r) => r.name);
      found = names;
      checkSelectedRepositories(source.where, names, selectors);
      context = planContext(names, options);
    },
    repository({ repo, manifests }) {
      checkSelectedTags(repo, selectors);
      usage?.repository(repo, manifests);
      const removed = planRepository(repo, manifests, context as PlanContext, plan);
      mark.repository(repo, manifests, removed);
      keepsUntagged ||= repositoryKeepsUntagged(repo, removed);
    },
    blobs: (part) => mark.blobs(part),
  });
  mark.treeProblem(problems);
  const predicted = mark.sweep();
  const before = { ...counts, ...mark.totals() };
  let swept: Digest[] | undefined;
  return {
    root: source.where,
    repositories: found,
    plan,
    predicted,
    before,
    after: predictTotals(before, plan, predicted),
    perRepository: reclaimRows(plan, mark),
    keepsUntagged,
    problems,
    inUse: context?.inUse ?? [],
    pullsHeld: context?.pullsHeld ?? [],
    usage: usage?.report(),
    sweptDigests: () => (swept ??= mark.sweptDigests()),
    table: mark.table,
    sweeps: (id) => mark.sweeps(id),
    isMarked: (digest) => mark.isMarked(digest),
    hadBlob: (digest) => mark.hadBlob(digest),
    sizeOf: (digest) => mark.sizeOf(digest),
    remeasure: (scan) => remeasure(source, mark, scan),
  };
}

/**
 * Only the totals of a tree (after a purge): the same walk, with nothing
 * planned; `seen` gets each part of blobs. A walk reads each blob once (one
 * prefix directory holds its digest), so counting needs no table.
 */
export async function measureTree(source: TreeSource, options: ScanOptions = {}, seen?: (part: BlobPart) => void): Promise<Totals> {
  const totals = { blobs: 0, bytes: 0 };
  const { counts } = await source.walk(options, {
    repository() {},
    blobs(part) {
      totals.blobs += part.sizes.length;
      for (const size of part.sizes) totals.bytes += size;
      seen?.(part);
    },
  });
  return { ...counts, ...totals };
}

/**
 * The totals after a run, and the scanned blobs still there, looked up in the
 * scan's own table (no second table of the tree): predicted ones apart from
 * kept ones, at the sizes the scan read.
 */
async function remeasure(source: TreeSource, mark: GlobalMark, options: ScanOptions): Promise<{ after: Totals; left: BlobsLeft }> {
  const left = nothingLeft();
  const { table } = mark;
  const add = (amount: { blobs: number; bytes: number }, bytes: number): void => {
    amount.blobs++;
    amount.bytes += bytes;
  };
  const after = await measureTree(source, options, (part) => {
    const recent = new Set(part.recent);
    for (let i = 0; i < part.sizes.length; i++) {
      const id = table.findBytes(part.digests, i * 32);
      if (id < 0 || !table.has(id, Flag.blob)) continue; // new since the scan
      const size = table.size(id);
      if (!mark.sweeps(id)) {
        add(left.kept, size);
        continue;
      }
      add(left.predicted, size);
      if (recent.has(i)) add(left.pushedSince, size);
    }
  });
  return { after, left };
}
