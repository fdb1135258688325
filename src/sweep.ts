/**
 * One purge of a registry's storage, start to end: scan and plan while the
 * registry serves (read-only work), then, inside the maintenance window,
 * re-check, apply and garbage-collect, and finally measure what changed.
 * Returns a report; printing and exit codes belong to the CLI.
 */
import { type ApplyResult, applyPlan } from './apply/apply.js';
import { emptyTrash, trashFor } from './apply/trash.js';
import type { TargetKind } from './docker/locator.js';
import { type MaintenanceWindow, unpausedWindow } from './docker/maintenanceWindow.js';
import { NotConfirmedError } from './errors.js';
import { type GcDecision, type GcResult, type GcRunner, chooseGcFlags, gcLineCounter } from './gc/garbageCollect.js';
import type { Prediction, Problem, ProgressSink, Totals } from './model.js';
import type { Plan } from './plan/planner.js';
import { type RepositoryReclaim, type TreePlan, measureTree, planTree } from './plan/planTree.js';
import type { Policy } from './plan/policy.js';
import type { Selector } from './plan/selectors.js';
import { Layout } from './storage/layout.js';
import { requireRegistryRoot } from './storage/scan.js';
import type { ScanPool } from './storage/scanPool.js';

export interface SweepOptions {
  target: { kind: TargetKind; name: string; root: string };
  selectors?: Selector[];
  /** `-x`: tags and repositories to remove. */
  remove?: Selector[];
  /** Tag retention rules (command line and policy file). */
  policy?: Policy;
  dryRun: boolean;
  /** Runs garbage-collect after the purge; undefined means no garbage-collect (`--no-gc`). */
  gcRunner?: GcRunner;
  /** The registry version when known without a runner (a dry run). */
  registryVersion?: string;
  window?: MaintenanceWindow;
  journal?: string;
  /** Threads the caller started for the scans (see ScanOptions.pool); it closes them. */
  pool?: ScanPool;
  /** Asked after planning and before any change; false stops the run. */
  confirm?: (preview: SweepPreview) => Promise<boolean>;
  onProgress?: ProgressSink;
}

export interface SweepPreview {
  root: string;
  before: Totals;
  after: Totals;
  plan: Plan;
  predicted: Prediction;
  gc: GcDecision | undefined;
  window: string;
}

interface GcReport {
  ran: boolean;
  command: string[] | null;
  exitCode: number | null;
  decision: string | null;
  summary: GcResult['summary'] | null;
  skipped: string | null;
  output: string;
  durationMs: number | null;
}

interface Amount {
  blobs: number;
  bytes: number;
}

export interface SweepReport {
  dryRun: boolean;
  target: { kind: TargetKind; name: string; root: string; registryVersion: string | null };
  before: Totals;
  after: Totals;
  plan: Plan;
  predicted: Amount;
  /** Measured by scanning again after the run; null on a dry run. */
  freed: Amount | null;
  /** The prediction split by repository, largest first. */
  perRepository: RepositoryReclaim[];
  /** Every removed directory, relative to the root (empty on a dry run). */
  removedPaths: string[];
  gc: GcReport;
  problems: Problem[];
  pausedMs: number;
  durationMs: number;
}

function gcNotRun(skipped: string | null, decision: GcDecision | undefined): GcReport {
  return { ran: false, command: null, exitCode: null, decision: decision?.why ?? null, summary: null, skipped, output: '', durationMs: null };
}

