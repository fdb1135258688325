/**
 * The plan for a tree the real registry wrote (test/fixtures/storage, see
 * scripts/fixtures.ts). Expectations are stated by role from scenario.json;
 * the blobs garbage-collect should sweep are worked out from scenario.json
 * alone (expectedSweep) and compared with the prediction.
 *
 * Scenario, in short: app:latest pushed three times (builds 1 and 2 now
 * untagged) plus app:stable; fallback signature tags on build 1 and on the
 * current latest; multi:1.0 a Docker list and signed:v1 an OCI index, both
 * with children by digest, signed:v1 with an SBOM referrer; team/web and
 * team/web/api nested; one layer in app build 1 and team/web:latest; an
 * orphan upload in app.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSelector } from '../../src/plan/selectors.js';
import { type FixtureScenario, copyFixture, expectedSweep, loadScenario, refs, role } from '../support/fixture.js';
import { planPurge, predictCollect, scan } from '../support/inventory.js';
import { snapshot } from '../support/tmp.js';

type Inventory = Awaited<ReturnType<typeof scan>>;
type Plan = ReturnType<typeof planPurge>;

let scenario: FixtureScenario;
let root: string;
let before: Record<string, string>;
let inventory: Inventory;

beforeAll(async () => {
  scenario = await loadScenario();
  root = await copyFixture();
  before = await snapshot(root);
  inventory = await scan(root);
});
afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

const removedManifests = (plan: Plan): string[] => [...plan.manifests].map((m) => `${m.repository}@${m.digest}`).sort();
const reasons = (plan: Plan): Record<string, string> => Object.fromEntries([...plan.manifests].map((m) => [`${m.repository}@${m.digest}`, m.reason]));
const fallbackTagOf = (name: string): string => `sha256-${role(scenario, name).digest.slice('sha256:'.length)}.sig`;

/** Bytes of the blobs' data files, read from the tree itself. */
async function bytesOf(digests: readonly string[]): Promise<number> {
  let total = 0;
  for (const d of digests) {
    const hex = d.slice('sha256:'.length);
    total += (await fs.stat(path.join(root, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data'))).size;
  }
  return total;
}

describe('default purge of the fixture tree', () => {
  let plan: Plan;
  beforeAll(() => {
    plan = planPurge(inventory);
  });

  it('removes exactly the two untagged builds of app:latest and the signature whose subject goes', () => {
    expect(removedManifests(plan)).toEqual(refs(scenario, ['appHistory1', 'appHistory2', 'appSigOfHistory1']));
    expect(reasons(plan)).toEqual({
      [refs(scenario, ['appHistory1'])[0] as string]: 'untagged',
      [refs(scenario, ['appHistory2'])[0] as string]: 'untagged',
      // Its tag goes, and the manifest with it.
      [refs(scenario, ['appSigOfHistory1'])[0] as string]: 'tag-removed',
    });
    expect(plan.repositories).toEqual([]);
    expect(plan.spared).toEqual([]);
  });

  it('removes the fallback tag of the removed build and keeps the one of the kept latest', () => {
    expect(plan.tags.map(({ repository, tag, digest, reason }) => ({ repository, tag, digest, reason }))).toEqual([
      { repository: 'app', tag: fallbackTagOf('appHistory1'), digest: role(scenario, 'appSigOfHistory1').digest, reason: 'subject-removed' },
    ]);
    const kept = fallbackTagOf('appLatest');
    expect(scenario.tags.some((t) => t.repository === 'app' && t.tag === kept)).toBe(true);
    expect(plan.tags.some((t) => t.tag === kept)).toBe(false);
    expect(removedManifests(plan)).not.toContain(refs(scenario, ['appSigOfLatest'])[0]);
  });

  it('keeps the children of the manifest list and the OCI index, and the referrer, though none is tagged', () => {
    const untaggedKept = ['multiAmd64', 'multiArm64', 'ociAmd64', 'ociArm64', 'ociReferrer'];
    for (const name of untaggedKept) expect({ role: name, tags: role(scenario, name).tags }).toEqual({ role: name, tags: [] });
    const removed = new Set(removedManifests(plan));
    expect(refs(scenario, untaggedKept).filter((r) => removed.has(r))).toEqual([]);
    expect([...plan.manifests].filter((m) => m.repository !== 'app')).toEqual([]);
  });

  it('drops the untagged builds from the index of app:latest, and nothing else', () => {
    expect([...plan.indexEntries].map(({ repository, tag, digest, reason }) => ({ repository, tag, digest, reason })).sort((a, b) => (a.digest < b.digest ? -1 : 1))).toEqual(
      ['appHistory1', 'appHistory2']
        .map((n) => ({ repository: 'app', tag: 'latest', digest: role(scenario, n).digest, reason: 'untagged' }))
        .sort((a, b) => (a.digest < b.digest ? -1 : 1)),
    );
  });

  it('checks before applying that the tags of app are still where they were', () => {
    const appTags = Object.fromEntries(scenario.tags.filter((t) => t.repository === 'app').map((t) => [t.tag, t.digest]));
    expect(plan.checks).toEqual([{ repository: 'app', tags: appTags }]);
    // Held compactly, the check reads and writes as the plain object it stands for.
    expect(JSON.parse(JSON.stringify(plan.checks))).toEqual([{ repository: 'app', tags: appTags }]);
    expect(Object.keys(plan.checks[0] as object)).toEqual(['repository', 'tags']);
  });

  it('predicts the sweep of exactly the blobs only the removed manifests used, plus the orphan; the shared layer stays', async () => {
    const expected = expectedSweep(scenario, ['appHistory1', 'appHistory2', 'appSigOfHistory1']);
    const shared = scenario.blobs.sharedLayer;
    expect(shared.users).toEqual(['appHistory1', 'webLatest']);
    expect(expected).not.toContain(shared.digest);
    // Build 1's own blobs are among them: the expectation is not trivially small.
    expect(expected).toEqual(expect.arrayContaining([role(scenario, 'appHistory1').digest, role(scenario, 'appHistory1').config, scenario.blobs.orphan.digest]));

    const predicted = predictCollect(inventory, plan, '2.8.2');
    expect([...predicted.digests].sort()).toEqual(expected);
    expect(predicted.blobs).toBe(expected.length);
    expect(predicted.bytes).toBe(await bytesOf(expected));
    expect(predicted.blockedBy).toEqual([]);
  });
});

describe('-x team/web on the fixture tree', () => {
  it('removes team/web alone, listing team/web/api as nested and keeping it whole', () => {
    const plan = planPurge(inventory, { remove: [parseSelector('team/web')] });
    expect(plan.repositories).toEqual([{ repository: 'team/web', reason: 'named', nested: ['team/web/api'] }]);
    expect([...plan.manifests].filter((m) => m.repository.startsWith('team/'))).toEqual([
      { repository: 'team/web', digest: role(scenario, 'webLatest').digest, reason: 'repository-removed' },
    ]);
    expect(plan.tags.filter((t) => t.repository.startsWith('team/')).map(({ repository, tag, reason }) => ({ repository, tag, reason }))).toEqual([
      { repository: 'team/web', tag: 'latest', reason: 'repository-removed' },
    ]);
    expect(plan.spared).toEqual([]);
    // -x alone touches only what it names: app's untagged history stays.
    expect(removedManifests(plan)).toEqual(refs(scenario, ['webLatest']));
    expect(plan.checks.map((c) => c.repository)).toEqual(['team/web']);
  });

  it('with every repository named as well, purges the rest as by default and sweeps the shared layer once its last user goes', () => {
    const every = inventory.repositories.map((r) => parseSelector(r.name));
    const plan = planPurge(inventory, { selectors: every, remove: [parseSelector('team/web')] });
    expect(removedManifests(plan)).toEqual(refs(scenario, ['appHistory1', 'appHistory2', 'appSigOfHistory1', 'webLatest']));
    const expected = expectedSweep(scenario, ['appHistory1', 'appHistory2', 'appSigOfHistory1', 'webLatest']);
    expect(expected).toContain(scenario.blobs.sharedLayer.digest);
    const predicted = predictCollect(inventory, plan, '2.8.2');
    expect([...predicted.digests].sort()).toEqual(expected);
    // team/web/api's own blobs are untouched.
    const api = role(scenario, 'apiV1');
    expect(predicted.digests.filter((d) => api.blobs.includes(d))).toEqual([]);
  });

  it('keeps the shared layer while app, out of scope, still uses it', () => {
    // Only team/web is selected: app's untagged build 1, the layer's other user, stays.
    const plan = planPurge(inventory, { selectors: [parseSelector('team/web')], remove: [parseSelector('team/web')] });
    expect(removedManifests(plan)).toEqual(refs(scenario, ['webLatest']));
    expect(plan.repositories.map((r) => [r.repository, r.nested])).toEqual([['team/web', ['team/web/api']]]);
    const expected = expectedSweep(scenario, ['webLatest']);
    expect(expected).not.toContain(scenario.blobs.sharedLayer.digest);
    expect([...predictCollect(inventory, plan, '2.8.2').digests].sort()).toEqual(expected);
  });
});

describe('planning', () => {
  it('left the tree it read as it was', async () => {
    expect(await snapshot(root)).toEqual(before);
  });
});
