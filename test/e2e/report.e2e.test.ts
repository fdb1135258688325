/**
 * Reports on real trees: counts match the tree itself, freed equals before
 * minus after equals the prediction, --json validates against the shipped
 * schema and is all there is on stdout, progress shows only on a terminal.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { BIN, runCli } from '../support/cli.js';
import { RegistryClient, registryBinary, startRegistry } from '../../scripts/registryClient.js';
import { pushMixedScenario } from '../support/scenario.js';
import { expectValidReport } from '../support/schema.js';
import { countTree, tempDir } from '../support/tmp.js';

const bin = registryBinary();

describe.skipIf(!bin)('reports on a real registry tree', () => {
  let root: string;
  beforeAll(async () => {
    root = await tempDir();
    const registry = await startRegistry(root, { bin });
    await pushMixedScenario(new RegistryClient(registry.url));
    await registry.stop();
  }, 120_000);
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('a dry run: valid JSON and nothing else on stdout, counts from the tree, per-repository rows adding up', async () => {
    const run = await runCli(['--path', root, '--dry-run', '--json', '--grace', '0s', '--registry-bin', bin as string]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.schemaVersion).toBe(1);
    expect(report.before).toEqual(await countTree(root));
    expect(report.perRepository.reduce((n: number, r: { predictedBytes: number }) => n + r.predictedBytes, 0)).toBe(report.predicted.bytes);
    expect(report.perRepository.map((r: { repository: string }) => r.repository)).toContain('(unreferenced blobs)');
    const bytes = report.perRepository.map((r: { predictedBytes: number }) => r.predictedBytes);
    expect(bytes).toEqual([...bytes].sort((a, b) => b - a));
  });

  it('a human dry run shows the table of the largest repositories with proportional bars', async () => {
    const run = await runCli(['--path', root, '--dry-run', '--top', '2', '--grace', '0s', '--registry-bin', bin as string]);
    const lines = run.stdout.split('\n');
    const start = lines.indexOf('Reclaimable by repository (predicted):');
    expect(start).toBeGreaterThan(0);
    const rows = lines.slice(start + 1, start + 4);
    expect(rows[0]).toMatch(/█{24}$/);
    expect((rows[1]?.match(/█/g) ?? []).length).toBeLessThanOrEqual(24);
    expect(rows[2]).toMatch(/^ {2}… \d+ more repositories, /);
  });

  it('a real run: valid JSON, after counts from the tree, freed = before - after = predicted', async () => {
    const run = await runCli(['--path', root, '--yes', '--json', '--grace', '0s', '--registry-bin', bin as string]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.after).toEqual(await countTree(root));
    expect(report.freed).toEqual({ blobs: report.before.blobs - report.after.blobs, bytes: report.before.bytes - report.after.bytes });
    expect(report.freed).toEqual(report.predicted);
    // The default sweep: regsweep's own (the tree was written just now, hence --grace 0s).
    expect(report.gc).toMatchObject({ mode: 'builtin', ran: true });
    expect(report.gc.durationMs).toBeGreaterThanOrEqual(0);
  });
});

describe('progress', () => {
  let root: string;
  beforeAll(async () => {
    root = await tempDir();
    const w = await new TreeWriter(root).init();
    for (let i = 0; i < 5; i++) await w.image(`repo${i}`, { seed: `p${i}`, tag: 'latest' });
  });
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  const hasScript = spawnSync('script', ['--version']).status === 0;
  /** Runs the CLI with a pseudo-terminal for stdin, stdout and stderr, as at a shell. */
  const onTerminal = (args: string[], env: Record<string, string | undefined> = {}) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
    const command = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
    return spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', env: childEnv });
  };

  it.skipIf(!hasScript)('is drawn on a terminal', () => {
    const run = onTerminal(['--path', root, '--dry-run', '--no-gc'], { CI: undefined });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/\r\x1b\[Kscanning: \d+\/5 repositories/);
  });
  it.skipIf(!hasScript)('is off when CI is set, with --no-progress and with -q', () => {
    for (const [args, env] of [[[], { CI: 'true' }], [['--no-progress'], { CI: undefined }], [['-q'], { CI: undefined }]] as const) {
      const run = onTerminal(['--path', root, '--dry-run', '--no-gc', ...args], env);
      expect(run.status).toBe(0);
      expect(run.stdout).not.toMatch(/scanning:/);
    }
  });
  it('is off in a pipe', async () => {
    const run = await runCli(['--path', root, '--dry-run', '--no-gc'], { env: { CI: '' } });
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
  });
});
