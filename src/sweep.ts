/**
 * One purge of a storage root, start to end: scan, plan, predict, and unless
 * it is a dry run, apply and run garbage-collect, then measure what changed.
 * Returns a report; printing and exit codes belong to the CLI.
 */
import { applyPlan } from './apply.js';
import { UsageError } from './errors.js';
import {
  type GcDecision,
  type GcResult,
  checkConfigMatchesRoot,
  checkSupportedVersion,
  chooseGcFlags,
  findRegistryBinary,
  localRegistryVersion,
  runLocalGc,
} from './gc.js';
import {
  type Plan,
  type Prediction,
  type Selector,
  checkSelectors,
  keepsUntagged,
  planPurge,
  predictCollect,
  predictTotals,
} from './planner.js';
import { type Inventory, type Problem, type Totals, isRegistryRoot, scan, totalsOf } from './scanner.js';

export interface SweepOptions {
  root: string;
  selectors?: Selector[];
  dryRun: boolean;
  /** Run garbage-collect after the purge (default true). */
  gc?: boolean;
  registryBin?: string;
  config?: string;
  journal?: string;
  concurrency?: number;
  /** Asked after planning and before any change; false stops the run. */
  confirm?: (preview: SweepPreview) => Promise<boolean>;
  onRemove?: (relativePath: string) => void;
  signal?: AbortSignal;
}

export interface SweepPreview {
  root: string;
  before: Totals;
  plan: Plan;
  predicted: Prediction;
  gc: GcDecision | undefined;
}

export interface GcReport {
  ran: boolean;
  command: string[] | null;
  exitCode: number | null;
  decision: string | null;
  summary: GcResult['summary'] | null;
  skipped: string | null;
  output: string;
}

export interface Amount {
  blobs: number;
  bytes: number;
}

export interface SweepReport {
  dryRun: boolean;
  root: string;
  registryVersion: string | null;
  before: Totals;
  after: Totals;
  plan: Plan;
  predicted: Amount;
  /** Measured by scanning again after the run; null on a dry run. */
  freed: Amount | null;
  gc: GcReport;
  problems: Problem[];
  durationMs: number;
}

export class Declined extends UsageError {}

function gcNotRun(skipped: string | null, decision: string | null = null): GcReport {
  return { ran: false, command: null, exitCode: null, decision, summary: null, skipped, output: '' };
}

export async function sweep(options: SweepOptions): Promise<SweepReport> {
  const started = Date.now();
  const { root, dryRun } = options;
  const wantGc = options.gc ?? true;
  if (!(await isRegistryRoot(root))) {
    throw new UsageError(`${root} is not a registry storage root (no docker/registry/v2 below it)`);
  }
  // The binary and its version are settled before anything changes: a purge without its GC is half a job.
  let bin: string | undefined;
  let version: string | undefined;
  if (wantGc || options.registryBin) {
    bin = await findRegistryBinary(options.registryBin);
    if (bin) {
      version = await localRegistryVersion(bin);
      checkSupportedVersion(version);
    } else if (!dryRun && wantGc) {
      throw new UsageError('no registry binary found (registry or docker-registry on PATH): install one, pass --registry-bin, or use --no-gc');
    }
  }
  if (options.config) await checkConfigMatchesRoot(options.config, root, process.env);

  const inventory = await scan(root, { concurrency: options.concurrency });
  checkSelectors(inventory, options.selectors ?? []);
  const plan = planPurge(inventory, options.selectors ?? []);
  const predicted = predictCollect(inventory, plan, version);
  const before = totalsOf(inventory);
  const decision = version ? chooseGcFlags(version, keepsUntagged(inventory, plan)) : undefined;
  const problems: Problem[] = [...inventory.problems, ...plan.spared.flatMap((s) => s.problems)];
  for (const p of predicted.blockedBy) if (!problems.includes(p)) problems.push(p);
  const report: SweepReport = {
    dryRun,
    root: inventory.root,
    registryVersion: version ?? null,
    before,
    after: predictTotals(inventory, plan, predicted),
    plan,
    predicted: { blobs: predicted.blobs, bytes: predicted.bytes },
    freed: null,
    gc: gcNotRun(dryRun ? 'dry run' : null, decision?.why ?? null),
    problems,
    durationMs: 0,
  };
  if (dryRun) {
    report.durationMs = Date.now() - started;
    return report;
  }

  if (options.confirm && !(await options.confirm({ root: inventory.root, before, plan, predicted, gc: wantGc ? decision : undefined }))) {
    throw new Declined('nothing changed: not confirmed');
  }

  const applied = await applyPlan(root, plan, { journal: options.journal, onRemove: options.onRemove });
  problems.push(...applied.skipped);
  report.plan = { ...plan, manifests: applied.manifests, indexEntries: applied.indexEntries };

  const nothingToCollect = applied.manifests.length === 0 && predicted.blobs === 0;
  if (!wantGc) {
    report.gc = gcNotRun('--no-gc', decision?.why ?? null);
  } else if (predicted.blockedBy.length > 0) {
    report.gc = gcNotRun(`garbage-collect is unsafe on this tree: ${predicted.blockedBy[0]?.message ?? ''}`, decision?.why ?? null);
  } else if (nothingToCollect) {
    report.gc = gcNotRun('nothing to collect', decision?.why ?? null);
  } else {
    const result = await runLocalGc({ bin: bin as string, root, config: options.config, args: decision?.args, signal: options.signal });
    report.gc = { ...result, command: result.command, decision: decision?.why ?? null, summary: result.summary ?? null, skipped: null };
    if (result.exitCode !== 0) problems.push({ message: `garbage-collect exited with ${result.exitCode}: ${lastLine(result.output)}` });
  }

  const afterScan: Inventory = await scan(root, { concurrency: options.concurrency });
  report.after = totalsOf(afterScan);
  report.freed = { blobs: before.blobs - report.after.blobs, bytes: before.bytes - report.after.bytes };
  report.durationMs = Date.now() - started;
  return report;
}

function lastLine(output: string): string {
  const lines = output.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}
