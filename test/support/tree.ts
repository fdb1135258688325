/** A fresh sample storage tree for every test of a file, removed after each. */
import fs from 'node:fs/promises';
import { afterEach, beforeEach } from 'vitest';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { tempDir } from './tmp.js';

/** Registers the hooks; `use` receives each test's tree (`root` and its writer `w`) before the test runs. */
export function sampleTreeEachTest(use: (tree: { root: string; w: TreeWriter }) => void): void {
  let root: string | undefined;
  beforeEach(async () => {
    root = await tempDir();
    use({ root, w: await new TreeWriter(root).init() });
  });
  afterEach(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });
}
