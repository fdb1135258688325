/**
 * Retention rules and removals against the real registry: push, set known
 * push times, purge and collect, serve again. Exactly the expected tags
 * remain, every survivor pulls whole, and removed tags answer 404.
 */
import fs from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Layout } from '../../src/storage/layout.js';
import { runCli } from '../support/cli.js';
import { type Descriptor, type PushedImage, RegistryClient, pushImage, pushIndex, registryBinary, startRegistry } from '../../scripts/registryClient.js';
import { snapshot, tempDir } from '../support/tmp.js';

const bin = registryBinary();
const DAY = 86_400_000;

let root: string;
let layout: Layout;
beforeEach(async () => {
  root = await tempDir();
  layout = new Layout(root);
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function withRegistry<T>(fn: (client: RegistryClient) => Promise<T>): Promise<T> {
  const registry = await startRegistry(root, { bin });
  try {
    return await fn(new RegistryClient(registry.url));
  } finally {
    await registry.stop();
  }
}

/** Sets when `tag` was pushed: the mtime of its current link and of the index entry of its current digest. */
async function pushedAt(repository: string, tag: string, daysAgo: number): Promise<void> {
  const when = new Date(Date.now() - daysAgo * DAY);
  const current = layout.pathFor({ kind: 'tagCurrentLink', name: repository, tag });
  const digest = (await fs.readFile(current, 'utf8')) as `sha256:${string}`;
  await fs.utimes(current, when, when);
  await fs.utimes(layout.pathFor({ kind: 'tagIndexEntryLink', name: repository, tag, digest }), when, when);
}

async function purge(...args: string[]) {
  const result = await runCli(['--path', root, '--yes', '--json', '--grace', '0s', '--registry-bin', bin as string, ...args]);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  const report = JSON.parse(result.stdout);
  expect(report.freed).toEqual(report.predicted);
  return report;
}

/** The repository has exactly these tags, each pulls whole, and each of `gone` answers 404. */
async function expectTags(client: RegistryClient, repository: string, kept: string[], gone: string[] = []): Promise<void> {
  expect((await client.tags(repository)).sort()).toEqual([...kept].sort());
  for (const tag of kept) await client.pullWhole(repository, tag);
  for (const tag of gone) expect((await client.getManifest(repository, tag)).status, `${repository}:${tag}`).toBe(404);
}

async function pushTags(client: RegistryClient, repository: string, tags: Array<[string, number]>): Promise<Record<string, PushedImage>> {
  const images: Record<string, PushedImage> = {};
  for (const [tag] of tags) images[tag] = await pushImage(client, repository, { tag, seed: `${repository}-${tag}` });
  for (const [tag, daysAgo] of tags) await pushedAt(repository, tag, daysAgo);
  return images;
}

describe.skipIf(!bin)('tag rules with the real registry', () => {
  it('--keep N keeps the N most recently pushed tags; latest is protected and does not count', async () => {
    await withRegistry((c) => pushTags(c, 'app', [['v1', 5], ['v2', 4], ['v3', 3], ['v4', 2], ['v5', 1], ['latest', 10]]));
    const report = await purge('--keep', '2');
    expect(report.plan.tags.map((t: { tag: string }) => t.tag).sort()).toEqual(['v1', 'v2', 'v3']);
    expect(report.plan.tags[0]).toMatchObject({ reason: 'policy', detail: expect.stringMatching(/not among the 2 most recent/) });
    expect(report.plan.manifests.every((m: { reason: string }) => m.reason === 'tag-removed')).toBe(true);
    await withRegistry((c) => expectTags(c, 'app', ['latest', 'v4', 'v5'], ['v1', 'v2', 'v3']));
  });

  it('--older-than removes tags pushed before then, --keep-tags replaces the default protection', async () => {
    await withRegistry((c) => pushTags(c, 'app', [['old1', 40], ['old2', 35], ['new', 10], ['latest', 50], ['stable', 60]]));
    await purge('--older-than', '30d', '--keep-tags', '^stable$');
    await withRegistry((c) => expectTags(c, 'app', ['new', 'stable'], ['old1', 'old2', 'latest']));
  });

  it('--tags takes a semver range (versions only) or a whole-tag regular expression', async () => {
    const tags: Array<[string, number]> = [['1.2.0', 9], ['1.3.5', 8], ['v1.4.0', 7], ['2.0', 6], ['dev-abc', 5], ['dev', 4], ['latest', 3]];
    await withRegistry((c) => pushTags(c, 'app', tags));
    await purge('--tags', '<1.4');
    await withRegistry((c) => expectTags(c, 'app', ['v1.4.0', '2.0', 'dev-abc', 'dev', 'latest'], ['1.2.0', '1.3.5']));
    await purge('--tags', 'dev-.*');
    await withRegistry((c) => expectTags(c, 'app', ['v1.4.0', '2.0', 'dev', 'latest'], ['dev-abc']));
  });

  it('combined rules remove a tag only when every rule selects it', async () => {
    await withRegistry((c) => pushTags(c, 'app', [['a', 40], ['b', 35], ['c', 20], ['d', 1]]));
    // --keep 1 selects a, b, c; --older-than 30d selects a, b: only a and b go.
    await purge('--keep', '1', '--older-than', '30d');
    await withRegistry((c) => expectTags(c, 'app', ['c', 'd'], ['a', 'b']));
  });

  it('removing a tag never removes a digest another tag still names', async () => {
    await withRegistry(async (c) => {
      const shared = await pushImage(c, 'app', { tag: 'a', seed: 'shared' });
      await c.pushManifest('app', 'b', shared.manifest, shared.descriptor.mediaType);
    });
    const report = await purge('--tags', 'a');
    expect(report.plan.manifests).toEqual([]);
    await withRegistry((c) => expectTags(c, 'app', ['b'], ['a']));
  });

  it('fallback signature tags follow their subject and are not counted as tags', async () => {
    let v1: Descriptor | undefined;
    let v2: Descriptor | undefined;
    await withRegistry(async (c) => {
      v1 = (await pushImage(c, 'app', { tag: 'v1', seed: 'v1' })).descriptor;
      v2 = (await pushImage(c, 'app', { tag: 'v2', seed: 'v2' })).descriptor;
      for (const [d, suffix] of [[v1, '.sig'], [v2, '.sig'], [v1, '.att']] as const) {
        await pushImage(c, 'app', { tag: `sha256-${d.digest.slice(7)}${suffix}`, seed: `${d.digest}${suffix}`, format: 'oci', layers: 1 });
      }
    });
    await pushedAt('app', 'v1', 2);
    await pushedAt('app', 'v2', 1);
    // Signature tags are pushed last; counted as tags they would push v1 and v2 out of --keep 2.
    const report = await purge('--keep', '1');
    const sig = (d: Descriptor | undefined, suffix: string) => `sha256-${(d as Descriptor).digest.slice(7)}${suffix}`;
    expect(report.plan.tags.map((t: { tag: string; reason: string }) => `${t.tag} ${t.reason}`).sort()).toEqual(
      [`${sig(v1, '.att')} subject-removed`, `${sig(v1, '.sig')} subject-removed`, 'v1 policy'].sort(),
    );
    await withRegistry((c) => expectTags(c, 'app', ['v2', sig(v2, '.sig')], ['v1', sig(v1, '.sig'), sig(v1, '.att')]));
  });

  it('--history 1 leaves the current and one earlier revision of each tag', async () => {
    const pushes: PushedImage[] = [];
    await withRegistry(async (c) => {
      for (const [i, daysAgo] of [3, 2, 1].entries()) {
        pushes.push(await pushImage(c, 'app', { tag: 'latest', seed: `build-${i}` }));
        const digest = pushes[i]?.descriptor.digest as `sha256:${string}`;
        const when = new Date(Date.now() - daysAgo * DAY);
        await fs.utimes(layout.pathFor({ kind: 'tagIndexEntryLink', name: 'app', tag: 'latest', digest }), when, when);
      }
    });
    const report = await purge('--history', '1');
    expect(report.plan.manifests.map((m: { digest: string }) => m.digest)).toEqual([pushes[0]?.descriptor.digest]);
    await withRegistry(async (c) => {
      await c.pullWhole('app', 'latest');
      await c.pullWhole('app', pushes[1]?.descriptor.digest as string);
      expect((await c.getManifest('app', pushes[0]?.descriptor.digest as string)).status).toBe(404);
    });
    const again = JSON.parse((await runCli(['--path', root, '--dry-run', '--json', '--history', '1'])).stdout);
    expect(again.plan.manifests).toEqual([]);
    expect(again.plan.indexEntries).toEqual([]);
  });

  it('a kept multi-arch image keeps its children when an older tag goes', async () => {
    await withRegistry(async (c) => {
      const children = [];
      for (const arch of ['amd64', 'arm64']) children.push((await pushImage(c, 'multi', { seed: `m-${arch}`, platform: { architecture: arch, os: 'linux' } })).descriptor);
      await pushIndex(c, 'multi', { tag: 'v2', children, format: 'oci' });
      await pushImage(c, 'multi', { tag: 'v1', seed: 'm-old' });
    });
    await pushedAt('multi', 'v1', 5);
    await pushedAt('multi', 'v2', 1);
    await purge('--keep', '1');
    await withRegistry((c) => expectTags(c, 'multi', ['v2'], ['v1']));
  });
});

describe.skipIf(!bin)('-x removes what it names', () => {
  it('a tag, and a namespace repository whose nested repositories keep working', async () => {
    await withRegistry(async (c) => {
      await pushImage(c, 'team/web', { tag: 'v1', seed: 'web1' });
      await pushImage(c, 'team/web', { tag: 'v2', seed: 'web2' });
      await pushImage(c, 'team/web/api', { tag: 'v1', seed: 'api1' });
      await pushImage(c, 'hist/app', { tag: 'v1', seed: 'hist' });
      await pushImage(c, 'hist/app', { tag: 'v2', seed: 'hist2' });
    });
    const report = await purge('-x', 'team/web', 'hist/app:v1');
    expect(report.plan.repositories).toEqual([{ repository: 'team/web', reason: 'named', nested: ['team/web/api'] }]);
    expect(report.after.repositories).toBe(2);
    const web = layout.pathFor({ kind: 'repository', name: 'team/web' });
    expect((await fs.readdir(web)).sort()).toEqual(['api']);
    await withRegistry(async (c) => {
      expect((await c.catalog()).sort()).toEqual(['hist/app', 'team/web/api']);
      expect((await c.getManifest('team/web', 'v2')).status).toBe(404);
      await expectTags(c, 'team/web/api', ['v1']);
      await expectTags(c, 'hist/app', ['v2'], ['v1']);
    });
  });

  it('alone, touches nothing else: the untagged history of the named repository and of others stays; --keep widens it again', async () => {
    const history = await withRegistry(async (c) => {
      const webOld = await pushImage(c, 'team/web', { tag: 'v1', seed: 'web-v1-first' });
      await pushImage(c, 'team/web', { tag: 'v1', seed: 'web-v1-now' });
      const gone = await pushImage(c, 'team/web', { tag: 'old', seed: 'web-old' });
      const otherOld = await pushImage(c, 'other/app', { tag: 'latest', seed: 'other-first' });
      await pushImage(c, 'other/app', { tag: 'latest', seed: 'other-now' });
      return { webOld: webOld.descriptor.digest, otherOld: otherOld.descriptor.digest, gone: gone.descriptor.digest };
    });
    const report = await purge('-x', 'team/web:old');
    expect(report.plan.tags.map((t: { repository: string; tag: string }) => `${t.repository}:${t.tag}`)).toEqual(['team/web:old']);
    expect(report.plan.manifests.map((m: { digest: string }) => m.digest)).toEqual([history.gone]);
    await withRegistry(async (c) => {
      await expectTags(c, 'team/web', ['v1'], ['old']);
      // Untagged history, in the named repository and elsewhere: still there, whole.
      await c.pullWhole('team/web', history.webOld);
      await c.pullWhole('other/app', history.otherOld);
      expect((await c.getManifest('team/web', history.gone)).status).toBe(404);
    });
    // Retention options widen the purge as before: every repository's untagged history goes.
    const widened = await purge('--keep', '5');
    expect(widened.plan.manifests.map((m: { digest: string }) => m.digest).sort()).toEqual([history.webOld, history.otherOld].sort());
  });

  it('a whole repository with nothing below it leaves no empty directories', async () => {
    await withRegistry(async (c) => {
      await pushImage(c, 'solo/app', { tag: 'v1', seed: 'solo' });
      await pushImage(c, 'other', { tag: 'v1', seed: 'other' });
    });
    await purge('-x', 'solo/app');
    expect(await fs.readdir(layout.pathFor({ kind: 'repositories' }))).toEqual(['other']);
    await withRegistry((c) => expectTags(c, 'other', ['v1']));
  });
});

describe.skipIf(!bin)('--policy', () => {
  it('applies the first rule whose glob matches; other repositories get the command-line rules', async () => {
    await withRegistry(async (c) => {
      await pushTags(c, 'team/web', [['a', 4], ['b', 3], ['c', 2], ['d', 1]]);
      await pushTags(c, 'team/api', [['a', 4], ['b', 3], ['c', 2], ['d', 1]]);
      await pushTags(c, 'other', [['a', 4], ['b', 3], ['c', 2], ['d', 1]]);
    });
    await fs.writeFile(`${root}.policy.yml`, 'rules:\n  - repositories: team/web\n    keep: 3\n  - repositories: "team/*"\n    keep: 1\n');
    await purge('--policy', `${root}.policy.yml`, '--keep', '2');
    await fs.rm(`${root}.policy.yml`);
    await withRegistry(async (c) => {
      await expectTags(c, 'team/web', ['b', 'c', 'd'], ['a']);
      await expectTags(c, 'team/api', ['d'], ['a', 'b', 'c']);
      await expectTags(c, 'other', ['c', 'd'], ['a', 'b']);
    });
  });

  it('reads the simple "<repository> <N>" format', async () => {
    await withRegistry((c) => pushTags(c, 'app', [['a', 3], ['b', 2], ['c', 1]]));
    await fs.writeFile(`${root}.policy`, '# keep the two newest\napp 2\n');
    await purge('--policy', `${root}.policy`);
    await fs.rm(`${root}.policy`);
    await withRegistry((c) => expectTags(c, 'app', ['b', 'c'], ['a']));
  });

  it('a bad policy is refused with its line and reason before anything runs', async () => {
    await withRegistry((c) => pushTags(c, 'app', [['a', 3], ['b', 2]]));
    const before = await snapshot(root);
    await fs.writeFile(`${root}.bad.yml`, 'rules:\n  - repositories: app\n    keep: 1\n  - repositories: "team/*"\n    olderThan: 3 weeks\n');
    const result = await runCli(['--path', root, '--yes', '--registry-bin', bin as string, '--policy', `${root}.bad.yml`]);
    await fs.rm(`${root}.bad.yml`);
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe(`regsweep: ${root}.bad.yml:4: invalid duration "3 weeks": use a number and s, m, h, d or w (12h, 30d, 8w)`);
    expect(await snapshot(root)).toEqual(before);
  });
});
