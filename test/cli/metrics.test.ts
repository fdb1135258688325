/**
 * `--metrics-file`: the real CLI writes a Prometheus textfile that a strict
 * parser of the format reads, with the values of the run's own JSON report,
 * on success and on failure, replaced whole by a rename.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBenchTree } from '../../scripts/benchTree.js';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { escapeLabelValue, formatMetrics } from '../../src/cli/metrics.js';
import { BIN, runCli } from '../support/cli.js';
import { type Family, parsePromText } from '../support/promText.js';
import { tempDir } from '../support/tmp.js';

const GAUGES = ['timestamp_seconds', 'duration_seconds', 'paused_seconds', 'freed_bytes', 'predicted_bytes', 'removed_manifests', 'removed_tags', 'problems', 'exit_code'];

let work: string;
let root: string;
let out: string;
let file: string;

/**
 * The file as Prometheus's own Python client reads it (Debian's
 * python3-prometheus-client, which CI installs): family → type and samples.
 * Undefined where that client is not installed.
 */
const OFFICIAL = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {f.name: {"type": f.type, "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]} for f in text_string_to_metric_families(sys.stdin.read())}
print(json.dumps(out))
`;
function officialParse(text: string): Record<string, { type: string; samples: Array<{ name: string; labels: Record<string, string>; value: number }> }> | undefined {
  const probe = spawnSync('/usr/bin/python3', ['-c', 'import prometheus_client'], { stdio: 'ignore' });
  if (probe.status !== 0) return undefined;
  const parsed = spawnSync('/usr/bin/python3', ['-c', OFFICIAL], { input: text, encoding: 'utf8' });
  expect(parsed.stderr).toBe('');
  return JSON.parse(parsed.stdout);
}

/** Every gauge's one value, after checking each family is a gauge with its HELP and one sample labelled with `target`; the official parser reads the same. */
async function readMetrics(target: string): Promise<Record<string, number>> {
  const text = await fs.readFile(file, 'utf8');
  const families = parsePromText(text);
  const official = officialParse(text);
  if (official) {
    expect(Object.keys(official)).toEqual([...families.keys()]);
    for (const [name, family] of families) expect(official[name]).toEqual({ type: family.type, samples: family.samples });
  }
  expect([...families.keys()]).toEqual(GAUGES.map((g) => `regsweep_last_run_${g}`));
  const values: Record<string, number> = {};
  for (const [name, family] of families as Map<string, Family>) {
    expect(family.type).toBe('gauge');
    expect(family.help).toMatch(/\w/);
    expect(family.samples).toHaveLength(1);
    expect(family.samples[0]?.labels).toEqual({ target });
    values[name.replace('regsweep_last_run_', '')] = family.samples[0]?.value as number;
  }
  return values;
}

beforeAll(async () => {
  work = await tempDir();
  // The root's name has every character a label value escapes: the label must come back as the report's target name.
  root = path.join(work, 'reg "quoted" back\\slash\nnewline');
  const w = await new TreeWriter(root).init();
  await w.image('app', { seed: 'old', tag: 'latest' });
  await w.image('app', { seed: 'new', tag: 'latest' });
  for (const tag of ['v1', 'v2', 'v3']) await w.image('team/web', { seed: tag, tag });
  out = path.join(work, 'textfile_collector');
  await fs.mkdir(out);
  file = path.join(out, 'regsweep.prom');
});
afterAll(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

describe('the textfile of a run', () => {
  it('a real run: every gauge reads as the JSON report of the same run says; the old file is replaced by a rename, no temporary file stays', async () => {
    const copy = path.join(work, 'copy');
    await fs.cp(root, copy, { recursive: true });
    await fs.writeFile(file, 'stale\n');
    const staleInode = (await fs.stat(file)).ino;
    const started = Date.now();
    const run = await runCli(['--path', copy, '--yes', '--no-gc', '--keep', '1', '--json', '--metrics-file', file]);
    const ended = Date.now();
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    const m = await readMetrics(report.target.name);
    expect(report.target.name).toBe(copy);
    expect(m.exit_code).toBe(0);
    expect(m.removed_manifests).toBe(report.plan.manifests.length);
    expect(m.removed_tags).toBe(report.plan.tags.length);
    expect(m.removed_tags).toBeGreaterThan(0);
    expect(m.problems).toBe(report.problems.length);
    expect(m.predicted_bytes).toBe(report.predicted.bytes);
    expect(m.freed_bytes).toBe(report.freed.bytes);
    expect(m.paused_seconds).toBe(report.pausedMs / 1000);
    // The CLI's clock runs from before the sweep starts to after the report is printed.
    expect(m.duration_seconds).toBeGreaterThanOrEqual(report.durationMs / 1000);
    expect(m.duration_seconds).toBeLessThanOrEqual((ended - started) / 1000);
    expect(m.timestamp_seconds).toBeGreaterThanOrEqual(started / 1000);
    expect(m.timestamp_seconds).toBeLessThanOrEqual(ended / 1000);
    expect(await fs.readdir(out)).toEqual(['regsweep.prom']);
    expect((await fs.stat(file)).ino).not.toBe(staleInode);
  });

  it('a dry run writes too, with nothing freed; the label is escaped and reads back as the path', async () => {
    const run = await runCli(['--path', root, '--dry-run', '--json', '--metrics-file', file]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    const m = await readMetrics(root);
    expect(m).toMatchObject({ exit_code: 0, freed_bytes: 0, removed_manifests: report.plan.manifests.length, predicted_bytes: report.predicted.bytes });
    expect(m.removed_manifests).toBe(1);
    expect(await fs.readFile(file, 'utf8')).toContain(`{target="${escapeLabelValue(root)}"}`);
    expect(await fs.readdir(out)).toEqual(['regsweep.prom']);
  });

  const refused: Array<[string, () => string[], () => string]> = [
    ['a --path that is not a registry root', () => ['--path', `${work}/textfile_collector`, '--yes', '--metrics-file', file], () => `${work}/textfile_collector`],
    ['an unknown option before --metrics-file', () => ['--path', root, '--frobnicate', '--metrics-file', file], () => root],
    ['a bad option value before --metrics-file, TARGET first', () => ['registry', '--keep', 'ten', '--metrics-file', file], () => 'registry'],
    ['a real run without --yes on a pipe', () => ['-v', 'registry-data', `--metrics-file=${file}`], () => 'registry-data'],
  ];
  it.each(refused)('refused (%s): exit 2 recorded, with the target as named, the rest 0', async (_name, args, target) => {
    await fs.writeFile(file, 'stale\n');
    const run = await runCli(args());
    expect(run.code).toBe(2);
    const m = await readMetrics(target());
    expect(m).toMatchObject({ exit_code: 2, paused_seconds: 0, freed_bytes: 0, predicted_bytes: 0, removed_manifests: 0, removed_tags: 0, problems: 0 });
    expect(m.duration_seconds).toBeGreaterThan(0);
    expect(m.timestamp_seconds).toBeGreaterThan(Date.now() / 1000 - 60);
    expect(await fs.readdir(out)).toEqual(['regsweep.prom']);
  });

  it('--help and --version are no run: they write nothing', async () => {
    await fs.rm(file, { force: true });
    expect((await runCli(['--help', '--metrics-file', file])).code).toBe(0);
    expect((await runCli(['--metrics-file', file, '-V'])).code).toBe(0);
    expect(await fs.readdir(out)).toEqual([]);
  });

  it('a metrics file that cannot be written: one line on stderr, and exit 1 instead of 0', async () => {
    const run = await runCli(['--path', root, '--dry-run', '-q', '--metrics-file', `${work}/nope/regsweep.prom`]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^regsweep: cannot write --metrics-file .*nope\/regsweep\.prom: ENOENT\n$/);
  });
});

it('a run that SIGTERM ends records 128+15 and what it knew, then ends by the signal', async () => {
  const big = await tempDir();
  try {
    writeBenchTree(big, { repositories: 20, tagsPerRepository: 10, revisionsPerTag: 6 });
    const child = spawn(process.execPath, [BIN, '--path', big, '--dry-run', '--json', '--metrics-file', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    // 'exit', not 'close': stdout is left unread, so it never ends.
    const ended = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (code, signal) => resolve([code, signal])));
    // The report is printed after the run: the first bytes mean the report is known. Reading no more, the
    // JSON (some 400 KiB) fills the pipe and the run waits on it until the signal comes.
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.stdout.pause();
    child.kill('SIGTERM');
    expect(await ended).toEqual([null, 'SIGTERM']);
    expect(stderr).toBe('');
    const m = await readMetrics(big);
    expect(m).toMatchObject({ exit_code: 143, removed_manifests: 1200, freed_bytes: 0 });
    expect(await fs.readdir(out)).toEqual(['regsweep.prom']);
  } finally {
    await fs.rm(big, { recursive: true, force: true });
  }
});

describe('the format', () => {
  it('escapes backslash, double quote and line feed in the label, and nothing else', () => {
    expect(escapeLabelValue('a\\b"c\nd é')).toBe('a\\\\b\\"c\\nd é');
    const target = 'x\\"\n\\n"';
    const text = formatMetrics({ target, exitCode: 75, endedAt: 1_767_312_000_500, durationMs: 1500 });
    const families = parsePromText(text);
    expect(families.get('regsweep_last_run_exit_code')?.samples).toEqual([{ name: 'regsweep_last_run_exit_code', labels: { target }, value: 75 }]);
    expect(families.get('regsweep_last_run_timestamp_seconds')?.samples[0]?.value).toBe(1_767_312_000.5);
    expect(families.get('regsweep_last_run_duration_seconds')?.samples[0]?.value).toBe(1.5);
    expect(text.split('\n').filter((l) => !l.startsWith('#'))).toHaveLength(GAUGES.length + 1);
  });

  it('the test parser is strict: it refuses what Prometheus refuses', () => {
    const ok = '# HELP a_b Help \\\\ and \\n.\n# TYPE a_b gauge\na_b{x="1",y="\\"\\\\\\n"} 1.5e3\n';
    expect(parsePromText(ok).get('a_b')).toEqual({ help: 'Help \\ and \n.', type: 'gauge', samples: [{ name: 'a_b', labels: { x: '1', y: '"\\\n' }, value: 1500 }] });
    const bad = [
      'a 1', // no final line feed
      'a{x="\\t"} 1\n', // an escape the format does not know
      'a{x="1} 1\n',
      'a{x="1",x="2"} 1\n',
      'a 1\na 2\n',
      'a 1\n# TYPE a gauge\n',
      '# TYPE a gauge\n# TYPE a gauge\na 1\n',
      'a 1\nb 1\na{x="1"} 1\n',
      'a one\n',
      '1a 1\n',
      'a{1x="1"} 1\n',
      'a 1 2 3\n',
      '# TYPE a histogram\n',
      '# HELP a bad \\q\n',
    ];
    for (const text of bad) expect(() => parsePromText(text), JSON.stringify(text)).toThrow();
  });
});
