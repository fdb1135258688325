/**
 * `--keep-digests` and `--no-in-use` on the command line, with --path: a bad
 * list refuses the run (exit 2, one line, nothing changed), a good one keeps
 * its digests and the report names them; an engine that --path cannot reach
 * is no error. Then the engine's part (pinsInUse) with the fake engine.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Written } from '../../scripts/sampleTree.js';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { pinsInUse } from '../../src/cli/inUse.js';
import type { CliOptions } from '../../src/cli/program.js';
import type { Resolved } from '../../src/cli/runtime.js';
import { EngineError } from '../../src/errors.js';
import { emptyPins } from '../../src/plan/pins.js';
import { runCli } from '../support/cli.js';
import { FakeEngine } from '../support/fakeEngine.js';
import { expectValidReport } from '../support/schema.js';
import { snapshot, tempDir } from '../support/tmp.js';

let root: string;
let old: Written;
let other: Written;
/** An engine address nothing listens on: with --path that means no engine pins, quietly. */
const NO_ENGINE = { DOCKER_HOST: 'unix:///nonexistent/docker.sock' };

beforeAll(async () => {
  root = await tempDir();
  const w = await new TreeWriter(root).init();
  old = await w.image('team/web', { seed: 'old' });
  other = await w.image('team/web', { seed: 'other' });
  await w.image('team/web', { seed: 'new', tag: 'latest' });
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const revisionLink = (digest: string): string => path.join(root, 'docker/registry/v2/repositories/team/web/_manifests/revisions/sha256', digest.slice(7), 'link');

describe('--keep-digests refuses a bad list: one line naming the file and line, exit 2, nothing changed', () => {
  it.each([
    ['a line without a digest', `# pins\nteam/web@${'x'}\n`, /--keep-digests .*pins\.txt, line 2: "team\/web@x" is not REPOSITORY@sha256/],
    ['a tag reference', `team/web:v1\n`, /line 1: "team\/web:v1"/],
  ])('%s', async (_name, text, message) => {
    const file = path.join(root, 'pins.txt');
    await fs.writeFile(file, text);
    const before = await snapshot(root);
    const run = await runCli(['--path', root, '--yes', '--no-gc', '--keep-digests', file], { env: NO_ENGINE });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(await snapshot(root)).toEqual(before);
    await fs.rm(file);
  });

  it('a file that cannot be read', async () => {
    const run = await runCli(['--path', root, '--dry-run', '--keep-digests', `${root}/nope.txt`], { env: NO_ENGINE });
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`regsweep: cannot read --keep-digests ${root}/nope.txt: ENOENT\n`);
  });
});

describe('--keep-digests with --path', () => {
  it('- reads stdin (kubectl output): the report lists the kept digest with its users, in JSON and for people', async () => {
    const input = `docker-pullable://localhost:5000/team/web@${old.digest} docker-pullable://localhost:5000/elsewhere@${other.digest}\n`;
    const json = await runCli(['--path', root, '--dry-run', '--json', '--keep-digests', '-'], { input, env: NO_ENGINE });
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout);
    expectValidReport(report);
    expect(report.inUse).toEqual([{ repository: 'team/web', digest: old.digest, users: ['stdin'] }]);
    expect(report.plan.manifests).toEqual([{ repository: 'team/web', digest: other.digest, reason: 'untagged' }]);
    const human = await runCli(['--path', root, '--dry-run', '--keep-digests', '-'], { input, env: NO_ENGINE });
    expect(human.stdout).toContain(`Kept 1 manifest in use (it would otherwise go):\n  + team/web@${old.digest}: stdin\n`);
  });

  it('- without --yes or --dry-run is refused', async () => {
    const run = await runCli(['--path', root, '--keep-digests', '-'], { env: NO_ENGINE });
    expect(run.code).toBe(2);
  });

  it('a real run keeps the listed digest, removes the other, and an unreachable engine is no error (said with --verbose)', async () => {
    const copy = await tempDir();
    try {
      await fs.cp(root, copy, { recursive: true });
      const file = path.join(copy, 'pins.txt');
      await fs.writeFile(file, `# deploy pins\n\nregistry.example.com/team/web@${old.digest}\n`);
      const run = await runCli(['--path', copy, '--yes', '--no-gc', '--json', '--verbose', '--keep-digests', file], { env: NO_ENGINE });
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(/no digests in use from Docker \(unix:\/\/\/nonexistent\/docker\.sock\)/);
      const report = JSON.parse(run.stdout);
      expect(report.inUse).toEqual([{ repository: 'team/web', digest: old.digest, users: [`file ${file}`] }]);
      const link = (digest: string): string => revisionLink(digest).replace(root, copy);
      expect(await fs.readFile(link(old.digest), 'utf8')).toBe(old.digest);
      await expect(fs.stat(link(other.digest))).rejects.toThrow(/ENOENT/);
    } finally {
      await fs.rm(copy, { recursive: true, force: true });
    }
  });

  it('without --verbose an unreachable engine says nothing', async () => {
    const run = await runCli(['--path', root, '--dry-run'], { env: NO_ENGINE });
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).not.toContain('in use');
  });
});

describe('pinsInUse: what the engine runs', () => {
  const opts = (extra: Partial<CliOptions> = {}): CliOptions => ({ gc: 'registry', grace: 0, progress: false, inUse: true, pullLog: true, ...extra });
  const resolvedWith = (engine: FakeEngine): Resolved => ({ target: { kind: 'container', name: 'reg', root: '/x', containers: [] }, repositories: [], engine });
  const digest = `sha256:${'c'.repeat(64)}` as const;

  it('pins containers and services by repository and digest, whatever the host; references by tag pin nothing', async () => {
    const engine = new FakeEngine();
    engine.addImageUse('container web-1', 'localhost:5000/team/web@' + digest);
    engine.addImageUse('container web-1', 'localhost:5000/team/web:v1');
    engine.addImageUse('container reg', 'registry:2');
    engine.addImageUse('service stack_app', `registry.example.com/team/web:v1@${digest}`);
    const pinned = await pinsInUse(resolvedWith(engine), opts(), emptyPins(), () => {});
    expect(pinned.byRepository).toEqual(new Map([['team/web', new Map([[digest, ['container web-1', 'service stack_app']]])]]));
    expect(pinned.anywhere.size).toBe(0);
  });

  it('--no-in-use does not ask the engine', async () => {
    const engine = new FakeEngine();
    engine.addImageUse('container web-1', `team/web@${digest}`);
    const pinned = await pinsInUse(resolvedWith(engine), opts({ inUse: false }), emptyPins(), () => {});
    expect(pinned.byRepository.size).toBe(0);
    expect(engine.calls).toEqual([]);
  });

  it("a Docker target's engine must answer", async () => {
    const engine = new FakeEngine();
    engine.failOn('imagesInUse', undefined, { error: new EngineError('cannot list the images in use: boom') });
    await expect(pinsInUse(resolvedWith(engine), opts(), emptyPins(), () => {})).rejects.toThrow(/cannot list the images in use/);
  });
});
