/**
 * The scan of a tree the real registry wrote (test/fixtures/storage, see
 * scripts/fixtures.ts): it must find exactly what scenario.json says was
 * pushed, agree with a count taken straight from the files, and read the
 * manifest list, the OCI index and the referrer as what they are.
 * The scan only reads, so it reads the committed tree in place.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_ROOT, type FixtureScenario, loadScenario, role } from '../support/fixture.js';
import { scan } from '../support/inventory.js';
import { countTree } from '../support/tmp.js';

type Inventory = Awaited<ReturnType<typeof scan>>;
type Digest = Parameters<Inventory['manifests']['get']>[0];

const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let scenario: FixtureScenario;
let inventory: Inventory;

beforeAll(async () => {
  scenario = await loadScenario();
  inventory = await scan(FIXTURE_ROOT);
});

const sorted = <T>(items: Iterable<T>): T[] => [...items].sort();

describe('scan of the committed fixture tree', () => {
  it('finds exactly the repositories the scenario pushed, nested ones included, and no problem', () => {
    expect(inventory.repositories.map((r) => r.name)).toEqual(scenario.repositories);
    expect(scenario.repositories).toEqual(expect.arrayContaining(['team/web', 'team/web/api']));
    for (const repo of inventory.repositories) {
      expect({ name: repo.name, hasLayers: repo.hasLayers, hasManifests: repo.hasManifests, hasTagsDir: repo.hasTagsDir, problems: repo.problems }).toEqual({
        name: repo.name,
        hasLayers: true,
        hasManifests: true,
        hasTagsDir: true,
        problems: [],
      });
    }
    expect(inventory.problems).toEqual([]);
  });

  it('reads every tag and what it names now', () => {
    const found = inventory.repositories.flatMap((r) => r.tags.map((t) => ({ repository: r.name, tag: t.name, digest: t.current })));
    expect(found).toEqual(scenario.tags);
  });

  it("reads each tag's history: latest of app lists its three builds, every other tag only its current digest", () => {
    const app = inventory.repositories.find((r) => r.name === 'app');
    const latest = app?.tags.find((t) => t.name === 'latest');
    expect(latest?.current).toBe(role(scenario, 'appLatest').digest);
    expect(latest?.index).toEqual(sorted(['appHistory1', 'appHistory2', 'appLatest'].map((n) => role(scenario, n).digest)));
    for (const repo of inventory.repositories) {
      for (const tag of repo.tags) {
        if (repo.name === 'app' && tag.name === 'latest') continue;
        expect({ tag: `${repo.name}:${tag.name}`, index: tag.index }).toEqual({ tag: `${repo.name}:${tag.name}`, index: [tag.current] });
      }
    }
  });

  it('lists exactly the pushed manifests as revisions of their repositories, and reads each one', () => {
    for (const repo of inventory.repositories) {
      const pushed = Object.values(scenario.manifests).filter((m) => m.repository === repo.name).map((m) => m.digest);
      expect({ repository: repo.name, revisions: repo.revisions }).toEqual({ repository: repo.name, revisions: sorted(pushed) });
    }
    expect(sorted(inventory.manifests.keys())).toEqual(sorted(Object.values(scenario.manifests).map((m) => m.digest)));
  });

  it('finds exactly the blobs pushed (manifests, configs, layers, the orphan), each with its size on disk', async () => {
    const pushed = new Set<string>([scenario.blobs.orphan.digest]);
    for (const m of Object.values(scenario.manifests)) for (const b of m.blobs) pushed.add(b);
    expect(sorted(inventory.blobs.keys())).toEqual(sorted(pushed));
    for (const [digest, size] of inventory.blobs) {
      const hex = digest.slice('sha256:'.length);
      const st = await fs.stat(path.join(FIXTURE_ROOT, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data'));
      expect({ digest, size }).toEqual({ digest, size: st.size });
    }
    expect(inventory.blobs.get(scenario.blobs.orphan.digest as Digest)).toBe(scenario.blobs.orphan.size);
    expect(inventory.blobs.get(scenario.blobs.sharedLayer.digest as Digest)).toBe(scenario.blobs.sharedLayer.size);
  });

  it('agrees with a count taken straight from the tree', async () => {
    const counted = await countTree(FIXTURE_ROOT);
    const scanned = {
      repositories: inventory.repositories.length,
      tags: inventory.repositories.reduce((n, r) => n + r.tags.length, 0),
      manifests: inventory.repositories.reduce((n, r) => n + r.revisions.length, 0),
      blobs: inventory.blobs.size,
      bytes: [...inventory.blobs.values()].reduce((a, b) => a + b, 0),
    };
    expect(scanned).toEqual(counted);
    expect(counted).toMatchObject({
      repositories: scenario.repositories.length,
      tags: scenario.tags.length,
      manifests: Object.keys(scenario.manifests).length,
    });
  });

  it('reads the Docker manifest list as an index of its two untagged children', () => {
    const list = role(scenario, 'multiList');
    const m = inventory.manifests.get(list.digest as Digest);
    expect(m).toMatchObject({ kind: 'index', mediaType: DOCKER_LIST, children: [role(scenario, 'multiAmd64').digest, role(scenario, 'multiArm64').digest] });
    expect(m?.subject).toBeUndefined();
    expect(list.tags).toEqual(['1.0']);
    expect([role(scenario, 'multiAmd64').tags, role(scenario, 'multiArm64').tags]).toEqual([[], []]);
  });

  it('reads the OCI index as an index of its two untagged children', () => {
    const index = role(scenario, 'ociIndex');
    const m = inventory.manifests.get(index.digest as Digest);
    expect(m).toMatchObject({ kind: 'index', mediaType: OCI_INDEX, children: [role(scenario, 'ociAmd64').digest, role(scenario, 'ociArm64').digest] });
    expect(m?.subject).toBeUndefined();
    expect(index.tags).toEqual(['v1']);
  });

  it('reads the referrer as an untagged OCI image whose subject is the index', () => {
    const referrer = role(scenario, 'ociReferrer');
    expect(referrer.tags).toEqual([]);
    expect(inventory.manifests.get(referrer.digest as Digest)).toMatchObject({
      kind: 'image',
      mediaType: OCI_MANIFEST,
      subject: role(scenario, 'ociIndex').digest,
      children: [],
    });
  });

  it('reads what every manifest references, and a subject only where one was pushed', () => {
    for (const [name, pushed] of Object.entries(scenario.manifests)) {
      const m = inventory.manifests.get(pushed.digest as Digest);
      const references = pushed.kind === 'index' ? pushed.children : [pushed.config, ...(pushed.layers ?? [])];
      expect({ role: name, kind: m?.kind, mediaType: m?.mediaType, references: m?.references, subject: m?.subject }).toEqual({
        role: name,
        kind: pushed.kind,
        mediaType: pushed.mediaType,
        references,
        subject: pushed.subject,
      });
    }
  });
});
