/**
 * One purge of a registry's storage, start to end: scan and plan while the
 * registry serves (read-only work), then, inside the maintenance window,
 * re-check, apply and garbage-collect, and finally measure what changed.
 * Returns a report; printing and exit codes belong to the CLI.
 */
import { applyPlan, emptyTrash, trashFor } from './apply/apply.js';
import type { Collector } from './gc/gcRunners.js';
import { UsageError } from './errors.js';
import { type GcDecision, type GcResult, chooseGcFlags } from './gc/garbageCollect.js';
import { Layout } from './storage/layout.js';
import type { Target, TargetKind } from './docker/locator.js';
import { type MaintenanceWindow, unpausedWindow } from './docker/maintenanceWindow.js';
import type { Plan, Prediction, RepositoryReclaim, Selector } from './plan/planner.js';
import { type ProgressSink, gcLineCounter } from './progress.js';
import type { Policy } from './plan/policy.js';
import { type Problem, type ScanPool, type Totals, requireRegistryRoot } from './storage/scan.js';
import { measure, survey } from './plan/planTree.js';

export interface SweepOptions {
  target: Pick<Target, 'kind' | 'name' | 'root'>;
  selectors?: Selector[];
  /** `-x`: tags and repositories to remove. */
  remove?: Selector[];
  /** Tag retention rules (command line and policy file). */
  policy?: Policy;
  dryRun: boolean;
  /** Runs garbage-collect after the purge; undefined means no garbage-collect (`--no-gc`). */
  collector?: Collector;
  /** The registry version when known without a collector (a dry run). */
  registryVersion?: string;
  window?: MaintenanceWindow;
  journal?: string;
  concurrency?: number;
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

export interface GcReport {
  ran: boolean;
  command: string[] | null;
  exitCode: number | null;
  decision: string | null;
  summary: GcResult['summary'] | null;
  skipped: string | null;
  output: string;
  durationMs: number | null;
}

export interface Amount {
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

export class Declined extends UsageError {}

function gcNotRun(skipped: string | null, decision: string | null = null): GcReport {
  return { ran: false, command: null, exitCode: null, decision, summary: null, skipped, output: '', durationMs: null };
}

function lastLine(output: string): string {
  const lines = output.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

export async function sweep(options: SweepOptions): Promise<SweepReport> {
  const started = Date.now();
  const { dryRun, collector } = options;
  const root = new Layout(options.target.root).root;
  requireRegistryRoot(root);
  const version = collector?.version ?? options.registryVersion;

  const surveyed = await survey(root, {
    concurrency: options.concurrency,
    pool: options.pool,
    times: options.policy !== undefined,
    onProgress: options.onProgress,
    selectors: options.selectors,
    remove: options.remove,
    policy: options.policy,
    registryVersion: version,
  });
  const { plan, predicted, before } = surveyed;
  const decision = version ? chooseGcFlags(version, surveyed.keepsUntagged) : undefined;
  const problems: Problem[] = [...surveyed.problems, ...plan.spared.flatMap((s) => s.problems)];
  const listed = new Set(problems);
  problems.push(...predicted.blockedBy.filter((p) => !listed.has(p)));
  const window = options.window ?? unpausedWindow();
  const report: SweepReport = {
    dryRun,
    target: { kind: options.target.kind, name: options.target.name, root, registryVersion: version ?? null },
    before,
    after: surveyed.after,
    plan,
    predicted: { blobs: predicted.blobs, bytes: predicted.bytes },
    freed: null,
    perRepository: surveyed.perRepository,
    removedPaths: [],
    gc: gcNotRun(dryRun ? 'dry run' : null, decision?.why ?? null),
    problems,
    pausedMs: 0,
    durationMs: 0,
  };
  if (dryRun) {
    report.durationMs = Date.now() - started;
    return report;
  }

  const preview: SweepPreview = { root, before, after: report.after, plan, predicted, gc: collector ? decision : undefined, window: window.description };
  if (options.confirm && !(await options.confirm(preview))) {
    throw new Declined('nothing changed: not confirmed');
  }

  const { value: outcome, pausedMs } = await window.run(async (signal) => {
    // The plan was made while the registry served; anything pushed since then voids it.
    const applied = await applyPlan(root, plan, { journal: options.journal, onChange: 'abort', signal, onProgress: options.onProgress, trash: trashFor(root) });
    let gc: GcReport;
    if (!collector) {
      gc = gcNotRun('--no-gc', decision?.why ?? null);
    } else if (predicted.blockedBy.length > 0) {
      gc = gcNotRun(`garbage-collect is unsafe on this tree: ${predicted.blockedBy[0]?.message ?? ''}`, decision?.why ?? null);
    } else if (applied.manifests.length === 0 && applied.repositories.length === 0 && predicted.blobs === 0) {
      gc = gcNotRun('nothing to collect', decision?.why ?? null);
    } else {
      const gcStarted = Date.now();
      const result = await collector.collect(decision?.args ?? [], signal, gcLineCounter(options.onProgress));
      signal.throwIfAborted();
      gc = { ...result, decision: decision?.why ?? null, summary: result.summary ?? null, skipped: null, durationMs: Date.now() - gcStarted };
    }
    return { applied, gc };
  });

  // Outside the window: the registry already serves again while the removed directories are unlinked.
  emptyTrash(root);
  problems.push(...outcome.applied.skipped);
  const { repositories, tags, manifests, indexEntries } = outcome.applied;
  report.plan = { ...plan, repositories, tags, manifests, indexEntries };
  report.removedPaths = outcome.applied.paths;
  report.gc = outcome.gc;
  if (outcome.gc.ran && outcome.gc.exitCode !== 0) {
    problems.push({ message: `garbage-collect exited with ${outcome.gc.exitCode}: ${lastLine(outcome.gc.output)}` });
  }
  report.pausedMs = pausedMs;
  report.after = await measure(root, { concurrency: options.concurrency, pool: options.pool, onProgress: options.onProgress, phase: 'rescan' });
  report.freed = { blobs: before.blobs - report.after.blobs, bytes: before.bytes - report.after.bytes };
  report.durationMs = Date.now() - started;
  return report;
}
