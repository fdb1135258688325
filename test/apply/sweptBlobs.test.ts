/**
 * What the window looks names up in, made before it without a string per
 * blob: the blobs the sweep takes (SweptBlobs, a state per id of the scan's
 * digest table) and the revisions a repository loses (GoingRevisions).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { GoingRevisions, prepareApply } from '../../src/apply/apply.js';
import { emptyPlan } from '../../src/plan/planner.js';
import { SweptBlobs } from '../../src/apply/blobSweep.js';
import type { Digest } from '../../src/model.js';
import { DigestTable } from '../../src/storage/digestTable.js';

const digestOf = (s: string): Digest => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const hexOf = (d: Digest): string => d.slice('sha256:'.length);

describe('SweptBlobs', () => {
  const digests = Array.from({ length: 600 }, (_, i) => digestOf(`blob ${i}`));
  const table = new DigestTable();
  for (const [i, d] of digests.entries()) table.setSize(table.id(d), i + 1);
  // Every third blob is swept.
  const sweeps = (id: number): boolean => id % 3 === 0;
  const swept = digests.filter((_, i) => i % 3 === 0);

  it('counts the blobs to take by prefix directory, from the table alone', () => {
    const blobs = new SweptBlobs(table, sweeps);
    const expected = new Map<string, number>();
    for (const d of swept) expected.set(hexOf(d).slice(0, 2), (expected.get(hexOf(d).slice(0, 2)) ?? 0) + 1);
    expect(new Map(blobs.prefixes().map((p) => [p.prefix, p.count]))).toEqual(expected);
    expect(digests.filter((d) => blobs.has(hexOf(d)))).toEqual(swept);
  });

  it('takes, spares and says what was taken, with the sizes the scan read', () => {
    const blobs = new SweptBlobs(table, sweeps);
    const [a, b] = swept as [Digest, Digest];
    const kept = digests[1] as Digest;
    blobs.spare(b);
    expect(blobs.spared).toEqual({ blobs: 1, bytes: digests.indexOf(b) + 1 });
    expect(blobs.has(hexOf(b))).toBe(false);
    // Sparing a blob not swept, or twice, changes nothing.
    blobs.spare(kept);
    blobs.spare(b);
    expect(blobs.spared.blobs).toBe(1);
    expect(blobs.take(hexOf(a))).toBe(digests.indexOf(a) + 1);
    expect(blobs.taken.has(hexOf(a))).toBe(true);
    expect(blobs.has(hexOf(a))).toBe(false);
    // Taken once: a second take frees nothing more.
    expect(blobs.take(hexOf(a))).toBe(0);
    expect(blobs.taken.has(hexOf(b))).toBe(false);
    expect(blobs.take(hexOf(kept))).toBe(0);
  });

  it('answers no for names that are not digests of the scan', () => {
    const blobs = new SweptBlobs(table, () => true);
    for (const name of ['', 'zz', 'not-hex', `${hexOf(digests[0] as Digest)}x`, hexOf(digestOf('never scanned')), hexOf(digests[0] as Digest).toUpperCase()]) {
      expect(blobs.has(name)).toBe(false);
      expect(blobs.taken.has(name)).toBe(false);
    }
  });

  it('of(): the same from a list of digests', () => {
    const blobs = SweptBlobs.of(swept, (d) => digests.indexOf(d) + 1);
    expect(digests.filter((d) => blobs.has(hexOf(d)))).toEqual(swept);
    expect(blobs.take(hexOf(swept[2] as Digest))).toBe(digests.indexOf(swept[2] as Digest) + 1);
  });
});

describe('GoingRevisions', () => {
  it('finds exactly the going digests by name, among ids in any order', () => {
    const table = new DigestTable();
    const digests = Array.from({ length: 300 }, (_, i) => digestOf(`revision ${i}`));
    const ids = digests.map((d) => table.id(d));
    const goingIds = ids.filter((id) => id % 7 !== 0).reverse();
    const going = new GoingRevisions(table, goingIds);
    expect(going.count).toBe(goingIds.length);
    expect(digests.filter((d) => going.has(hexOf(d)))).toEqual(digests.filter((_, i) => i % 7 !== 0));
    expect(going.has('not-a-digest')).toBe(false);
    expect(going.has(hexOf(digestOf('elsewhere')))).toBe(false);
  });
});

describe('prepareApply', () => {
  it("groups a plan's revisions by repository, listed together or not", () => {
    const table = new DigestTable();
    const plan = emptyPlan(table);
    const digests = Array.from({ length: 9 }, (_, i) => digestOf(`rev ${i}`));
    // a, a, b, a, c, c, b, a, a: runs of a repository interleaved with others.
    const repos = ['a', 'a', 'b', 'a', 'c', 'c', 'b', 'a', 'a'];
    repos.forEach((repository, i) => plan.manifests.push({ repository, digest: digests[i] as Digest, reason: 'untagged' }));
    const prepared = prepareApply(plan);
    for (const repository of ['a', 'b', 'c']) {
      const going = prepared.going.get(repository) as GoingRevisions;
      const mine = digests.filter((_, i) => repos[i] === repository);
      expect(going.count).toBe(mine.length);
      expect(digests.filter((d) => going.has(hexOf(d)))).toEqual(mine);
    }
    expect(prepared.total).toBe(9);
  });
});
