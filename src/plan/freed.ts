/**
 * What a real run freed, against what it predicted, blob by blob. The tree is
 * walked again after the run while the registry may serve (a container target
 * serves before that walk), so totals alone would mix pushes since the window
 * into the comparison; digests do not: a blob the scan saw is either still
 * there or gone, and a blob new since the scan is neither freed nor kept.
 *
 * Any difference is a problem of the report (exit 1), with the reason as far
 * as regsweep knows it, also where it is expected and safe (the builtin sweep
 * spared blobs that revisions pushed since the scan need): a run that frees
 * less, or more, than it said is never silent.
 */
import type { Problem } from '../model.js';
import { formatBytes } from '../util/bytes.js';

interface Amount {
  blobs: number;
  bytes: number;
}

/** The scanned blobs still in the tree after the run. */
export interface BlobsLeft {
  /** Blobs the prediction sweeps. */
  predicted: Amount;
  /** Of those, the ones whose data is newer than the run's start: freed, then pushed again (a blob's data is never rewritten in place). */
  pushedSince: Amount;
  /** Blobs the prediction keeps. */
  kept: Amount;
}

export function nothingLeft(): BlobsLeft {
  return { predicted: { blobs: 0, bytes: 0 }, pushedSince: { blobs: 0, bytes: 0 }, kept: { blobs: 0, bytes: 0 } };
}

/** Who was to free the predicted blobs: the registry's garbage-collect, regsweep's own sweep, or no one (and why). */
export type Collector = { kind: 'registry'; exitCode: number | null } | { kind: 'builtin'; spared: Amount } | { kind: 'none'; why: string };

/** The collector of a run from its garbage-collect report and, with `--gc builtin`, what the sweep spared. */
export function collectorOf(gc: { ran: boolean; exitCode: number | null; skipped: string | null }, builtinSpared: Amount | undefined): Collector {
  if (!gc.ran) return { kind: 'none', why: gc.skipped ?? 'not run' };
  return builtinSpared ? { kind: 'builtin', spared: builtinSpared } : { kind: 'registry', exitCode: gc.exitCode };
}

export interface FreedCheck {
  /** Every blob the scan saw. */
  before: Amount;
  /** What the prediction sweeps (a subset of `before`). */
  predicted: Amount;
  left: BlobsLeft;
  collector: Collector;
}

const minus = (a: Amount, b: Amount): Amount => ({ blobs: a.blobs - b.blobs, bytes: a.bytes - b.bytes });
const plus = (a: Amount, b: Amount): Amount => ({ blobs: a.blobs + b.blobs, bytes: a.bytes + b.bytes });
const blobs = (n: number, what = 'blob'): string => `${n} ${what}${n === 1 ? '' : 's'}`;
const amount = (a: Amount, what?: string): string => `${blobs(a.blobs, what)} (${formatBytes(a.bytes)})`;
const are = (n: number): string => (n === 1 ? 'is' : 'are');

/** Why predicted blobs are still there (`total` of them, never freed): what regsweep knows of each part of them. */
function stillThereBecause(total: number, collector: Exclude<Collector, { kind: 'none' }>): string {
  const spared = collector.kind === 'builtin' ? Math.min(collector.spared.blobs, total) : 0;
  const rest = total - spared;
  const parts: string[] = [];
  if (spared > 0) parts.push(`the builtin sweep spared ${spared} that revisions pushed since the scan need`);
  if (rest > 0) {
    const them = rest < total ? String(rest) : rest === 1 ? 'it' : 'them';
    if (collector.kind === 'builtin') parts.push(`the builtin sweep did not take ${them}`);
    else if (collector.exitCode === 0) parts.push(`garbage-collect left ${them}`);
    else parts.push(`garbage-collect exited with ${collector.exitCode} and left ${them}`);
  }
  return parts.join('; ');
}

/**
 * What the run freed (the scanned blobs that are gone) and, when that is not
 * exactly the predicted blobs, a problem that says the numbers and why.
 */
export function checkFreed({ before, predicted, left, collector }: FreedCheck): { freed: Amount; problem?: Problem } {
  // A predicted blob whose data was written after the run began was freed, then pushed again by a client while the registry served: freed.
  const stillThere = minus(left.predicted, left.pushedSince);
  const predictedGone = minus(predicted, stillThere);
  const unexpected = minus(minus(before, predicted), left.kept);
  const freed = plus(predictedGone, unexpected);
  if (collector.kind === 'none') {
    // Nothing was to be freed: any scanned blob that is gone went some other way.
    if (freed.blobs === 0) return { freed };
    return { freed, problem: { message: `freed ${amount(freed)} though garbage-collect did not run (${collector.why}): something other than regsweep removed ${freed.blobs === 1 ? 'it' : 'them'}` } };
  }
  if (stillThere.blobs === 0 && unexpected.blobs === 0) return { freed };
  const reasons: string[] = [];
  if (stillThere.blobs > 0) reasons.push(`${amount(stillThere, 'predicted blob')} ${are(stillThere.blobs)} still there (${stillThereBecause(stillThere.blobs, collector)})`);
  if (unexpected.blobs > 0) {
    const by = collector.kind === 'registry' ? 'garbage-collect removed more than predicted' : `something other than regsweep removed ${unexpected.blobs === 1 ? 'it' : 'them'}`;
    reasons.push(`${amount(unexpected)} the prediction kept ${are(unexpected.blobs)} gone (${by})`);
  }
  const numbers = `freed ${freed.blobs} of ${blobs(predicted.blobs, 'predicted blob')} (${formatBytes(freed.bytes)} of ${formatBytes(predicted.bytes)})`;
  return { freed, problem: { message: `${numbers}: ${reasons.join('; ')}` } };
}
