/**
 * One purge of a registry's storage, start to end: scan and plan while the
 * registry serves (read-only work), then, inside the maintenance window,
 * re-check, apply and garbage-collect, and finally measure what changed.
 * Returns a report; printing and exit codes belong to the CLI.
 */
import type { ApplyResult } from './apply/apply.js';
import type { BlobSweepResult } from './apply/blobSweep.js';
import type { TargetKind } from './docker/locator.js';
import { type BroughtBack, type MaintenanceWindow, unpausedWindow } from './docker/maintenanceWindow.js';
import type { Recovery } from './docker/recovery.js';
import { startWatchdog } from './docker/watchdog.js';
import { NotConfirmedError, RollbackError } from './errors.js';
import type { BlobCache } from './gc/blobCache.js';
import { type GcDecision, type GcResult, type GcRunner, chooseGcFlags, gcLineCounter } from './gc/garbageCollect.js';
import type { Digest, Prediction, Problem, ProgressSink, Totals } from './model.js';
import type { InUseDigest, Pinned } from './plan/pins.js';
import type { Plan, PullView } from './plan/planner.js';
import type { PullReport } from './plan/pullIndex.js';
import { checkFreed, collectorOf } from './plan/freed.js';
import { type RepositoryReclaim, type TreePlan, planTree } from './plan/planTree.js';
import type { UsageReport } from './plan/usage.js';
import type { Policy } from './plan/policy.js';
import type { Selector } from './plan/selectors.js';
import { type HeldLock, type LockState, processRef } from './storage/lockRecord.js';
import type { RequestCount, TreeSource } from './storage/source.js';
import { PROCESS_CLOCK, type StorageClock } from './storage/storageClock.js';
import type { StaleUpload } from './storage/uploads.js';

export interface SweepOptions {
  target: { kind: TargetKind; name: string; root: string };
  /** The storage's clock where known without a lock (a bucket's server, from its responses); the lock's, else this process's. */
  clock?: StorageClock;
  /** What the run reads and changes: the registry's storage. */
  storage: RunStorage;
  selectors?: Selector[];
  /** `-x`: tags and repositories to remove. */
  remove?: Selector[];
  /** Tag retention rules (command line and policy file). */
  policy?: Policy;
  /** Digests in use (the engine's containers and services, `--keep-digests`): kept like tagged manifests. */
  pinned?: Pinned;
  /** The pull index as of this run's log read, for the pull rules, what the run read (the report's `pulls`), and its write. */
  pulls?: SweepPulls;
  dryRun: boolean;
  /** Runs garbage-collect after the purge; undefined means no garbage-collect (`--no-gc`). */
  gcRunner?: GcRunner;
  /** regsweep sweeps the blobs itself, inside the window (`--gc builtin`); blobs newer than the scan's start minus `graceMs` stay. */
  builtin?: { graceMs: number };
  /** Who sweeps the blobs, as the report says (`gc.mode`): by default `builtin` with `builtin`, `registry` with a runner, else `none`; a dry run of `--gc registry` may have no runner. */
  gcMode?: GcMode;
  /** The registry version when known without a runner (a dry run). */
  registryVersion?: string;
  window?: MaintenanceWindow;
  /** The registry's Redis blob-descriptor cache, made to forget what the run removed before the registry serves again. */
  blobCache?: BlobCache;
  journal?: string;
  /** `--quarantine`: keep what the run removes this long (a quarantine beside docker/, with its journal) instead of deleting it after the window. */
  quarantineMs?: number;
  /** `--stale-uploads`: remove uploads started longer ago than this many milliseconds, inside the window. */
  staleUploadsMs?: number;
  /** The lock this run holds (a real run): its record says what to bring back should the run die. */
  lock?: HeldLock;
  /** The registry is reached through the Docker engine: its watchdog must ask the engine too. */
  docker?: boolean;
  /** What this run recovered of a dead run before its own work. */
  recovered?: Recovery;
  /** A dry run: the lock as another run holds it, if one does. */
  lockState?: LockState;
  /** Problems the caller found before the sweep (a dead run's lock, a paused registry). */
  notices?: Problem[];
  /** Asked after planning and before any change; false stops the run. */
  confirm?: (preview: SweepPreview) => Promise<boolean>;
  onProgress?: ProgressSink;
  /** `--usage`: also report where the disk goes, per repository (the caller makes it a dry run). */
  usage?: boolean;
}

