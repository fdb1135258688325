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

/**
 * The registry's data as snapshot() sees it, without regsweep's pull index
 * (`.regsweep-pulls` beside docker/): every run that reads the registry's
 * log writes that, dry runs too, and changes nothing else.
 */
export async function dataSnapshot(root: string): Promise<Record<string, string>> {
  const { '.regsweep-pulls': _index, ...rest } = await snapshot(root);
  return rest;
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

/** Counts taken straight from the tree, independently of regsweep's scanner. */
export async function countTree(root: string): Promise<{ repositories: number; tags: number; manifests: number; blobs: number; bytes: number }> {
  const counts = { repositories: 0, tags: 0, manifests: 0 };
  const exists = (p: string) => fs.stat(p).then(() => true, () => false);
  const walk = async (dir: string): Promise<void> => {
    const names = await fs.readdir(dir).catch(() => [] as string[]);
    if (names.includes('_manifests') || names.includes('_layers')) {
      counts.repositories++;
      for (const tag of await fs.readdir(path.join(dir, '_manifests/tags')).catch(() => [] as string[])) {
        if (await exists(path.join(dir, '_manifests/tags', tag, 'current/link'))) counts.tags++;
      }
      for (const hex of await fs.readdir(path.join(dir, '_manifests/revisions/sha256')).catch(() => [] as string[])) {
        if (await exists(path.join(dir, '_manifests/revisions/sha256', hex, 'link'))) counts.manifests++;
      }
    }
    for (const name of names) if (!name.startsWith('_')) await walk(path.join(dir, name));
  };
  await walk(path.join(root, 'docker/registry/v2/repositories'));
  return { ...counts, ...(await blobBytes(root)) };
}
