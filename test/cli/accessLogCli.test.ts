/**
 * `regsweep --path ROOT --access-log FILE` (issue 25, points 1 and 2), the
 * built CLI on roots the real registry (2.8.2, and 3.0.0 where present)
 * served while this test pushed and pulled through its HTTP API, logging in
 * the `text` and the `json` formatter:
 *
 * - a dry run reads the log (the report's `pulls.read`) and creates the index
 *   beside docker/, holding exactly the pulls the test made, by tag and by
 *   digest, and nothing of the tag it never pulled, in either format;
 * - a log that cannot be read refuses the run (exit 2, one line) and no index
 *   is written;
 * - a run killed (SIGKILL) while it writes the index leaves the previous one,
 *   which the next run reads: the pulls only the first log held are still there;
 * - a dry run on a read-only mount of the root reads the index and does not
 *   write it, and says so; a damaged index is reported and rebuilt, not trusted;
 * - a log whose last line is over a day old holds the pull rules, and says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registryBinary } from '../../scripts/registryClient.js';
import type { Digest } from '../../src/model.js';
import { PullIndex } from '../../src/plan/pullIndex.js';
import { runCli, startCli, waitForFile } from '../support/cli.js';
import { type PullKey, type RealLog, loggedPulls } from '../support/loggingRegistry.js';
import { bindMount, canMount, unmountAll } from '../support/smallDisk.js';
import { snapshot, tempDir } from '../support/tmp.js';
import { registryV3Bin } from '../support/registryV3.js';

const VERSIONS: Array<[string, string | undefined]> = [
  ['2.8.2', registryBinary()],
  ['3.0.0', registryV3Bin],
];
const FORMATS = ['text', 'json'] as const;
const INDEX = '.regsweep-pulls';
const mountable = canMount();
afterEach(() => unmountAll());

interface PullsReport {
  index: { where: string; state: string; problem?: string };
  coverage: { from: string; to: string } | null;
  read: { sources: number; lines: number; pulls: number; junk: number };
}

function pullsOf(stdout: string): PullsReport {
  return (JSON.parse(stdout) as { pulls: PullsReport }).pulls;
}

const readIndex = (root: string): PullIndex => PullIndex.parse(fs.readFileSync(path.join(root, INDEX), 'utf8'));

/** Which of `keys` the index holds a pull of. */
function held(index: PullIndex, keys: Iterable<PullKey>): PullKey[] {
  return [...keys].filter((key) => {
    const at = key.lastIndexOf('@');
    if (at >= 0) return index.digestsPulledSince(key.slice(0, at), 0).has(key.slice(at + 1) as Digest);
    const colon = key.lastIndexOf(':');
    return index.lastPull(key.slice(0, colon), key.slice(colon + 1), undefined) !== undefined;
  });
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** A real registry line with its time moved `ms` back: the logger's time (text or JSON) and the access line's. */
function movedBack(line: string, ms: number): string {
  const iso = (t: string): string => new Date(Date.parse(t) - ms).toISOString();
  return line
    .replace(/^time="([^"]+)"/, (_, t: string) => `time="${iso(t)}"`)
    .replace(/"time":"([^"]+)"/, (_, t: string) => `"time":"${iso(t)}"`)
    .replace(/\[(\d{2})\/([A-Z][a-z]{2})\/(\d{4}):(\d{2}:\d{2}:\d{2}) ([+-]\d{2})(\d{2})\]/, (_, d: string, mon: string, y: string, hms: string, zh: string, zm: string) => {
      const month = String(MONTHS.indexOf(mon) + 1).padStart(2, '0');
      const at = new Date(Date.parse(`${y}-${month}-${d}T${hms}${zh}:${zm}`) - ms);
      const pad = (n: number): string => String(n).padStart(2, '0');
      return `[${pad(at.getUTCDate())}/${MONTHS[at.getUTCMonth()]}/${at.getUTCFullYear()}:${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())} +0000]`;
    });
}


