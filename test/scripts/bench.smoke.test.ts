/**
 * The benchmark's smallest size, only to prove it runs and reports: its
 * timings are not checked here (that is `npm run bench`'s job, not a test's).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { BIN } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

it('npm run bench works on the tiny tree', async () => {
  const dir = await tempDir();
  try {
    const script = path.resolve(path.dirname(BIN), '../dist/scripts/bench.js');
    const markdown = path.join(dir, 'BENCHMARKS.md');
    const { stdout } = await promisify(execFile)(process.execPath, [script, '--sizes', 'tiny', '--reps', '1', '--no-targets', '--dir', dir, '--markdown', markdown]);
    expect(stdout).toMatch(/^Machine: /);
    expect(stdout).toMatch(/\| tiny \| [\d,]+ \| 144 \| [\d.]+ s \| \d+ MiB \| [\d.]+ s \| [\d.]+× \|/);
    expect(stdout).toMatch(/\d[\d,]* removals, [\d,]+\/s/);
    expect(await fs.readFile(markdown, 'utf8')).toContain(stdout.trim());
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}, 120_000);

it('npm run bench -- --pulls works at a hundredth of its sizes', async () => {
  const dir = await tempDir();
  try {
    const script = path.resolve(path.dirname(BIN), '../dist/scripts/bench.js');
    const markdown = path.join(dir, 'PULLS.md');
    const { stdout } = await promisify(execFile)(process.execPath, [script, '--pulls', '--pulls-scale', '0.01', '--reps', '1', '--no-targets', '--dir', dir, '--markdown', markdown]);
    expect(stdout).toMatch(/^Machine: /);
    // The index: 100, 1,000 and 10,000 entries, each read whole.
    for (const n of ['100', '1,000', '10,000']) expect(stdout).toMatch(new RegExp(`^\\| ${n} \\| [\\d.]+ MiB \\| \\d+ ms \\| [\\d.]+ µs \\| \\d+ ms \\| [\\d.]+× \\|`, 'm'));
    // The log: 2,000 and 10,000 lines, each line read.
    for (const n of ['2,000', '10,000']) expect(stdout).toMatch(new RegExp(`^\\| ${n} \\| \\d+ MiB \\| \\d+ ms \\| [\\d,]+ \\| \\d+ ms \\| [\\d.]+× \\|`, 'm'));
    expect(await fs.readFile(markdown, 'utf8')).toContain(stdout.trim());
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}, 120_000);
