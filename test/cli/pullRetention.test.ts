/**
 * Retention by last pull on a storage path, the pulls read from the real
 * registry's own log (`--access-log`): 2.8.2 with the text formatter, 3.0.0
 * with the JSON one. Pushes, waits past the rule's window, pulls some by tag
 * and by digest, then purges with `--unpulled-for`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RegistryClient, pushImage, registryBinary, startRegistry } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { expectValidReport } from '../support/schema.js';
import { tempDir } from '../support/tmp.js';
import { registryV3Bin } from '../support/registryV3.js';

const v2 = registryBinary();
const v3 = registryV3Bin;

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Pushed {
  root: string;
  log: string;
}

/** app:pulled, app:unpulled, app:moved (pushed twice: its first image untagged), web:old; then the pulls. */
async function pushAndPull(bin: string, formatter: 'text' | 'json', windowMs: number): Promise<Pushed> {
  const root = await tempDir();
  dirs.push(root);
  const log = path.join(root, '..', `${path.basename(root)}-registry.log`);
  dirs.push(log);
  const registry = await startRegistry(root, { bin, log: { file: log, formatter } });
  try {
    const client = new RegistryClient(registry.url);
    const digests: Record<string, string> = {};
    const push = async (repo: string, tag: string, seed: string) => (digests[seed] = (await pushImage(client, repo, { tag, seed })).descriptor.digest);
    await push('app', 'pulled', 'pulled');
    await push('app', 'unpulled', 'unpulled');
    await push('app', 'moved', 'moved-1');
    await push('app', 'moved', 'moved-2');
    await push('web', 'old', 'web-old');
    await sleep(windowMs + 1000);
    // A pull by tag, the tag `moved` pulled by its current digest (as swarm does), and its old image by digest (HEAD).
    expect((await client.getManifest('app', 'pulled')).status).toBe(200);
    expect((await client.getManifest('app', digests['moved-2'] as string)).status).toBe(200);
    const head = await fetch(`${registry.url}/v2/app/manifests/${digests['moved-1']}`, { method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
    expect(head.status).toBe(200);
    // A failed pull is no pull.
    expect((await client.getManifest('web', 'nope')).status).toBe(404);
  } finally {
    await registry.stop();
  }
  return { root, log };
}

// 2.8.2 logs each pull twice (its logger's line and the access line); 3.0.0 logs a HEAD answered 200 only in the access line.
describe.each([
  ['2.8.2', v2, 'text' as const, 6],
  ['3.0.0', v3, 'json' as const, 5],
])('registry %s, its %s log read with --access-log', (_version, bin, formatter, pullLines) => {
  it.skipIf(!bin)('--unpulled-for removes exactly the unpulled tags, keeps the pulled ones and the manifest pulled by digest, and every kept tag pulls whole', async () => {
    const windowMs = 4000;
    const { root, log } = await pushAndPull(bin as string, formatter, windowMs);
    const run = await runCli(['--path', root, '--registry-bin', bin as string, '--access-log', log, '--unpulled-for', `${windowMs / 1000}s`, '--yes', '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expectValidReport(report);
    expect(report.plan.tags.map((t: { repository: string; tag: string; lastPulled: unknown }) => [`${t.repository}:${t.tag}`, t.lastPulled]).sort()).toEqual([
      ['app:unpulled', null],
      ['web:old', null],
    ]);
    expect(report.plan.tags[0].detail).toMatch(/^not pulled for 4s \(never pulled, pushed /);
    expect(report.inUse).toHaveLength(1);
    expect(report.inUse[0]).toMatchObject({ repository: 'app', users: [expect.stringMatching(/^pulled 20/)] });
    expect(report.pulls).toMatchObject({ index: { state: 'created' }, read: { sources: 1, pulls: expect.any(Number), junk: 0 }, held: [] });
    expect(report.pulls.read.pulls).toBe(pullLines);
    expect(await fs.readFile(path.join(root, '.regsweep-pulls'), 'utf8')).toMatch(/^\{"format":"regsweep-pull-index"/);

    const registry = await startRegistry(root, { bin: bin as string });
    try {
      const client = new RegistryClient(registry.url);
      await client.pullWhole('app', 'pulled');
      await client.pullWhole('app', 'moved');
      await client.pullWhole('app', report.inUse[0].digest);
      expect((await client.getManifest('app', 'unpulled')).status).toBe(404);
      expect(await client.tags('web')).toEqual([]);
    } finally {
      await registry.stop();
    }
  });

  it.skipIf(!bin)('a rule longer than what the log covers selects nothing and says so; a second run keeps the pulls in the index', async () => {
    const { root, log } = await pushAndPull(bin as string, formatter, 0);
    const longer = await runCli(['--path', root, '--registry-bin', bin as string, '--access-log', log, '--unpulled-for', '1h', '--dry-run']);
    expect(longer.code).toBe(0);
    expect(longer.stdout).toMatch(/Pull rule held: --unpulled-for 1h selects nothing: the pull index has seen the registry's log without a gap only since .* \(coverage \d+s\)/);
    // No tag goes; the manifest pulled by digest, untagged, stays all the same: the index saw that pull.
    expect(longer.stdout).not.toMatch(/- tag /);
    // What was read, in lines: 2.8.2 writes each pull in two of them.
    expect(longer.stdout).toMatch(new RegExp(`^Pull index ${root}/\\.regsweep-pulls \\(created\\) covers the log since \\S+; read 1 log: \\d+ lines, ${pullLines} pull lines, 0 lines not the registry's skipped\\.$`, 'm'));
    expect(longer.stdout).toMatch(/Kept 1 manifest in use \(it would otherwise go\):\n  \+ app@sha256:[0-9a-f]{64}: pulled 20/);
    // Without the log now, the index still knows the pulls, but no read means no coverage to judge by.
    const noLog = await runCli(['--path', root, '--registry-bin', bin as string, '--unpulled-for', '1s', '--dry-run', '--json']);
    const report = JSON.parse(noLog.stdout);
    expect(report.plan.tags).toEqual([]);
    expect(report.pulls.held).toEqual(['--unpulled-for 1s selects nothing: this run read no registry log (a registry container or service target reads its log; --access-log reads files)']);
    expect(report.pulls.index.state).toBe('unchanged');
    const usage = await runCli(['--path', root, '--registry-bin', bin as string, '--usage', '--json']);
    expectValidReport(JSON.parse(usage.stdout));
    const app = JSON.parse(usage.stdout).usage.repositories.find((r: { repository: string }) => r.repository === 'app');
    expect(app.lastPulled).toMatch(/^20/);
    const human = await runCli(['--path', root, '--registry-bin', bin as string, '--usage', '--verbose']);
    expect(human.stdout).toMatch(/repository +tags +manifests +bytes +unique +reclaimable +last pull/);
    expect(human.stdout).toMatch(/^ +:pulled +20\d\d-\d\d-\d\d \d\d:\d\d:\d\d$/m);
    expect(human.stdout).toMatch(/^ +:unpulled +never$/m);
    expect(Object.fromEntries(app.tagsPulled.map((t: { tag: string; lastPulled: string | null }) => [t.tag, t.lastPulled !== null]))).toEqual({ pulled: true, moved: true, unpulled: false });
  });
});