/** What a run read of the registry's log into the pull index: saved once the plan is made, so a refused run changes nothing. */
export interface SweepPulls {
  view: PullView;
  report: Omit<PullReport, 'held' | 'index'>;
  save(): Promise<PullReport['index']>;
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

/** Who sweeps the blobs: regsweep itself (`--gc builtin`, the default), the registry's garbage-collect (`--gc registry`), or nobody (`--no-gc`). */
export type GcMode = 'builtin' | 'registry' | 'none';

export interface GcReport {
  mode: GcMode;
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
  /** Manifests kept because something uses them, that the plan would otherwise have removed, with their users. */
  inUse: InUseDigest[];
  /** The pull index: where it is, what this run read into it, its coverage, and why pull rules selected nothing; null when no index was kept. */
  pulls: PullReport | null;
  predicted: Amount;
  /** The scanned blobs gone after the run, found by scanning again (digest by digest: later pushes do not offset it); null on a dry run. */
  freed: Amount | null;
  /** The prediction split by repository, largest first. */
  perRepository: RepositoryReclaim[];
  /** `--usage`: the bytes each repository references, and what of them the prediction sweeps; absent otherwise. */
  usage?: UsageReport;
  /** Object storage: the requests the run sent, in all and by operation; null on a filesystem. */
  requests: RequestCount | null;
  /** Every removed directory, relative to the root (empty on a dry run). */
  removedPaths: Iterable<string>;
  gc: GcReport;
  /** `--gc builtin`: what regsweep's own sweep did beyond the prediction; null otherwise (and on a dry run). */
  builtin: BuiltinReport | null;
  /** What this run brought back of a run that died in its window; null when nothing was left. */
  recovered: Recovery | null;
  /** A dry run: the regsweep run that holds this registry now (alive), or left it locked (not alive). */
  lock: { holder: { pid: number; hostname: string; startedAt: string }; alive: boolean } | null;
  /** `--quarantine`: where what the run removed is kept, and until when; null without one, on a dry run, and when nothing was removed. */
  quarantine: { path: string; until: string } | null;
  /** Entries removed from the registry's Redis blob cache; null without one (or on a dry run). */
  blobCache: { where: string; cleared: number } | null;
  /** `--stale-uploads`: the uploads removed (a dry run: found stale) and the bytes they held; null without it. */
  staleUploads: { uploads: number; bytes: number } | null;
  problems: Problem[];
  pausedMs: number;
  /** How the paused registry came back (restarted, unpaused, its service's tasks replaced) and why; null where nothing was paused. */
  broughtBack: BroughtBack | null;
  /** Time spent in the maintenance window (re-check, removals, garbage-collect), paused or not; 0 on a dry run. */
  windowMs: number;
  durationMs: number;
}

interface BuiltinReport {
  /** Unreferenced blobs left because their data is newer than the grace (predicted so, not counted as freed). */
  recent: Amount;
  /** Revisions found since the scan whose manifests were read and marked, and the predicted blobs they still need. */
  remarked: number;
  spared: Amount;
  /** `_layers` links of swept blobs removed. */
  layerLinks: number;
  /** `_layers` links whose blob was gone already when the scan ran (a run that died after its sweep left them), removed. */
  danglingLinks: number;
  /** Whose clock "now" was read on for the grace: the storage's (the lock file's mtime), or this process's where nothing was written (a dry run, a lock on a full disk). */
  clock: StorageClock;
}

export function gcNotRun(mode: GcMode, skipped: string | null, decision: GcDecision | undefined): GcReport {
  return { mode, ran: false, command: null, exitCode: null, decision: decision?.why ?? null, summary: null, skipped, output: '', durationMs: null };
}

function builtinDecision(version: string | undefined): GcDecision {
  const registry = version ? `registry ${version}` : 'registry version unknown: a repository counts as enumerated by _layers or _manifests';
  return { args: [], why: `regsweep sweeps the blobs its mark leaves unreferenced, inside the window (--gc builtin; ${registry})` };
}

function lastLine(output: string): string {
  const lines = output.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

function lockReport({ record, alive }: LockState): NonNullable<SweepReport['lock']> {
  return { holder: { pid: record.process.pid, hostname: record.place.hostname, startedAt: record.startedAt }, alive };
}

/**
 * Makes the registry's blob cache forget what the run removed. A cache that
 * fails halfway is a problem of the report (exit 1, saying what is left to
 * clear), not a reason to keep the registry down.
 */
export async function forgetRemoved(cache: BlobCache, swept: Digest[], unlinked: Map<string, Digest[]>): Promise<{ cleared: number | null; problem?: Problem }> {
  try {
    return { cleared: await cache.forget(swept, unlinked) };
  } catch (error) {
    return { cleared: null, problem: { message: (error as Error).message } };
  }
}

/** The revisions the apply unlinked, by repository. */
export function unlinkedByRepository(applied: ApplyResult): Map<string, Digest[]> {
  const unlinked = new Map<string, Digest[]>();
  for (const m of applied.manifests) {
    const list = unlinked.get(m.repository);
    if (list) list.push(m.digest);
    else unlinked.set(m.repository, [m.digest]);
  }
  return unlinked;
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
  /** regsweep's own sweep, instead of the runner: the storage's (run/filesystem.ts). */
  own: ((signal: AbortSignal) => Promise<{ gc: GcReport; swept: BlobSweepResult }>) | undefined;
  decision: GcDecision | undefined;
  predicted: Prediction;
  applied: ApplyResult;
  signal: AbortSignal;
  onProgress?: ProgressSink;
  onStarted?: (pid: number) => void;
}

/** The own sweep's report, as garbage-collect's is: `stopped` says why it stopped (null: it ran through). */
export function builtinReport(stopped: string | null, decision: GcDecision | undefined, started: number): GcReport {
  return { ...gcNotRun('builtin', stopped, decision), ran: stopped === null, command: ['regsweep', '--gc', 'builtin'], exitCode: stopped === null ? 0 : null, durationMs: Date.now() - started };
}

/** Why nothing collects after the apply (no collector, a tree garbage-collect is unsafe on, nothing removed or predicted), or undefined when something does. */
export function nothingToCollect(collects: boolean, predicted: Prediction, removed: { manifests: { length: number }; repositories: { length: number } }): string | undefined {
  if (!collects) return '--no-gc';
  if (predicted.blockedBy.length > 0) return `garbage-collect is unsafe on this tree: ${predicted.blockedBy[0]?.message ?? ''}`;
  if (removed.manifests.length === 0 && removed.repositories.length === 0 && predicted.blobs === 0) return 'nothing to collect';
  return undefined;
}

/** Inside the window, after the apply: garbage-collect (the registry's or regsweep's own), or why it does not run. */
export async function collectGarbage(step: CollectStep): Promise<{ gc: GcReport; swept?: BlobSweepResult }> {
  const { runner, own, decision, predicted, applied, signal } = step;
  const mode: GcMode = own ? 'builtin' : runner ? 'registry' : 'none';
  const skipped = nothingToCollect(runner !== undefined || own !== undefined, predicted, applied);
  if (skipped) return { gc: gcNotRun(mode, skipped, decision) };
  if (own) return own(signal);
  const started = Date.now();
  const result = await (runner as GcRunner).collect({ args: decision?.args ?? [], signal, onOutput: gcLineCounter(step.onProgress), onStarted: step.onStarted });
  signal.throwIfAborted();
  return { gc: { ...result, mode, decision: decision?.why ?? null, summary: result.summary ?? null, skipped: null, durationMs: Date.now() - started } };
}

/**
 * Runs `work` in the maintenance window. With the run's lock, every step that
 * leaves the registry needing help is recorded first (the trash and journal,
 * each container before it is paused, a garbage-collect process as it
 * starts), and a watchdog waits to bring the registry back should this
 * process die. When the window could not bring the registry back itself, the
 * watchdog is left to retry as this process exits.
 */
export async function inWindow<T>(
  window: MaintenanceWindow,
  options: SweepOptions,
  /** Where the run's trash and journal are (a filesystem's: a bucket's run has none). */
  paths: { trash: string; trashes: string[]; journal: string | undefined } | undefined,
  work: (signal: AbortSignal, onStarted: (pid: number) => void) => Promise<T>,
): Promise<{ value: T; pausedMs: number; windowMs: number; broughtBack?: BroughtBack }> {
  const { lock } = options;
  // The window is window.run: from the pause (where there is one) to the registry serving again; what prepares it is not in it.
  const timed = async (run: () => Promise<{ value: T; pausedMs: number; broughtBack?: BroughtBack }>) => {
    const started = Date.now();
    return { ...(await run()), windowMs: Date.now() - started };
  };
  if (!lock) return timed(() => window.run((signal) => work(signal, () => {})));
  if (paths) lock.update(paths);
  const watchdog = startWatchdog(lock.root, lock.token, options.docker ?? false);
  // The watchdog gets every record: on a full disk the lock file may not hold it yet.
  lock.watch((record) => watchdog.tell(record));
  lock.update({ watchdog: watchdog.process });
  let broughtBack = false;
  lock.inWindow = true;
  try {
    const result = await timed(() =>
      window.run(
        (signal) => work(signal, (pid) => lock.update({ gc: processRef(pid) })),
        ({ paused, readOnly }) => lock.update({ paused: paused.map((c) => ({ id: c.id, name: c.name })), ...(readOnly.length > 0 ? { readOnly: [...readOnly] } : {}) }),
      ),
    );
    broughtBack = true;
    return result;
  } catch (error) {
    broughtBack = !(error instanceof RollbackError);
    throw error;
  } finally {
    lock.inWindow = false;
    if (broughtBack) {
      lock.update({ paused: [], readOnly: undefined, gc: undefined });
      lock.watch(undefined);
      watchdog.done();
    }
  }
}

/** The repositories the arguments name, or undefined for all. */
export function namedRepositories(options: SweepOptions): Set<string> | undefined {
  const named = new Set((options.selectors ?? []).map((s) => s.repository));
  return named.size > 0 ? named : undefined;
}

function uploadAmount(uploads: readonly StaleUpload[] | undefined): SweepReport['staleUploads'] {
  return uploads ? { uploads: uploads.length, bytes: uploads.reduce((sum, u) => sum + u.bytes, 0) } : null;
}

/** The report of a dry run: what the plan and the prediction say, nothing changed yet. */
function plannedReport(options: SweepOptions, planned: TreePlan, version: string | undefined, decision: GcDecision | undefined, pullIndex: PullReport['index'] | undefined): SweepReport {
  const { kind, name } = options.target;
  return {
    dryRun: options.dryRun,
    target: { kind, name, root: planned.root, registryVersion: version ?? null },
    before: planned.before,
    after: planned.after,
    plan: planned.plan,
    inUse: planned.inUse,
    pulls: options.pulls && pullIndex ? { index: pullIndex, ...options.pulls.report, held: planned.pullsHeld } : null,
    predicted: { blobs: planned.predicted.blobs, bytes: planned.predicted.bytes },
    freed: null,
    perRepository: planned.perRepository,
    usage: planned.usage,
    removedPaths: [],
    requests: null,
    gc: gcNotRun(options.gcMode ?? (options.builtin ? 'builtin' : options.gcRunner ? 'registry' : 'none'), options.dryRun ? 'dry run' : null, decision),
    builtin: options.builtin ? { recent: planned.predicted.recent, remarked: 0, spared: { blobs: 0, bytes: 0 }, layerLinks: 0, danglingLinks: 0, clock: options.lock?.clock ?? options.clock ?? PROCESS_CLOCK } : null,
    recovered: options.recovered ?? null,
    lock: options.lockState ? lockReport(options.lockState) : null,
    quarantine: null,
    blobCache: null,
    staleUploads: null,
    problems: [...(options.notices ?? []), ...problemsOf(planned)],
    pausedMs: 0,
    broughtBack: null,
    windowMs: 0,
    durationMs: 0,
  };
}

/**
 * After the run: the tree's totals, and what the run freed, which is what the
 * scan saw that is gone, digest by digest (pushes since the window are neither
 * freed nor kept). Anything other than the prediction is a problem.
 */
export async function measureFreed(report: SweepReport, planned: TreePlan, options: SweepOptions, run: { now: number; gc: GcReport; spared: Amount | undefined }): Promise<void> {
  const rescan = await planned.remeasure({ onProgress: options.onProgress, phase: 'rescan', recentAfter: run.now });
  report.after = rescan.after;
  const checked = checkFreed({ before: planned.before, predicted: report.predicted, left: rescan.left, collector: collectorOf(run.gc, run.spared) });
  report.freed = checked.freed;
  if (checked.problem) report.problems.push(checked.problem);
}

export async function sweep(options: SweepOptions): Promise<SweepReport> {
  const started = Date.now();
  const { gcRunner, storage } = options;
  storage.check(options);
  const version = gcRunner?.version ?? options.registryVersion;
  const { selectors, remove, policy, pinned, onProgress } = options;
  const { builtin } = options;
  // The scan's start on the storage's clock, which wrote the mtimes the grace and the tag ages are read from (storage/storageClock.ts).
  const now = started + (options.lock?.clock ?? options.clock ?? PROCESS_CLOCK).offsetMs;
  const recentAfter = builtin ? now - builtin.graceMs : undefined;
  const planned = await planTree(storage.source, { selectors, remove, policy, pinned, pulls: options.pulls?.view, onProgress, times: policy !== undefined, registryVersion: version, builtin: builtin !== undefined, recentAfter, now, usage: options.usage, afterDeadRun: options.recovered !== undefined });
  const decision = builtin ? builtinDecision(version) : version ? chooseGcFlags(version, planned.keepsUntagged) : undefined;
  // Planned, so not refused: what the run read of the log goes into the index now, on a dry run too.
  const pullIndex = await options.pulls?.save();
  const report = plannedReport(options, planned, version, decision, pullIndex);
  const stale = options.staleUploadsMs === undefined ? undefined : await storage.staleUploads(started - options.staleUploadsMs, namedRepositories(options), options.dryRun);
  report.staleUploads = uploadAmount(stale);
  report.requests = storage.requests();
  if (options.dryRun) return { ...report, durationMs: Date.now() - started };

  await storage.idle();
  const { plan, predicted, before } = planned;
  const window = options.window ?? unpausedWindow();
  const preview: SweepPreview = { root: storage.where, before, after: report.after, plan, predicted, gc: gcRunner || builtin ? decision : undefined, window: window.description };
  if (options.confirm && !(await options.confirm(preview))) throw new NotConfirmedError('nothing changed: not confirmed');
  await storage.carryOut({ options, report, planned, window, decision, now, started, stale });
  report.requests = storage.requests();
  report.durationMs = Date.now() - started;
  return report;
}

/**
 * The storage a run works on, as the sweep uses it without asking which:
 * a filesystem root (run/filesystem.ts) or a bucket (run/bucket.ts).
 */
export interface RunStorage {
  /** Where the tree is, as reports name it: a root, or `s3://bucket/rootdirectory`. */
  readonly where: string;
  readonly source: TreeSource;
  /** Refuses, before anything is read, what this storage cannot do with these options (exit 2), or a tree that is no registry's. */
  check(options: SweepOptions): void;
  /**
   * `--stale-uploads`: the uploads started before `before` in these
   * repositories (all when undefined). Undefined where a real run finds them
   * only in its window (a bucket).
   */
  staleUploads(before: number, repositories: Set<string> | undefined, dryRun: boolean): Promise<StaleUpload[] | undefined>;
  /** The requests sent so far, where the storage counts them (a bucket); null elsewhere. */
  requests(): RequestCount | null;
  /** Planned, nothing changed yet: what the scan holds that the run no longer needs is given back. */
  idle(): Promise<void>;
  /** Confirmed: the window's work and what follows it, into `run.report` (all but the requests and the duration). */
  carryOut(run: RealRun): Promise<void>;
}

/** A real run, confirmed: what the sweep hands to its storage's carryOut. */
export interface RealRun {
  options: SweepOptions;
  report: SweepReport;
  planned: TreePlan;
  window: MaintenanceWindow;
  decision: GcDecision | undefined;
  /** The scan's start on the storage's clock. */
  now: number;
  started: number;
  /** `--stale-uploads`, where they were found before the window. */
  stale: StaleUpload[] | undefined;
}

/** What the window did, and the work after it, as the window and the sweep saw it. */
interface Outcome {
  applied: ApplyResult;
  uploads?: StaleUpload[];
  gc: GcReport;
  swept?: BlobSweepResult;
  cleared: number | null;
  cacheProblem?: Problem;
  pausedMs: number;
  linksSwept: { layerLinks: number; dangling: number } | undefined;
  blobCache: BlobCache | undefined;
}

/** A real run's outcome into its report: what was removed, swept and cleared, and its problems. */
export function reportOutcome(report: SweepReport, planned: TreePlan, outcome: Outcome): void {
  const { applied, gc, swept, linksSwept } = outcome;
  report.problems.push(...applied.skipped);
  report.plan = { ...planned.plan, repositories: applied.repositories, tags: applied.tags, manifests: applied.manifests, indexEntries: applied.indexEntries };
  report.removedPaths = applied.paths;
  report.gc = gc;
  if (swept) report.problems.push(...swept.problems);
  if (report.builtin) {
    const { remarked, spared } = swept ?? report.builtin;
    report.builtin = { ...report.builtin, recent: planned.predicted.recent, remarked, spared, layerLinks: linksSwept?.layerLinks ?? 0, danglingLinks: linksSwept?.dangling ?? 0 };
  }
  if (outcome.blobCache && outcome.cleared !== null) report.blobCache = { where: outcome.blobCache.where, cleared: outcome.cleared };
  if (outcome.cacheProblem) report.problems.push(outcome.cacheProblem);
  if (gc.ran && gc.exitCode !== 0) report.problems.push({ message: `garbage-collect exited with ${gc.exitCode}: ${lastLine(gc.output)}` });
  report.pausedMs = outcome.pausedMs;
  report.staleUploads = uploadAmount(outcome.uploads);
}

