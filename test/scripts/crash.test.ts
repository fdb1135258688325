/**
 * scripts/crash.ts, the crash tests of issue 23, a fixed slice of
 * `npm run stress -- --crash N`: real `--gc builtin --grace 0s` runs killed
 * (SIGKILL, through src/util/failpoint.ts) at chosen points, in the `--path`
 * shape and against a registry container (paused when it dies: its watchdog
 * must bring it back), each followed by a plain run; the tree must then be
 * the uninterrupted run's, file for file, with every tag whole and pulling
 * through the real registry. A last test proves the comparison can fail.
 */
import { describe, expect, it } from 'vitest';
import { type CrashResult, type Shape, formatCrash, runCrash } from '../../scripts/crash.js';
import { findRegistries } from '../../scripts/stress.js';
import { dockerAvailable } from '../support/docker.js';

const v2 = (await findRegistries()).find((r) => r.version.startsWith('2.'));
const TIMEOUT = 120_000;
/**
 * Seeds whose scenarios purge by the default rules or --keep 1 and get many
 * untagged revisions in one repository, so their runs swap that directory
 * (`npm run stress -- --crash 1 --first N` shows one); seed 2 also runs with
 * --quarantine 1h; seed 75 runs -x a/b/c --quarantine 1h.
 */
const SEEDS = { path: 1, container: [2, 4], quarantine: 2, removeRepository: 75 } as const;

/** The `nth` (1-based) point named `name` in a run's points, as the 1-based kill point; fails the test when the run has none. */
function at(name: string, nth = 1): (points: readonly string[]) => number {
  return (points) => {
    const found = points.flatMap((p, i) => (p === name ? [i + 1] : []));
    const pick = found[Math.min(nth, found.length) - 1];
    if (pick === undefined) throw new Error(`no kill point ${name} among ${[...new Set(points)].join(', ')}`);
    return pick;
  };
}

async function crash(shape: Shape, seed: number, point: string, nth = 1): Promise<CrashResult> {
  const result = await runCrash({ seed, shape, registry: v2!, killAt: at(point, nth) });
  expect(result.killedAt, formatCrash(result)).toBe(point);
  expect(result.differences, formatCrash(result)).toEqual([]);
  expect(result.tagsWhole).toBeGreaterThan(0);
  expect(result.pulls).toBe(result.tagsWhole);
  return result;
}

describe.skipIf(!v2)('a run killed at a point of its --path run, then a plain run: the tree of an uninterrupted run', () => {
  it(
    'killed inside its blob sweep: the blobs it swept stay gone, their _layers links go, the trash goes',
    async () => {
      const r = await crash('path', SEEDS.path, 'blobSweep.prefix', 3);
      expect(r.leftBehind.some((n) => n.startsWith('.regsweep-trash-'))).toBe(true);
      expect(r.recovered).not.toBeNull();
    },
    TIMEOUT,
  );

  it(
    'killed in a swap of the revisions, the spare with the kept ones in place: every revision is back',
    async () => {
      const r = await crash('path', SEEDS.path, 'swap.spareInPlace', 1);
      expect(r.recovered).toMatchObject({ swapsUndone: 1 });
    },
    TIMEOUT,
  );

  it(
    'killed after its window, removing the _layers links of swept blobs',
    async () => {
      await crash('path', SEEDS.path, 'remove.layerLink', 2);
    },
    TIMEOUT,
  );

  it(
    '-x REPOSITORY --quarantine, killed after its _manifests went into the quarantine: the next run journals nothing of what is gone, and both quarantines restore the original',
    async () => {
      const r = await crash('path', SEEDS.removeRepository, 'remove.tree', 1);
      expect(r.quarantine).toBe(true);
    },
    TIMEOUT,
  );

  // A move into a quarantine is journaled before the rename: a kill right after it leaves nothing unrecorded.
  it(
    'with --quarantine, killed right after a _layers link moved into the quarantine: both quarantines restore the original',
    async () => {
      const r = await crash('path', SEEDS.quarantine, 'remove.layerLink', 2);
      expect(r.quarantine).toBe(true);
    },
    TIMEOUT,
  );
});

describe.skipIf(!v2 || !dockerAvailable())('a run killed while it holds a registry container paused', () => {
  it(
    'killed right after the pause: the watchdog brings the registry back, the next run does the work',
    async () => {
      const r = await crash('container', SEEDS.container[0], 'window.paused');
      expect(r.recovered).toMatchObject({ by: 'watchdog', containers: [expect.stringMatching(/-crash$/)] });
    },
    TIMEOUT,
  );

  it(
    'killed in its blob sweep: the watchdog brings the registry back, the next run finishes the sweep',
    async () => {
      const r = await crash('container', SEEDS.container[1], 'blobSweep.prefix', 2);
      expect(r.recovered).toMatchObject({ by: 'watchdog' });
    },
    TIMEOUT,
  );
});

describe.skipIf(!v2)('the comparison', () => {
  it(
    'without the run after the crash, reports the trash left beside docker/ and the files the dead run did not finish',
    async () => {
      const r = await runCrash({ seed: SEEDS.path, shape: 'path', registry: v2!, killAt: at('blobSweep.prefix', 3), skipRecovery: true });
      expect(r.killedAt).toBe('blobSweep.prefix');
      expect(r.differences.some((d) => /^beside docker\/ after the crash: .*\.regsweep-trash-/.test(d))).toBe(true);
      expect(r.differences.some((d) => d.startsWith('only after the crash: docker/registry/v2/'))).toBe(true);
      expect(formatCrash(r)).toContain(`path seed ${SEEDS.path}: DIFFERENT`);
    },
    TIMEOUT,
  );
});
