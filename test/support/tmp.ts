import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** A fresh temporary directory; remove it with `fs.rm(dir, { recursive: true })` in afterEach/afterAll. */
export function tempDir(prefix = 'regsweep-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Every file and directory below `root` with a hash of each file's bytes: equal snapshots mean an unchanged tree. */
export async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const rel = path.relative(root, p);
      if (e.isDirectory()) {
        out[`${rel}/`] = 'dir';
        await walk(p);
      } else {
        out[rel] = createHash('sha256').update(await fs.readFile(p)).digest('hex');
      }
    }
  };
  await walk(root);
  return out;
}

/** Sum of the sizes of every blob's data under the root. */
export async function blobBytes(root: string): Promise<{ blobs: number; bytes: number }> {
  const base = path.join(root, 'docker/registry/v2/blobs/sha256');
  let blobs = 0;
  let bytes = 0;
  for (const prefix of await fs.readdir(base).catch(() => [])) {
    for (const hex of await fs.readdir(path.join(base, prefix))) {
      const st = await fs.stat(path.join(base, prefix, hex, 'data')).catch(() => undefined);
      if (st) {
        blobs++;
        bytes += st.size;
      }
    }
  }
  return { blobs, bytes };
}
