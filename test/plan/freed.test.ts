/**
 * The comparison of what a real run freed with what it predicted (issue 22,
 * "never silent"): exact sets give no problem; anything else is a problem
 * with the numbers and the reason, whoever collected.
 */
import { describe, expect, it } from 'vitest';
import { type BlobsLeft, checkFreed, collectorOf, nothingLeft } from '../../src/plan/freed.js';

const KiB = 1024;
const before = { blobs: 20, bytes: 200 * KiB };
const predicted = { blobs: 6, bytes: 60 * KiB };
/** Every blob the prediction keeps is still there: 14 blobs, 140 KiB. */
const allKept = { blobs: before.blobs - predicted.blobs, bytes: before.bytes - predicted.bytes };

function left(parts: Partial<BlobsLeft>): BlobsLeft {
  return { ...nothingLeft(), kept: allKept, ...parts };
}

describe('checkFreed', () => {
  it('the predicted blobs gone and every kept one there: freed is the prediction, no problem', () => {
    expect(checkFreed({ before, predicted, left: left({}), collector: { kind: 'registry', exitCode: 0 } })).toEqual({ freed: predicted });
    expect(checkFreed({ before, predicted, left: left({}), collector: { kind: 'builtin', spared: { blobs: 0, bytes: 0 } } })).toEqual({ freed: predicted });
  });

  it('garbage-collect that left every predicted blob (the issue: freed 0 beside predicted 6)', () => {
    const checked = checkFreed({ before, predicted, left: left({ predicted }), collector: { kind: 'registry', exitCode: 0 } });
    expect(checked.freed).toEqual({ blobs: 0, bytes: 0 });
    expect(checked.problem).toEqual({ message: 'freed 0 of 6 predicted blobs (0 B of 60.0 KiB): 6 predicted blobs (60.0 KiB) are still there (garbage-collect left them)' });
  });

  it('garbage-collect that failed and left some', () => {
    const checked = checkFreed({ before, predicted, left: left({ predicted: { blobs: 1, bytes: 10 * KiB } }), collector: { kind: 'registry', exitCode: 1 } });
    expect(checked.freed).toEqual({ blobs: 5, bytes: 50 * KiB });
    expect(checked.problem?.message).toBe('freed 5 of 6 predicted blobs (50.0 KiB of 60.0 KiB): 1 predicted blob (10.0 KiB) is still there (garbage-collect exited with 1 and left it)');
  });

  it('garbage-collect that removed a blob the prediction kept: freed more than predicted', () => {
    const kept = { blobs: allKept.blobs - 1, bytes: allKept.bytes - 3 * KiB };
    const checked = checkFreed({ before, predicted, left: left({ kept }), collector: { kind: 'registry', exitCode: 0 } });
    expect(checked.freed).toEqual({ blobs: 7, bytes: 63 * KiB });
    expect(checked.problem?.message).toBe('freed 7 of 6 predicted blobs (63.0 KiB of 60.0 KiB): 1 blob (3.0 KiB) the prediction kept is gone (garbage-collect removed more than predicted)');
  });

  it('the same number of blobs, other digests: still a problem (a set, not a total, is compared)', () => {
    const kept = { blobs: allKept.blobs - 1, bytes: allKept.bytes - 10 * KiB };
    const checked = checkFreed({ before, predicted, left: left({ predicted: { blobs: 1, bytes: 10 * KiB }, kept }), collector: { kind: 'registry', exitCode: 0 } });
    expect(checked.freed).toEqual(predicted);
    expect(checked.problem?.message).toBe(
      'freed 6 of 6 predicted blobs (60.0 KiB of 60.0 KiB): 1 predicted blob (10.0 KiB) is still there (garbage-collect left it); 1 blob (10.0 KiB) the prediction kept is gone (garbage-collect removed more than predicted)',
    );
  });

  it('the builtin sweep: spared blobs and the rest, each said; blobs freed and pushed again since count as freed', () => {
    const stillThere = { blobs: 5, bytes: 50 * KiB };
    const checked = checkFreed({
      before,
      predicted,
      left: left({ predicted: stillThere, pushedSince: { blobs: 1, bytes: 10 * KiB } }),
      collector: { kind: 'builtin', spared: { blobs: 3, bytes: 30 * KiB } },
    });
    expect(checked.freed).toEqual({ blobs: 2, bytes: 20 * KiB });
    expect(checked.problem?.message).toBe(
      'freed 2 of 6 predicted blobs (20.0 KiB of 60.0 KiB): 4 predicted blobs (40.0 KiB) are still there (the builtin sweep spared 3 that revisions pushed since the scan need; the builtin sweep did not take 1)',
    );
  });

  it('every predicted blob still there was pushed again after the run began: all freed, no problem', () => {
    const again = { blobs: 2, bytes: 20 * KiB };
    const checked = checkFreed({ before, predicted, left: left({ predicted: again, pushedSince: again }), collector: { kind: 'builtin', spared: { blobs: 0, bytes: 0 } } });
    expect(checked.freed).toEqual(predicted);
    expect(checked.problem).toBeUndefined();
  });

  it('the builtin sweep that spared every predicted blob still left is a problem too, explained', () => {
    const checked = checkFreed({ before, predicted, left: left({ predicted: { blobs: 2, bytes: 20 * KiB } }), collector: { kind: 'builtin', spared: { blobs: 2, bytes: 20 * KiB } } });
    expect(checked.problem?.message).toBe('freed 4 of 6 predicted blobs (40.0 KiB of 60.0 KiB): 2 predicted blobs (20.0 KiB) are still there (the builtin sweep spared 2 that revisions pushed since the scan need)');
  });

  it('no collector: nothing was to be freed; a blob gone all the same is a problem', () => {
    const none = { kind: 'none', why: '--no-gc' } as const;
    expect(checkFreed({ before, predicted, left: left({ predicted }), collector: none })).toEqual({ freed: { blobs: 0, bytes: 0 } });
    const checked = checkFreed({ before, predicted, left: left({ predicted: { blobs: 5, bytes: 58 * KiB } }), collector: none });
    expect(checked.freed).toEqual({ blobs: 1, bytes: 2 * KiB });
    expect(checked.problem?.message).toBe('freed 1 blob (2.0 KiB) though garbage-collect did not run (--no-gc): something other than regsweep removed it');
  });
});

describe('collectorOf', () => {
  it('who was to free the predicted blobs, from the garbage-collect report', () => {
    expect(collectorOf({ ran: false, exitCode: null, skipped: '--no-gc' }, undefined)).toEqual({ kind: 'none', why: '--no-gc' });
    expect(collectorOf({ ran: false, exitCode: null, skipped: 'revision x cannot be read: nothing was swept' }, { blobs: 0, bytes: 0 })).toEqual({ kind: 'none', why: 'revision x cannot be read: nothing was swept' });
    expect(collectorOf({ ran: true, exitCode: 2, skipped: null }, undefined)).toEqual({ kind: 'registry', exitCode: 2 });
    expect(collectorOf({ ran: true, exitCode: 0, skipped: null }, { blobs: 1, bytes: 5 })).toEqual({ kind: 'builtin', spared: { blobs: 1, bytes: 5 } });
  });
});
