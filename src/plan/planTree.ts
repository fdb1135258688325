/**
 * The read-only half of a sweep in one streaming pass: scan, plan and the
 * exact prediction together. Each repository is planned and marked as soon as
 * it is scanned and then forgotten; what stays is the plan (packed) and the
 * Ledger's compact digest table, so memory follows the number of distinct
 * digests, not the size of every manifest and tag in the tree.
 */
import { Ledger } from './globalMark.js';
import { Layout } from '../storage/layout.js';
import {
  type Plan,
  type PlanOptions,
  type Prediction,
  type RepositoryReclaim,
  checkSelectedRepositories,
  checkSelectedTags,
  emptyPlan,
  planContext,
  planRepository,
  predictTotals,
  reclaimRows,
  repositoryKeepsUntagged,
} from './planner.js';
import type { PlanContext } from './planner.js';
import type { Problem, ScanOptions, Totals } from '../storage/scan.js';
import { walkTree } from '../storage/scan.js';

export interface SurveyOptions extends ScanOptions, PlanOptions {
  /** Decides how garbage-collect enumerates repositories and reads manifests. */
  registryVersion?: string;
}

export interface Survey {
  root: string;
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
}

/** Scans, plans and predicts in one pass over the tree. */
export async function survey(root: string, options: SurveyOptions = {}): Promise<Survey> {
  const ledger = new Ledger(options.registryVersion);
  const plan = emptyPlan(ledger.table);
  const selectors = [...(options.selectors ?? []), ...(options.remove ?? [])];
  const counts = { repositories: 0, tags: 0, manifests: 0 };
  let context: PlanContext | undefined;
  let keepsUntagged = false;
  const blobProblems: Problem[] = [];
  const treeProblems = await walkTree(root, options, {
    found(repositories) {
      const names = repositories.map((r) => r.name);
      checkSelectedRepositories(new Layout(root).root, names, selectors);
      context = planContext(names, options);
    },
    repository({ repo, manifests }) {
      checkSelectedTags(repo, selectors);
      counts.repositories++;
      counts.tags += repo.tags.length;
      counts.manifests += repo.revisions.length;
      const removed = planRepository(repo, manifests, context as PlanContext, plan);
      ledger.repository(repo, manifests, removed);
      keepsUntagged ||= repositoryKeepsUntagged(repo, removed);
    },
    blobs(part) {
      ledger.blobs({ ...part, problems: [] });
      blobProblems.push(...part.problems);
    },
  });
  // Blob parts arrive in any order; their problems are listed by path so two runs read alike.
  const problems = [...treeProblems, ...blobProblems.sort((a, b) => ((a.path ?? '') < (b.path ?? '') ? -1 : 1))];
  ledger.treeProblem(problems);
  const predicted = ledger.sweep();
  const before = { ...counts, ...ledger.totals() };
  return {
    root: new Layout(root).root,
    plan,
    predicted,
    before,
    after: predictTotals(before, plan, predicted),
    perRepository: reclaimRows(plan, ledger),
    keepsUntagged,
    problems,
  };
}

/** Only the totals of a tree (after a purge): the same walk, with nothing planned. */
export async function measure(root: string, options: ScanOptions = {}): Promise<Totals> {
  const ledger = new Ledger();
  const counts = { repositories: 0, tags: 0, manifests: 0 };
  await walkTree(root, options, {
    repository({ repo }) {
      counts.repositories++;
      counts.tags += repo.tags.length;
      counts.manifests += repo.revisions.length;
    },
    blobs: (part) => ledger.blobs(part),
  });
  return { ...counts, ...ledger.totals() };
}
