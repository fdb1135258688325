/**
 * `npm run demo`: builds a throwaway storage tree with history, a multi-arch
 * image and a signature, runs regsweep on it (a dry run, then the real thing)
 * and shows what happened. Garbage-collect runs when a registry binary is on
 * PATH (Debian: apt-get install docker-registry); otherwise links only.
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
    process.stdout.write(`Sample registry storage written to ${root}\n`);
    let code = regsweep(['--path', root, '--dry-run', '--verbose']);
    const registry = await findRegistryBinary(undefined);
    if (registry) {
      code ||= regsweep(['--path', root, '--yes', '--journal', path.join(root, 'regsweep.journal')]);
    } else {
      process.stdout.write('\n(no registry binary on PATH: purging links only; apt-get install docker-registry to see garbage-collect too)\n');
      code ||= regsweep(['--path', root, '--yes', '--no-gc']);
    }
    code ||= regsweep(['--path', root, '--dry-run']);
    process.exitCode = code;
  } finally {
    if (keep) process.stdout.write(`\nkept ${root}\n`);
    else await fs.rm(root, { recursive: true, force: true });
  }
}

await main();
