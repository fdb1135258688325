/**
 * `npm run demo`: builds a throwaway storage tree with history, a multi-arch
 * image and a signature, runs regsweep on it (a dry run, then the real thing)
 * and shows what happened. The real run is the default one: regsweep sweeps
 * the blobs itself, so no registry binary is needed; with one on PATH (Debian:
 * apt-get install docker-registry) the registry's garbage-collect runs on a
 * second copy (`--gc registry`), to compare.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findRegistryBinary } from '../src/gc/localRegistry.js';
import { TreeWriter, seededBytes } from './sampleTree.js';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/regsweep.js');

async function buildSample(root: string): Promise<void> {
  const w = await new TreeWriter(root).init();
  const base = await w.blob(seededBytes('debian-base', 48 * 1024), 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  // History: `latest` pushed three times; the first two builds are untagged now.
  for (const build of ['build-1', 'build-2', 'build-3']) {
    await w.image('shop/web', { seed: build, shared: [base], tag: 'latest', layerSize: 20 * 1024 });
  }
  await w.image('shop/web', { seed: 'release-1.0', shared: [base], tag: '1.0', layerSize: 20 * 1024 });
  // A multi-arch image whose children are untagged, and the list it replaced.
  for (const round of ['old', 'new']) {
    const children = [];
    for (const arch of ['amd64', 'arm64']) children.push(await w.image('shop/api', { seed: `${round}-${arch}`, shared: [base], layerSize: 16 * 1024 }));
    await w.index('shop/api', children, { tag: 'latest' });
  }
  // A signed image: the signature is an untagged referrer and stays with its subject.
  const signed = await w.image('shop/worker', { seed: 'worker-2', format: 'oci', tag: 'stable', layerSize: 8 * 1024 });
  await w.image('shop/worker', { seed: 'worker-2-sig', subject: signed, layers: 1, layerSize: 600 });
  const unsigned = await w.image('shop/worker', { seed: 'worker-1', format: 'oci', layerSize: 8 * 1024 });
  await w.image('shop/worker', { seed: 'worker-1-sig', subject: unsigned, layers: 1, layerSize: 600 });
  // An upload that nothing references.
  await w.linkLayer('shop/web', (await w.blob(seededBytes('abandoned-upload', 30 * 1024))).digest);
}

/**
 * The sample stands for a registry pushed to days ago: every mtime moves back two days, in the same order,
 * so the default grace (unreferenced blobs of the last hour stay: a push may be in flight) spares none of it.
 */
async function age(dir: string, byMs: number): Promise<void> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const at = path.join(dir, entry.name);
    if (entry.isDirectory()) await age(at, byMs);
    const { atimeMs, mtimeMs } = await fs.stat(at);
    await fs.utimes(at, (atimeMs - byMs) / 1000, (mtimeMs - byMs) / 1000);
  }
}

function regsweep(args: string[]): number {
  process.stdout.write(`\n$ regsweep ${args.join(' ')}\n`);
  const run = spawnSync(process.execPath, [bin, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  return run.status ?? 1;
}

async function main(): Promise<void> {
  const keep = process.argv.includes('--keep');
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'regsweep-demo-'));
  try {
    await buildSample(root);
    await age(root, 2 * 24 * 3600 * 1000);
    process.stdout.write(`Sample registry storage written to ${root}\n`);
    const registry = await findRegistryBinary(undefined);
    // A copy for the registry's own garbage-collect, made before anything changes the sample.
    const copy = registry ? `${root}-gc-registry` : undefined;
    if (copy) await fs.cp(root, copy, { recursive: true, preserveTimestamps: true });
    let code = regsweep(['--path', root, '--dry-run', '--verbose']);
    code ||= regsweep(['--path', root, '--yes', '--journal', path.join(root, 'regsweep.journal')]);
    code ||= regsweep(['--path', root, '--dry-run']);
    if (copy) {
      process.stdout.write("\nThe same purge on a copy, with the registry's own garbage-collect (--gc registry): the same blobs go, in a longer window.\n");
      code ||= regsweep(['--path', copy, '--yes', '--gc', 'registry']);
    } else {
      process.stdout.write("\n(no registry binary on PATH: the default sweep needs none; apt-get install docker-registry to compare with the registry's own garbage-collect, --gc registry)\n");
    }
    process.exitCode = code;
  } finally {
    if (keep) process.stdout.write(`\nkept ${root}\n`);
    else await fs.rm(root, { recursive: true, force: true });
    await fs.rm(`${root}-gc-registry`, { recursive: true, force: true });
  }
}

await main();