function lastLine(output: string): string {
  const lines = output.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

/** Every problem once: the tree's, the spared repositories', and what keeps garbage-collect from running. */
function problemsOf(planned: TreePlan): Problem[] {
  const problems: Problem[] = [...planned.problems, ...planned.plan.spared.flatMap((s) => s.problems)];
  const listed = new Set(problems);
  problems.push(...planned.predicted.blockedBy.filter((p) => !listed.has(p)));
  return problems;
}

interface CollectStep {
  runner: GcRunner | undefined;
  decision: GcDecision | undefined;
  predicted: Prediction;
  applied: ApplyResult;
  signal: AbortSignal;
  onProgress?: ProgressSink;
}

/** Inside the window, after the apply: garbage-collect, or why it does not run. */
async function collectGarbage({ runner, decision, predicted, applied, signal, onProgress }: CollectStep): Promise<GcReport> {
  if (!runner) return gcNotRun('--no-gc', decision);
  if (predicted.blockedBy.length > 0) return gcNotRun(`garbage-collect is unsafe on this tree: ${predicted.blockedBy[0]?.message ?? ''}`, decision);
  if (applied.manifests.length === 0 && applied.repositories.length === 0 && predicted.blobs === 0) return gcNotRun('nothing to collect', decision);
  const started = Date.now();
  const result = await runner.collect(decision?.args ?? [], signal, gcLineCounter(onProgress));
  signal.throwIfAborted();
  return { ...result, decision: decision?.why ?? null, summary: result.summary ?? null, skipped: null, durationMs: Date.now() - started };
}

/** The report of a dry run: what the plan and the prediction say, nothing changed yet. */
function plannedReport(options: SweepOptions, planned: TreePlan, version: string | undefined, decision: GcDecision | undefined): SweepReport {
  const { kind, name } = options.target;
  return {
    dryRun: options.dryRun,
    target: { kind, name, root: planned.root, registryVersion: version ?? null },
    before: planned.before,
    after: planned.after,
    plan: planned.plan,
    predicted: { blobs: planned.predicted.blobs, bytes: planned.predicted.bytes },
    freed: null,
    perRepository: planned.perRepository,
    removedPaths: [],
    gc: gcNotRun(options.dryRun ? 'dry run' : null, decision),
    problems: problemsOf(planned),
    pausedMs: 0,
    durationMs: 0,
  };
}

export async function sweep(options: SweepOptions): Promise<SweepReport> {
  const started = Date.now();
  const { gcRunner } = options;
  const root = new Layout(options.target.root).root;
  requireRegistryRoot(root);
  const version = gcRunner?.version ?? options.registryVersion;
  const { selectors, remove, policy, pool, onProgress } = options;
  const planned = await planTree(root, { selectors, remove, policy, pool, onProgress, times: policy !== undefined, registryVersion: version });
  const decision = version ? chooseGcFlags(version, planned.keepsUntagged) : undefined;
  const report = plannedReport(options, planned, version, decision);
  if (options.dryRun) return { ...report, durationMs: Date.now() - started };

  const { plan, predicted, before } = planned;
  const window = options.window ?? unpausedWindow();
  const preview: SweepPreview = { root, before, after: report.after, plan, predicted, gc: gcRunner ? decision : undefined, window: window.description };
  if (options.confirm && !(await options.confirm(preview))) throw new NotConfirmedError('nothing changed: not confirmed');

  const { value: outcome, pausedMs } = await window.run(async (signal) => {
    // The plan was made while the registry served; anything pushed since then voids it.
    const applied = await applyPlan(root, plan, { journal: options.journal, onChange: 'abort', signal, onProgress: options.onProgress, trash: trashFor(root) });
    return { applied, gc: await collectGarbage({ runner: gcRunner, decision, predicted, applied, signal, onProgress: options.onProgress }) };
  });

  // Outside the window: the registry already serves again while the removed directories are unlinked.
  emptyTrash(root);
  const { applied, gc } = outcome;
  report.problems.push(...applied.skipped);
  report.plan = { ...plan, repositories: applied.repositories, tags: applied.tags, manifests: applied.manifests, indexEntries: applied.indexEntries };
  report.removedPaths = applied.paths;
  report.gc = gc;
  if (gc.ran && gc.exitCode !== 0) report.problems.push({ message: `garbage-collect exited with ${gc.exitCode}: ${lastLine(gc.output)}` });
  report.pausedMs = pausedMs;
  report.after = await measureTree(root, { pool: options.pool, onProgress: options.onProgress, phase: 'rescan' });
  report.freed = { blobs: before.blobs - report.after.blobs, bytes: before.bytes - report.after.bytes };
  report.durationMs = Date.now() - started;
  return report;
}
