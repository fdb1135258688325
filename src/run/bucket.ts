/**
 * A run on a bucket, from the confirmation on: the plan's removals as batched
 * deletes in the window (apply/bucketApply.ts), the own sweep or the
 * registry's garbage-collect, the Redis cache, and the rescan. No trash and
 * no journal: a delete on S3 is final and idempotent, and the next run's plan
 * finishes a run that died. What the sweep asks of a storage (RunStorage),
 * for a bucket.
 */
import { SweptBlobs } from '../apply/blobSweep.js';
import { type BucketWindowResult, applyOnBucket } from '../apply/bucketApply.js';
import { UsageError } from '../errors.js';
import { exclusivelyOnBucket } from '../exclusiveRun.js';
import type { GcDecision } from '../gc/garbageCollect.js';
import type { Problem } from '../model.js';
import type { BucketSource } from '../storage/s3/source.js';
import type { RequestCount } from '../storage/source.js';
import { findStaleUploadsInBucket } from '../storage/s3/uploads.js';
import { pullIndexKey, readPullIndexObject, writePullIndexObject } from '../storage/s3/pullIndexObject.js';
import type { Storage } from './storage.js';
import { type GcReport, type RealRun, type RunStorage, type SweepOptions, builtinReport, collectGarbage, forgetRemoved, gcNotRun, inWindow, measureFreed, namedRepositories, nothingToCollect, reportOutcome, unlinkedByRepository } from '../sweep.js';

function requestsOf(source: BucketSource): RequestCount {
  return { total: source.requests.total, byOperation: { ...source.requests.byOperation } };
}

/** What a run on a bucket cannot do yet: refused before anything is read (UsageError, exit 2). */
function refuseOnBucket(source: BucketSource, options: SweepOptions): void {
  const refuse = (what: string): never => {
    throw new UsageError(`${source.where}: ${what} is not built for object storage yet`);
  };
  if (options.quarantineMs !== undefined) refuse('--quarantine');
  if (options.journal) refuse('--journal');
}

type BucketOutcome = BucketWindowResult & { gc: GcReport; cleared: number | null; cacheProblem?: Problem };

/** The own sweep's report on a bucket: why it stopped (a revision it could not read, a planned removal refused), if it did. */
function bucketSweepReport(done: BucketWindowResult, decision: GcDecision | undefined, started: number): GcReport {
  const last = done.problems[done.problems.length - 1];
  return builtinReport(done.swept?.problems[0]?.message ?? last?.message ?? null, decision, started);
}

/**
 * The window's work on a bucket (bucketApply.ts): the plan's removals, then
 * the own sweep or the registry's garbage-collect (with the registry's own
 * config: it reaches the bucket as the registry does), then the Redis cache.
 */
async function bucketWindow(source: BucketSource, run: RealRun, window: { signal: AbortSignal; onStarted: (pid: number) => void }): Promise<BucketOutcome> {
  const { options, planned, decision } = run;
  const { plan } = planned;
  const { gcRunner: runner, builtin } = options;
  // The own sweep is set up before the apply, from the plan: what the apply removes (or it removes nothing and throws).
  const skipped = builtin ? nothingToCollect(true, planned.predicted, plan) : undefined;
  const staleBefore = run.now - (builtin?.graceMs ?? 0);
  const sweep = builtin && !skipped ? { swept: new SweptBlobs(planned.table, (id) => planned.sweeps(id)), isMarked: planned.isMarked, hadBlob: planned.hadBlob, staleBefore } : undefined;
  const started = Date.now();
  const { signal, onStarted } = window;
  const uploads = options.staleUploadsMs === undefined ? undefined : { before: run.started - options.staleUploadsMs, repositories: namedRepositories(options) };
  const done = await applyOnBucket(plan, { client: source.client, concurrency: source.concurrency, sweep, uploads, signal, onProgress: options.onProgress });
  let gc: GcReport;
  if (!builtin) gc = (await collectGarbage({ runner, own: undefined, decision, predicted: planned.predicted, applied: done.applied, signal, onProgress: options.onProgress, onStarted })).gc;
  else gc = sweep ? bucketSweepReport(done, decision, started) : gcNotRun('builtin', skipped ?? null, decision);
  const cache = options.blobCache ? await forgetRemoved(options.blobCache, gc.ran ? planned.sweptDigests() : [], unlinkedByRepository(done.applied)) : undefined;
  return { ...done, gc, cleared: cache?.cleared ?? null, cacheProblem: cache?.problem };
}

/**
 * A real run on a bucket, confirmed: the same report as on a
 * filesystem, with nothing left to do after the window (no trash: a bucket's
 * removals are deletes) but the rescan.
 */
async function carryOut(source: BucketSource, run: RealRun): Promise<void> {
  const { options, report, planned } = run;
  const windowed = await inWindow(run.window, options, undefined, (signal, onStarted) => bucketWindow(source, run, { signal, onStarted }));
  const { value: outcome, pausedMs, windowMs, broughtBack } = windowed;
  report.windowMs = windowMs;
  report.broughtBack = broughtBack ?? null;
  report.problems.push(...outcome.problems);
  reportOutcome(report, planned, { ...outcome, pausedMs, linksSwept: outcome.links, blobCache: options.blobCache });
  await measureFreed(report, planned, options, { now: run.now, gc: outcome.gc, spared: outcome.swept?.spared });
}

/** A bucket, as a run works on it. */
export function bucketRun(source: BucketSource): RunStorage {
  return {
    where: source.where,
    source,
    check: (options) => {
      if (!options.dryRun) refuseOnBucket(source, options);
    },
    // A real run finds them in its window (bucketApply.ts): a dry run reads them now.
    staleUploads: async (before, named, dryRun) => (dryRun ? findStaleUploadsInBucket(source.client, source.concurrency, before, named) : undefined),
    requests: () => requestsOf(source),
    idle: async () => {},
    carryOut: (run) => carryOut(source, run),
  };
}

/** A bucket, as the CLI drives a run on it: its lock is an object in the bucket, and it needs no check of writability (a refused delete is a problem of the run). */
export function bucketStorage(source: BucketSource): Storage {
  return {
    run: bucketRun(source),
    requireWritable: () => {},
    // A bucket's LastModified are on its server's clock: so is the grace's "now".
    clock: () => source.clock(),
    // No lock object is read for a dry run, nor a watchdog's note (a bucket's watchdog leaves none).
    findings: () => ({}),
    exclusively: (options, body) => exclusivelyOnBucket(source.client, options, body),
    // One PUT is atomic: no temp object; keys that may not write leave it as it is.
    pullIndex: {
      where: `s3://${source.client.location.bucket}/${pullIndexKey(source.client.location)}`,
      read: () => readPullIndexObject(source.client),
      write: (text) => writePullIndexObject(source.client, text),
    },
    close: () => source.client.close(),
  };
}
