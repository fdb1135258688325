/**
 * The benchmark's million-revision tree is built from a tar stream, never
 * written file by file: the stream must hold exactly the files, paths and
 * bytes the file writer writes, or the image would measure another tree.
 */
import fs from 'node:fs';
import path from 'node:path';
import tar from 'tar-stream';
import { expect, it } from 'vitest';
import { packBenchTree, writeBenchTree } from '../../scripts/benchTree.js';
import { tempDir } from '../support/tmp.js';

function filesUnder(root: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else files.set(path.relative(root, full), fs.readFileSync(full, 'utf8'));
    }
  };
  walk(root);
  return files;
}

async function filesInTar(spec: Parameters<typeof packBenchTree>[1]): Promise<{ files: Map<string, string>; stats: Awaited<ReturnType<typeof packBenchTree>> }> {
  const pack = tar.pack();
  const extract = tar.extract();
  const files = new Map<string, string>();
  extract.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => chunks.push(c as Buffer));
    stream.on('end', () => {
      files.set(header.name, Buffer.concat(chunks).toString('utf8'));
      next();
    });
  });
  const done = new Promise<void>((resolve, reject) => {
    extract.on('finish', () => resolve());
    extract.on('error', reject);
  });
  pack.pipe(extract);
  const stats = await packBenchTree(pack, spec);
  await done;
  return { files, stats };
}

it('packs the same files, paths and bytes as it writes', async () => {
  const spec = { repositories: 5, tagsPerRepository: 10, revisionsPerTag: 3 };
  const root = await tempDir();
  try {
    const written = writeBenchTree(root, spec);
    const onDisk = filesUnder(root);
    const { files, stats } = await filesInTar(spec);
    expect(stats).toEqual(written);
    expect(files.size).toBe(onDisk.size);
    expect(files.size).toBe(written.files);
    expect([...files.keys()].sort()).toEqual([...onDisk.keys()].sort());
    for (const [name, content] of onDisk) expect(files.get(name), name).toBe(content);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
