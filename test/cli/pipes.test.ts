/**
 * Output to a pipe whose reader goes away early (`regsweep --help | head -1`,
 * `regsweep --path ROOT --dry-run --json | head -c 100`): the CLI ends quietly,
 * with no stack trace and the exit code of the run itself, and the run and its
 * --metrics-file are carried out to the end.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeBenchTree } from '../../scripts/benchTree.js';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { BIN, runCli } from '../support/cli.js';
import { parsePromText } from '../support/promText.js';
import { tempDir } from '../support/tmp.js';

interface ClosedRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What was read of stdout before closing it. */
  read: string;
  stderr: string;
  ms: number;
}

/**
 * Runs the built CLI with stdout a pipe this side closes once it has read `keep` bytes
 * (0: before the CLI writes anything), like `| head -c N`; `closeStderr` closes stderr at once too.
 */
function runClosingPipe(args: string[], { keep, closeStderr = false }: { keep: number; closeStderr?: boolean }): Promise<ClosedRun> {
  const started = Date.now();
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let read = '';
  let stderr = '';
  if (keep === 0) child.stdout.destroy();
  child.stdout.on('data', (c: Buffer) => {
    read += c.toString('latin1').slice(0, keep - read.length);
    if (read.length >= keep) child.stdout.destroy();
  });
  if (closeStderr) child.stderr.destroy();
  else child.stderr.on('data', (c) => (stderr += c));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, read, stderr, ms: Date.now() - started }));
  });
}

let big: string;
let out: string;

beforeAll(async () => {
  // 1200 removable revisions: the JSON report is some 400 KiB, the --verbose one about as long, far past a pipe's 64 KiB.
  big = await tempDir();
  writeBenchTree(big, { repositories: 20, tagsPerRepository: 10, revisionsPerTag: 6 });
  out = await tempDir();
});
afterAll(async () => {
  await fs.rm(big, { recursive: true, force: true });
  await fs.rm(out, { recursive: true, force: true });
});

/** No word of the closed pipe: nothing on stderr but, with --verbose, regsweep's own progress lines. */
const quietly = (run: ClosedRun, code: number, verbose = false): void => {
  expect(run.stderr).not.toMatch(/EPIPE|Error|\n\s+at /);
  if (verbose) for (const line of run.stderr.split('\n').filter(Boolean)) expect(line).toMatch(/^regsweep: /);
  else expect(run.stderr).toBe('');
  expect({ code: run.code, signal: run.signal }).toEqual({ code, signal: null });
  expect(run.ms).toBeLessThan(20_000);
};

it('--help into a pipe closed before it writes, and after its first line', async () => {
  quietly(await runClosingPipe(['--help'], { keep: 0 }), 0);
  const first = await runClosingPipe(['--help'], { keep: 20 });
  quietly(first, 0);
  expect(first.read).toMatch(/^Usage: regsweep/);
});

it('a --json dry run into `head -c 100`: exit 0, and the metrics file written', async () => {
  const file = path.join(out, 'dry.prom');
  const run = await runClosingPipe(['--path', big, '--dry-run', '--json', '--metrics-file', file], { keep: 100 });
  quietly(run, 0);
  expect(run.read).toMatch(/^\{\n {2}"schemaVersion": 1,/);
  const families = parsePromText(await fs.readFile(file, 'utf8'));
  expect(families.get('regsweep_last_run_exit_code')?.samples[0]?.value).toBe(0);
  expect(families.get('regsweep_last_run_removed_manifests')?.samples[0]?.value).toBe(1200);
});

it('a --verbose human report into `head -c 100`', async () => {
  const run = await runClosingPipe(['--path', big, '--dry-run', '--verbose'], { keep: 100 });
  quietly(run, 0, true);
  expect(run.read).toMatch(/^Dry run on /);
});

it('a refusal with stdout and stderr both closed: its own exit code, 2, and the metrics file says so', async () => {
  const file = path.join(out, 'refused.prom');
  const run = await runClosingPipe(['--path', `${big}/nope`, '--dry-run', '--metrics-file', file], { keep: 0, closeStderr: true });
  expect({ code: run.code, signal: run.signal }).toEqual({ code: 2, signal: null });
  expect(parsePromText(await fs.readFile(file, 'utf8')).get('regsweep_last_run_exit_code')?.samples[0]?.value).toBe(2);
});

it('a real run whose reader left at once still does all its work and exits 0', async () => {
  const root = await tempDir();
  try {
    const w = await new TreeWriter(root).init();
    await w.image('app', { seed: 'old', tag: 'latest' });
    await w.image('app', { seed: 'new', tag: 'latest' });
    const run = await runClosingPipe(['--path', root, '--yes', '--no-gc', '--verbose', '--json'], { keep: 0, closeStderr: true });
    expect({ code: run.code, signal: run.signal }).toEqual({ code: 0, signal: null });
    const after = await runCli(['--path', root, '--dry-run', '--json']);
    expect(JSON.parse(after.stdout).plan.manifests).toEqual([]);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});
