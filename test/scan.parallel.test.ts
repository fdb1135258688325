/**
 * The scan in worker threads reads exactly what the scan in one thread reads,
 * problems included. Workers run compiled code, so this imports from dist/.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TreeWriter, seededBytes } from '../src/sampleTree.js';
import { tempDir } from './support/tmp.js';

let root: string;
beforeAll(async () => {
  root = await tempDir();
  const w = await new TreeWriter(root).init();
  for (let r = 0; r < 12; r++) {
    const name = r % 3 === 0 ? `ns/repo${r}` : `repo${r}`;
    const children = [await w.image(name, { seed: `${r}a` }), await w.image(name, { seed: `${r}b` })];
    await w.index(name, children, { tag: 'multi' });
    await w.image(name, { seed: `${r}old`, tag: 'latest' });
    await w.image(name, { seed: `${r}new`, tag: 'latest' });
  }
  await w.writeRaw({ kind: 'tagCurrentLink', name: 'repo1', tag: 'latest' }, 'garbage');
  await w.manifest('repo2', { schemaVersion: 2, mediaType: 'application/x-unknown', x: 1 }, 'x');
  await w.blob(seededBytes('orphan', 500));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

it('gives the same inventory with 1 and with 3 threads', async () => {
  const { scan } = await import('../dist/src/scanner.js');
  const one = await scan(root, { concurrency: 1 });
  const three = await scan(root, { concurrency: 3 });
  expect(three).toEqual(one);
  expect(one.repositories).toHaveLength(12);
  expect(one.repositories.find((r: { name: string }) => r.name === 'repo1')?.problems[0]?.message).toMatch(/current link of tag latest holds "garbage"/);
  expect(one.repositories.find((r: { name: string }) => r.name === 'repo2')?.problems[0]?.message).toMatch(/unknown media type/);
});
