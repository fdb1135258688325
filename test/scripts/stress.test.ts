/**
 * scripts/stress.ts, the proof by difference of `--gc builtin` (issue 16): a
 * few seeds per registry version are pushed through the real registry,
 * collected by regsweep itself on one copy and by the registry's own
 * garbage-collect on the other, and must leave the same blobs, revision and
 * tag links, and pull whole. A last test proves the comparison can fail.
 * Each version is skipped when its binary is not here.
 */
import { describe, expect, it } from 'vitest';
import { FEATURES, type SeedResult, findRegistries, formatResult, runSeed } from '../../scripts/stress.js';

const registries = await findRegistries();
const v2 = registries.find((r) => r.version.startsWith('2.'));
const v3 = registries.find((r) => r.version.startsWith('3.'));

/**
 * Chosen so that together they hold Docker manifest lists, OCI indexes (one
 * nested, one a referrer), shared children, referrers and a referrer chain,
 * fallback tags (one naming no manifest), orphan uploads (one into a name
 * with no manifest) and an unfinished one, foreign layers, re-pointed tags,
 * copies across repositories, and manifests deleted through the API (one the
 * subject of a referrer that stays), under `-x REPOSITORY`,
 * `-x REPOSITORY:TAG` and the default purge. `npm run stress -- --seeds 1
 * --first N` shows one.
 */
const SEEDS = [16, 22, 24];
const TIMEOUT = 120_000;

/**
 * Every feature that must appear in at least one of SEEDS: all the generator
 * knows but plain images (every seed has them) and the deleted child of a
 * kept index (it spares its repository on both sides; the long runs of
 * `npm run stress` cover it).
 */
const MUST_COVER = FEATURES.filter((f) => f !== 'images' && f !== 'deletedChildren');

for (const registry of [v2, v3]) {
  describe.skipIf(!registry)(`--gc builtin against garbage-collect of registry ${registry?.version ?? '(none)'}`, () => {
    const results: SeedResult[] = [];

    it.each(SEEDS)(
      'seed %i: the same blobs, links and uploads on both sides, and everything left pulls whole',
      async (seed) => {
        const result = await runSeed({ seed, registry: registry! });
        results.push(result);
        expect(result.differences, formatResult(result)).toEqual([]);
        // Something was swept, and something stayed to pull.
        expect(result.counts.blobsAfter).toBeLessThan(result.counts.blobsBefore);
        expect(result.pulls.ok).toBeGreaterThan(0);
      },
      TIMEOUT,
    );

    it('the seeds cover lists, indexes, referrers, orphans and the rest, and three kinds of purge', () => {
      expect(results).toHaveLength(SEEDS.length);
      const missing = MUST_COVER.filter((f) => results.every((r) => r.summary.features[f] === 0));
      expect(missing).toEqual([]);
      const purge = (args: string[]): string => (args.length === 0 ? 'default' : `${args[0]} ${args[1]?.includes(':') ? 'REPOSITORY:TAG' : 'REPOSITORY'}`);
      expect(results.map((r) => purge(r.summary.purgeArgs))).toEqual(['-x REPOSITORY', '-x REPOSITORY:TAG', 'default']);
    });
  });
}

describe.skipIf(!v2)('the comparison', () => {
  it(
    'reports the blobs only B holds when B is purged but the registry garbage-collect is not run',
    async () => {
      const result = await runSeed({ seed: SEEDS[0] as number, registry: v2!, skipRegistryGc: true });
      const blobs = result.differences.find((d) => d.what === 'blobs');
      expect(blobs?.onlyInA).toEqual([]);
      expect(blobs?.onlyInB.length).toBe(result.counts.blobsBefore - result.counts.blobsAfter);
      for (const digest of blobs?.onlyInB ?? []) expect(digest).toMatch(/^sha256:[a-f0-9]{64}$/);
      // Links are the same on both sides: both ran the same purge.
      expect(result.differences.map((d) => d.what)).toEqual(['blobs']);
      const text = formatResult(result);
      expect(text).toContain(`seed ${SEEDS[0]}: DIFFERENT`);
      expect(text).toContain(`B only: ${blobs?.onlyInB[0]}`);
    },
    TIMEOUT,
  );
});
