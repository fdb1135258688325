/** Finding stale uploads: by their `startedat`, never one whose start cannot be read. */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { findRepositories } from '../../src/storage/fs/scan.js';
import { findStaleUploads } from '../../src/storage/fs/uploads.js';
import { tempDir } from '../support/tmp.js';

let root: string;
let w: TreeWriter;
beforeEach(async () => {
  root = await tempDir();
  w = await new TreeWriter(root).init();
  await w.image('app', { seed: 'app', tag: 'v1' });
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const NOW = Date.parse('2026-12-01T12:00:00Z');
const ID = (n: number): string => `0000000${n}-aaaa-4bbb-8ccc-dddddddddddd`;

async function upload(name: string, startedat: string | undefined, data = 'x'.repeat(10)): Promise<void> {
  const dir = path.join(w.layout.pathFor({ kind: 'uploads', name: 'app' }), name);
  await fs.mkdir(dir, { recursive: true });
  if (startedat !== undefined) await fs.writeFile(path.join(dir, 'startedat'), startedat);
  await fs.writeFile(path.join(dir, 'data'), data);
}

describe('findStaleUploads', () => {
  it('finds the uploads started before the cut, with their bytes; leaves newer, unreadable and foreign ones', async () => {
    await upload(ID(1), '2026-11-20T08:00:00Z', 'y'.repeat(123));
    await upload(ID(2), '2026-11-30T13:00:00+02:00');
    await upload(ID(3), '2026-12-01T11:59:59Z');
    await upload(ID(4), undefined);
    await upload(ID(5), 'last tuesday');
    await upload('not-an-upload-id', '2020-01-01T00:00:00Z');
    const stale = findStaleUploads(root, findRepositories(w.layout, []), NOW - 86_400_000);
    expect(stale).toEqual([
      { repository: 'app', id: ID(1), startedAt: '2026-11-20T08:00:00.000Z', bytes: 123 },
      { repository: 'app', id: ID(2), startedAt: '2026-11-30T11:00:00.000Z', bytes: 10 },
    ]);
  });
});
