import { expect, it } from 'vitest';
import { plannedIndexEntries, plannedManifests } from '../../src/plan/planner.js';
import { jsonChunks, toJson } from '../../src/cli/report.js';
import type { SweepReport } from '../../src/sweep.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as const;

it('writes the JSON report in chunks that read exactly like JSON.stringify of it', () => {
  const manifests: Array<{ repository: string; digest: `sha256:${string}`; reason?: 'untagged' }> = Array.from({ length: 3000 }, (_, i) => ({ repository: `r${i % 5}`, digest: d((i % 16).toString(16)), reason: 'untagged' as const }));
  // Written from the list's columns, not through JSON.stringify of an object: escaping and a missing value must still read alike.
  manifests[7] = { repository: 'q"u\\o\nté', digest: d('7') };
  const report = {
    dryRun: true,
    target: { kind: 'path', name: '/x', root: '/x', registryVersion: null },
    before: { repositories: 1, tags: 2, manifests: 3, blobs: 4, bytes: 5.5 },
    plan: {
      repositories: [],
      tags: [{ repository: 'r0', tag: 'v"1', digest: null, reason: 'named', detail: 'ünïcode\n' }],
      manifests: plannedManifests(manifests as Parameters<typeof plannedManifests>[0]),
      indexEntries: plannedIndexEntries(),
      spared: [{ repository: 'bad', problems: [{ message: 'x', path: undefined, blocksGc: true }] }],
      checks: [{ repository: 'r0', tags: {} }],
      // Arrays beside a PackedList are written element by element: holes, nesting and empties must read alike.
      arrays: [1, undefined, 'a', [], [[2, null]], { k: [3] }, () => 0],
    },
    perRepository: [],
    removedPaths: ['not', 'written'],
    gc: { ran: false, output: 'not written either', exitCode: null, nested: { empty: [], list: [1, undefined, 'a'] } },
  } as unknown as SweepReport;
  const chunks = [...jsonChunks(report)];
  expect(chunks.length).toBeGreaterThan(1);
  const { removedPaths: _p, gc: { output: _o, ...gc }, ...rest } = report as unknown as Record<string, unknown> & { gc: Record<string, unknown> };
  const expected = `${JSON.stringify({ schemaVersion: 1, ...rest, plan: { ...report.plan, manifests, indexEntries: [] }, gc }, null, 2)}\n`;
  expect(toJson(report)).toBe(expected);
  expect(chunks.join('')).toBe(expected);
});