describe.each(VERSIONS)('regsweep --access-log on a root the real registry %s served', (version, bin) => {
  const logs = new Map<string, RealLog>();
  let dir = '';

  beforeAll(async () => {
    if (!bin) return;
    dir = await tempDir('regsweep-accesslog-cli-');
    for (const formatter of FORMATS) logs.set(formatter, await loggedPulls(bin, formatter, dir));
  }, 120_000);
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!bin).each(FORMATS)('a dry run reads the %s log and creates the index beside docker/ with exactly the pulls made, by tag and by digest', async (formatter) => {
    const log = logs.get(formatter) as RealLog;
    fs.rmSync(path.join(log.root, INDEX), { force: true });
    const run = await runCli(['--path', log.root, '--access-log', log.file, '--dry-run', '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const pulls = pullsOf(run.stdout);
    expect(pulls.index).toEqual({ where: path.join(log.root, INDEX), state: 'created' });
    expect(pulls.read.sources).toBe(1);
    // Each pull is logged twice (the formatter's line and the access line), 3.0.0's HEADs once.
    expect(pulls.read.pulls).toBeGreaterThanOrEqual(log.requested.size);
    expect(pulls.read.lines).toBe(fs.readFileSync(log.file, 'utf8').split('\n').filter((l) => l !== '').length);
    expect(pulls.read.junk).toBe(0);
    const index = readIndex(log.root);
    expect(held(index, log.requested.keys()).sort()).toEqual([...log.requested.keys()].sort());
    expect(held(index, log.unpulled)).toEqual([]);
    for (const key of log.requested.keys()) {
      const [repository, tag] = key.split(':') as [string, string];
      if (key.includes('@')) continue;
      const at = index.lastPull(repository, tag, undefined) as number;
      expect(at >= Math.floor(log.from / 1000) * 1000 && at <= log.to).toBe(true);
    }
  });

  it.skipIf(!bin).each(FORMATS)('a %s log whose last line is over a day old holds the pull rules and says so; the same log ending with a line of now judges them', async (formatter) => {
    const log = logs.get(formatter) as RealLog;
    const DAY = 86_400_000;
    const lines = fs.readFileSync(log.file, 'utf8').split('\n').filter((l) => l !== '');
    // The registry's own lines, three days back: a copy of the log that stopped then (a rotated file without the current one).
    const old = lines.map((l) => movedBack(l, 3 * DAY));
    expect(old.filter((l, i) => l === lines[i])).toEqual([]);
    const stale = path.join(dir, `stale-${formatter}.log`);
    fs.writeFileSync(stale, `${old.join('\n')}\n`);
    fs.rmSync(path.join(log.root, INDEX), { force: true });
    const held = await runCli(['--path', log.root, '--access-log', stale, '--unpulled-for', '1d', '--dry-run', '--json']);
    expect(held.stderr).toBe('');
    expect(held.code).toBe(0);
    const report = JSON.parse(held.stdout) as { pulls: PullsReport & { held: string[] }; plan: { tags: unknown[] } };
    expect(report.pulls.read.junk).toBe(0);
    const end = Date.parse(report.pulls.coverage?.to as string);
    expect(end).toBeLessThan(Date.now() - 3 * DAY + 60_000);
    expect(report.pulls.held).toEqual([
      `--unpulled-for 1d selects nothing: the log the pull index has seen ends at ${new Date(end).toISOString()} (3 days ago), and pulls since then are unknown: pass the registry's current log`,
    ]);
    expect(report.plan.tags).toEqual([]);

    // The same lines and one of now after them: the log reaches now, and the rule judges (the tags were pushed moments ago: none goes).
    fs.rmSync(path.join(log.root, INDEX), { force: true });
    fs.appendFileSync(stale, `${lines[lines.length - 1]}\n`);
    const judged = JSON.parse((await runCli(['--path', log.root, '--access-log', stale, '--unpulled-for', '1d', '--dry-run', '--json'])).stdout) as typeof report;
    expect(judged.pulls.held).toEqual([]);
    expect(Date.parse(judged.pulls.coverage?.to as string)).toBeGreaterThan(Date.now() - DAY);
  });

  it.skipIf(!bin)('an --access-log that cannot be read refuses the run: exit 2, one line on stderr, no index written, nothing changed', async () => {
    const log = logs.get('text') as RealLog;
    fs.rmSync(path.join(log.root, INDEX), { force: true });
    const before = await snapshot(log.root);
    const missing = path.join(dir, 'missing.log');
    for (const args of [[log.file, missing], [dir]]) {
      const run = await runCli(['--path', log.root, '--access-log', ...args, '--dry-run', '--json']);
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(run.stderr).toContain(`cannot read --access-log ${args[args.length - 1]}`);
      expect(fs.existsSync(path.join(log.root, INDEX))).toBe(false);
      expect(await snapshot(log.root)).toEqual(before);
    }
  });

  it.skipIf(!bin)('a run killed (SIGKILL) while it writes the index leaves the previous index, which the next run reads: its pulls still there', async () => {
    const log = logs.get('json') as RealLog;
    const root = log.root;
    fs.rmSync(path.join(root, INDEX), { force: true });
    // The first log: all of it. The later logs: only its lines of team/api (real lines, a part of the log).
    const first = await runCli(['--path', root, '--access-log', log.file, '--dry-run', '--json']);
    expect(first.code).toBe(0);
    const previous = fs.readFileSync(path.join(root, INDEX), 'utf8');
    const webPulls = [...log.requested.keys()].filter((k) => k.startsWith('team/web'));
    expect(webPulls.length).toBeGreaterThan(0);
    const apiOnly = path.join(dir, 'api-only.log');
    fs.writeFileSync(apiOnly, fs.readFileSync(log.file, 'utf8').split('\n').filter((l) => l.includes('/v2/team/api/')).join('\n'));

    const hold = path.join(dir, 'hold');
    const killed = startCli(['--path', root, '--access-log', apiOnly, '--dry-run', '--json'], { REGSWEEP_HOLD_AT: `pull-index-write:${hold}` });
    await waitForFile(hold, 60_000);
    expect(fs.readdirSync(root).filter((n) => n.startsWith(`${INDEX}.tmp-`))).toHaveLength(1);
    killed.kill('SIGKILL');
    expect((await killed.done).signal).toBe('SIGKILL');
    expect(fs.readFileSync(path.join(root, INDEX), 'utf8')).toBe(previous);
    expect(held(PullIndex.parse(previous), webPulls)).toEqual(webPulls);

    const next = await runCli(['--path', root, '--access-log', apiOnly, '--dry-run', '--json']);
    expect(next.code).toBe(0);
    expect(pullsOf(next.stdout).index.state).toBe('written');
    expect(fs.readdirSync(root).filter((n) => n.startsWith(`${INDEX}.tmp-`))).toEqual([]);
    const after = readIndex(root);
    expect(held(after, webPulls)).toEqual(webPulls);
    expect(held(after, log.requested.keys()).sort()).toEqual([...log.requested.keys()].sort());
  });

  it.skipIf(!bin || !mountable)('a dry run on a read-only mount of the root reads the index, does not write it, and says so', async () => {
    const log = logs.get('text') as RealLog;
    fs.rmSync(path.join(log.root, INDEX), { force: true });
    expect((await runCli(['--path', log.root, '--access-log', log.file, '--dry-run', '--json'])).code).toBe(0);
    const before = await snapshot(log.root);
    const view = path.join(dir, 'ro-view');
    fs.mkdirSync(view, { recursive: true });
    bindMount(log.root, view);
    execFileSync('mount', ['-o', 'remount,bind,ro', view], { stdio: 'pipe' });
    const json = await runCli(['--path', view, '--access-log', log.file, '--dry-run', '--json']);
    expect(json.code).toBe(0);
    const pulls = pullsOf(json.stdout);
    expect(pulls.index).toEqual({ where: path.join(view, INDEX), state: 'read-only' });
    // What the index held before this run counts: its coverage began with the first run's read.
    expect(pulls.coverage).not.toBeNull();
    const human = await runCli(['--path', view, '--access-log', log.file, '--dry-run', '--verbose']);
    expect(human.code).toBe(0);
    expect(human.stdout + human.stderr).toContain('not written: this run cannot write the storage');
    expect(await snapshot(log.root)).toEqual(before);
  });

  it.skipIf(!bin)('a damaged index is reported and rebuilt from the log, never trusted', async () => {
    const log = logs.get('json') as RealLog;
    fs.rmSync(path.join(log.root, INDEX), { force: true });
    expect((await runCli(['--path', log.root, '--access-log', log.file, '--dry-run', '--json'])).code).toBe(0);
    // A pull of a tag nobody pulled, written into the body without its checksum: a damaged index.
    const text = fs.readFileSync(path.join(log.root, INDEX), 'utf8').replace('"tags":{', '"tags":{"unpulled":4102444800000,');
    fs.writeFileSync(path.join(log.root, INDEX), text);
    const run = await runCli(['--path', log.root, '--access-log', log.file, '--dry-run', '--json']);
    expect(run.code).toBe(0);
    const pulls = pullsOf(run.stdout);
    expect(pulls.index.state).toBe('rebuilt');
    expect(pulls.index.problem).toMatch(/damaged .*checksum/);
    const index = readIndex(log.root);
    expect(held(index, log.requested.keys()).sort()).toEqual([...log.requested.keys()].sort());
    expect(held(index, log.unpulled)).toEqual([]);
  });
});
