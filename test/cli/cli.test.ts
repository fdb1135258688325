/**
 * The command line as a user meets it: bad input is one line on stderr, exit
 * code 2, and an unchanged tree; success is quiet with -q.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { runCli } from '../support/cli.js';
import { expectValidReport } from '../support/schema.js';
import { snapshot, tempDir } from '../support/tmp.js';

let root: string;
let before: Record<string, string>;

beforeAll(async () => {
  root = await tempDir();
  const w = await new TreeWriter(root).init();
  await w.image('app', { seed: 'old', tag: 'latest' });
  await w.image('app', { seed: 'new', tag: 'latest' });
  await w.image('team/web', { seed: 'web', tag: 'v1' });
  before = await snapshot(root);
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('bad input: one line on stderr, exit 2, nothing changed', () => {
  const cases: Array<[string, () => string[], RegExp]> = [
    ['a missing path', () => ['--path', `${root}/nope`, '--yes', '--no-gc'], /is not a registry storage root/],
    ['a directory that is not a registry root', () => ['--path', `${root}/docker`, '--yes', '--no-gc'], /is not a registry storage root/],
    ['no target and no --path', () => ['--yes', '--no-gc'], /name a registry container or service, a volume \(--volume\), or a storage path \(--path\)/],
    ['an invalid repository name', () => ['--path', root, '--yes', '--no-gc', 'Bad/Name'], /invalid repository name: "Bad\/Name"/],
    ['a path-like repository name', () => ['--path', root, '--yes', '--no-gc', '../x'], /invalid repository name: "..\/x"/],
    ['an invalid tag', () => ['--path', root, '--yes', '--no-gc', 'app:-x'], /invalid tag: "-x"/],
    ['a repository that does not exist', () => ['--path', root, '--yes', '--no-gc', 'nope/app'], /no repository nope\/app/],
    ['a tag that does not exist', () => ['--path', root, '--yes', '--no-gc', 'app:nope'], /no tag nope in repository app/],
    ['an unknown option', () => ['--path', root, '--yes', '--frobnicate'], /unknown option '--frobnicate'/],
    ['a bad --concurrency', () => ['--path', root, '--yes', '--concurrency', '0'], /concurrency/],
    ['a registry binary that does not exist', () => ['--path', root, '--yes', '--registry-bin', `${root}/nope`], /is not an executable file/],
    ['--registry-image without --gc registry', () => ['--path', root, '--yes', '--registry-image', 'registry:2'], /--registry-image names the image the registry's garbage-collect runs from: give --gc registry too/],
    ['--config alone, naming a root that is none', () => ['--yes', '--no-gc', '--config', `${root}/other.yml`], /\/elsewhere is not a registry storage root/],
    ['--config with --volume', () => ['--volume', 'v', '--yes', '--config', `${root}/other.yml`], /--config goes with --path, or names the storage alone/],
    ['--restore without --path', () => ['--restore', `${root}/journal`], /--restore needs --path ROOT/],
    ['-x without a repository', () => ['--path', root, '--yes', '-x'], /option '-x, --remove <refs...>' argument missing/],
    ['-x of a repository that does not exist', () => ['--path', root, '--yes', '--no-gc', '-x', 'nope'], /no repository nope/],
    ['a --keep that is not a number', () => ['--path', root, '--yes', '--keep', 'ten'], /--keep <n>' argument 'ten' is invalid/],
    ['a bad duration', () => ['--path', root, '--yes', '--no-gc', '--older-than', '3x'], /invalid duration "3x"/],
    ['--keep-tags alone', () => ['--path', root, '--yes', '--no-gc', '--keep-tags', 'v1'], /--keep-tags protects tags from --keep, --older-than or --tags/],
    ['a policy file that does not exist', () => ['--path', root, '--yes', '--no-gc', '--policy', `${root}/nope.yml`], /cannot read policy .*nope.yml: ENOENT/],
    ['a real run without --yes when stdin is not a terminal', () => ['--path', root, '--no-gc'], /without --yes: stdin is not a terminal/],
    ['a --config for another root', () => ['--path', root, '--yes', '--no-gc', '--config', `${root}/other.yml`], /stores at \/elsewhere/],
    ['a bad --wait', () => ['--path', root, '--yes', '--no-gc', '--wait', 'soon'], /--wait <duration>' argument 'soon' is invalid/],
    ['a journal that is not one', () => ['--path', root, '--restore', `${root}/other.yml`], /other.yml:1: not a journal line/],
  ];
  beforeAll(async () => {
    await fs.writeFile(`${root}/other.yml`, 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /elsewhere\n');
    before = await snapshot(root);
  });
  it.each(cases)('%s', async (_name, args, message) => {
    const run = await runCli(args());
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(await snapshot(root)).toEqual(before);
  });
});

describe('output', () => {
  it('-V prints the version', async () => {
    const run = await runCli(['-V']);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('--help shows the options and exit codes', async () => {
    const run = await runCli(['--help']);
    expect(run.code).toBe(0);
    for (const option of ['--path', '--dry-run', '--yes', '--no-gc', '--json', '--journal', '--registry-bin', '--config', '--quiet']) {
      expect(run.stdout).toContain(option);
    }
    expect(run.stdout).toMatch(/Exit codes: 0 done, 1 done with problems, 2 refused/);
    // regsweep's own sweep is the default (issue 23).
    expect(run.stdout).toMatch(/--gc <who>[\s\S]*?\(choices:\s+"builtin",\s+"registry",\s+default:\s+"builtin"\)/);
    expect(run.stdout).toMatch(/-x, --remove[\s\S]*alone,\s+it\s+touches\s+nothing\s+else/);
  });

  it('a dry run prints a human summary and changes nothing', async () => {
    const run = await runCli(['--path', root, '--dry-run']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Would remove 1 manifest, 1 tag history entry in 1 repository\./);
    expect(run.stdout).toMatch(/manifests\s+3\s+2/);
    expect(await snapshot(root)).toEqual(before);
  });

  it('--verbose lists every removed path', async () => {
    const copy = await tempDir();
    await fs.cp(root, copy, { recursive: true });
    const run = await runCli(['--path', copy, '--yes', '--no-gc', '--verbose']);
    await fs.rm(copy, { recursive: true, force: true });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^ {2}removed docker\/registry\/v2\/repositories\/app\/_manifests\/revisions\/sha256\/[0-9a-f]{64}$/m);
    expect(run.stdout).toMatch(/^ {2}removed docker\/registry\/v2\/repositories\/app\/_manifests\/tags\/latest\/index\/sha256\/[0-9a-f]{64}$/m);
  });

  it('errors are one line; --debug adds the stack', async () => {
    const plain = await runCli(['--path', `${root}/nope`, '--dry-run']);
    expect(plain.stderr.trimEnd().split('\n')).toHaveLength(1);
    const debug = await runCli(['--path', `${root}/nope`, '--dry-run', '--debug']);
    expect(debug.code).toBe(2);
    expect(debug.stderr).toMatch(/^regsweep: .* is not a registry storage root.*\n.*UsageError[\s\S]*at /);
  });

  it('-q prints nothing on success', async () => {
    const copy = await tempDir();
    await fs.cp(root, copy, { recursive: true });
    const run = await runCli(['--path', copy, '--yes', '--no-gc', '-q']);
    await fs.rm(copy, { recursive: true, force: true });
    expect(run).toEqual({ code: 0, stdout: '', stderr: '' });
  });
});

/** Another regsweep run holding the lock of `dir` (compiled code, in a process of its own) until `release()`. */
async function holder(dir: string): Promise<{ release(): Promise<void> }> {
  const module = path.resolve('dist/src/storage/fs/lock.js');
  const script = `
    import { RunLock } from ${JSON.stringify(module)};
    const lock = await RunLock.acquire(process.argv[1], { target: { kind: 'path', name: 'other' }, bringBack: { restart: true } });
    console.log('held');
    process.stdin.on('data', () => { lock.release(); process.exit(0); });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  return {
    release: () =>
      new Promise<void>((resolve) => {
        child.on('exit', () => resolve());
        child.stdin.write('go\n');
      }),
  };
}

describe('one run at a time', () => {
  it('a real run while another holds the registry: exit 75, one line naming it, nothing changed; a dry run says who holds it', async () => {
    const other = await holder(root);
    try {
      const before = await snapshot(root);
      const run = await runCli(['--path', root, '--yes', '--no-gc']);
      expect(run.code).toBe(75);
      expect(run.stderr).toMatch(/^regsweep: busy: another regsweep run, pid \d+ on .*, started .*, holds this registry\n$/);
      expect(await snapshot(root)).toEqual(before);
      const dry = await runCli(['--path', root, '--dry-run', '--json']);
      expect(dry.code).toBe(0);
      const report = JSON.parse(dry.stdout);
      expectValidReport(report);
      expect(report.lock).toMatchObject({ alive: true, holder: { pid: expect.any(Number) } });
      expect(report.lock.holder.pid).not.toBe(process.pid);
    } finally {
      await other.release();
    }
  });

  it('with --wait, waits for the other run and then does its work', async () => {
    const dir = await tempDir();
    try {
      const w = await new TreeWriter(dir).init();
      await w.image('app', { seed: 'a', tag: 'latest' });
      await w.image('app', { seed: 'b', tag: 'latest' });
      const other = await holder(dir);
      setTimeout(() => void other.release(), 1500);
      const started = Date.now();
      const run = await runCli(['--path', dir, '--yes', '--no-gc', '--wait', '30s', '--json']);
      expect(run.code).toBe(0);
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
      expect(JSON.parse(run.stdout).plan.manifests).toHaveLength(1);
      expect((await fs.readdir(dir)).filter((f) => f.startsWith('.regsweep'))).toEqual([]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
