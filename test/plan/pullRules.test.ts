import { describe, expect, it } from 'vitest';
import type { Digest, TagState } from '../../src/model.js';
import { type PlanOptions, emptyPlan, planContext, planRepository } from '../../src/plan/planner.js';
import { makeRules, parsePolicy, tagsSelectedByRules } from '../../src/plan/policy.js';
import { PullIndex } from '../../src/plan/pullIndex.js';
import { scan } from '../support/inventory.js';
import { sampleTreeEachTest } from '../support/tree.js';
import type { TreeWriter } from '../../scripts/sampleTree.js';

const DAY = 86_400_000;
const now = Date.parse('2026-12-01T00:00:00Z');
const tag = (name: string, daysAgo: number, current?: Digest): TagState => ({ name, index: [], pushedMs: now - daysAgo * DAY, ...(current ? { current } : {}) });
const digest = (c: string): Digest => `sha256:${c.repeat(64)}` as Digest;

function indexWith(pulls: { repository: string; tag?: string; digest?: Digest; daysAgo: number }[]): PullIndex {
  const index = PullIndex.empty();
  for (const p of pulls) index.record({ repository: p.repository, ...(p.tag ? { tag: p.tag } : {}), ...(p.digest ? { digest: p.digest } : {}), at: now - p.daysAgo * DAY });
  return index;
}

const lastUseFrom = (index: PullIndex, repository: string) => (t: TagState) => index.lastUse(repository, t, now);

describe('pull rules on tags', () => {
  const tags = [tag('old-pulled', 100), tag('old-unpulled', 100), tag('by-digest', 100, digest('a')), tag('new', 5), tag('latest', 200)];
  const index = indexWith([
    { repository: 'app', tag: 'old-pulled', daysAgo: 3 },
    { repository: 'app', digest: digest('a'), daysAgo: 10 },
    { repository: 'other', tag: 'old-unpulled', daysAgo: 1 },
  ]);

  it('--unpulled-for selects the tags neither pulled (by name or current digest) nor pushed within it, and names the rule', () => {
    const selected = tagsSelectedByRules(tags, makeRules({ unpulledFor: '30d' }), now, lastUseFrom(index, 'app'));
    expect([...selected.keys()]).toEqual(['old-unpulled']);
    expect(selected.get('old-unpulled')).toBe(`not pulled for 30d (never pulled, pushed ${new Date(now - 100 * DAY).toISOString()})`);
  });

  it('a digest pull counts for the tag that points at that digest now', () => {
    const selected = tagsSelectedByRules(tags, makeRules({ unpulledFor: '7d' }), now, lastUseFrom(index, 'app'));
    expect([...selected.keys()].sort()).toEqual(['by-digest', 'old-unpulled']);
    expect(selected.get('by-digest')).toMatch(/^not pulled for 7d \(last pulled 2026-11-21/);
  });

  it('--keep-pulled-within keeps tags pulled or pushed within it from every other rule', () => {
    const selected = tagsSelectedByRules(tags, makeRules({ olderThan: '1d', keepPulledWithin: '14d' }), now, lastUseFrom(index, 'app'));
    expect([...selected.keys()]).toEqual(['old-unpulled']);
  });

  it('without the index to judge by, pull rules select nothing (the planner says why)', () => {
    expect(tagsSelectedByRules(tags, makeRules({ unpulledFor: '30d' }), now).size).toBe(0);
    expect(tagsSelectedByRules(tags, makeRules({ olderThan: '1d', keepPulledWithin: '14d' }), now).size).toBe(0);
    // Rules without a pull window do not need it.
    expect(tagsSelectedByRules(tags, makeRules({ olderThan: '50d' }), now).size).toBe(3);
  });

  it('the policy file takes unpulledFor and keepPulledWithin', () => {
    const policy = parsePolicy('- repositories: "team/**"\n  unpulledFor: 30d\n  keepPulledWithin: 7d\n', 'p.yml', makeRules({}));
    expect(policy.rules[0]?.rules).toMatchObject({ unpulledForMs: 30 * DAY, keepPulledWithinMs: 7 * DAY });
    expect(() => parsePolicy('- repositories: x\n  unpulledFor: soon\n', 'p.yml', makeRules({}))).toThrow(/p.yml:1: invalid duration "soon"/);
  });
});

describe('pull rules in the planner', () => {
  let root: string;
  let w: TreeWriter;
  sampleTreeEachTest((tree) => ({ root, w } = tree));

  async function plan(options: PlanOptions) {
    const inventory = await scan(root, { times: true });
    const p = emptyPlan();
    const context = planContext(inventory.repositories.map((r) => r.name), options);
    for (const repo of inventory.repositories) planRepository(repo, inventory.manifests, context, p);
    return { plan: p, context };
  }

  it('removes exactly the unpulled tags, keeps a digest pulled within the window that no tag names, and reports why', async () => {
    const pulled = await w.image('app', { seed: 'pulled', tag: 'v1' });
    const unpulled = await w.image('app', { seed: 'unpulled', tag: 'v2' });
    const byDigest = await w.image('app', { seed: 'by-digest' }); // untagged: would go as untagged
    const stale = await w.image('app', { seed: 'stale' }); // untagged, pulled long ago
    const later = Date.now() + 10 * DAY; // every push is 10 days old then
    const index = PullIndex.empty();
    index.record({ repository: 'app', tag: 'v1', at: later - DAY });
    index.record({ repository: 'app', digest: byDigest.digest, at: later - 2 * DAY });
    index.record({ repository: 'app', digest: stale.digest, at: later - 9 * DAY });
    const coverage = { from: later - 20 * DAY, to: later };
    const policy = { rules: [], fallback: makeRules({ unpulledFor: '5d' }) };
    const { plan: p, context } = await plan({ policy, now: later, pulls: { index, coverage } });
    expect(p.tags.map((t) => [t.tag, t.lastPulled])).toEqual([['v2', null]]);
    expect([...p.manifests].map((m) => m.digest).sort()).toEqual([unpulled.digest, stale.digest].sort());
    expect(context.inUse).toEqual([{ repository: 'app', digest: byDigest.digest, users: [`pulled ${new Date(later - 2 * DAY).toISOString()}`] }]);
    expect(context.pullsHeld).toEqual([]);
    expect(pulled.digest).not.toBe(unpulled.digest);
  });

  it('selects nothing where the coverage is shorter than the window, and says so once', async () => {
    await w.image('app', { seed: 'a', tag: 'v1' });
    await w.image('web', { seed: 'b', tag: 'v1' });
    const later = Date.now() + 10 * DAY;
    const policy = { rules: [], fallback: makeRules({ unpulledFor: '5d' }) };
    const { plan: p, context } = await plan({ policy, now: later, pulls: { index: PullIndex.empty(), coverage: { from: later - 3 * DAY, to: later } } });
    expect(p.tags).toEqual([]);
    expect(context.pullsHeld).toEqual([`--unpulled-for 5d selects nothing: the pull index has seen the registry's log without a gap only since ${new Date(later - 3 * DAY).toISOString()} (coverage 3 days)`]);
    const none = await plan({ policy, now: later, pulls: { index: PullIndex.empty(), why: 'this run read no registry log' } });
    expect(none.plan.tags).toEqual([]);
    expect(none.context.pullsHeld).toEqual(['--unpulled-for 5d selects nothing: this run read no registry log']);
  });

  it('selects nothing where the log read ends over a day ago (a stale file), and says so; within a day it judges', async () => {
    await w.image('app', { seed: 'a', tag: 'v1' });
    const later = Date.now() + 10 * DAY;
    const policy = { rules: [], fallback: makeRules({ unpulledFor: '5d' }) };
    const stale = await plan({ policy, now: later, pulls: { index: PullIndex.empty(), coverage: { from: later - 30 * DAY, to: later - DAY - 60_000 } } });
    expect(stale.plan.tags).toEqual([]);
    expect(stale.context.pullsHeld).toEqual([
      `--unpulled-for 5d selects nothing: the log the pull index has seen ends at ${new Date(later - DAY - 60_000).toISOString()} (24h ago), and pulls since then are unknown: pass the registry's current log`,
    ]);
    // The same for the keep rule: a tag pulled in the unseen day would be kept by it.
    const keep = await plan({ policy: { rules: [], fallback: makeRules({ keepPulledWithin: '2d', keep: 0 }) }, now: later, pulls: { index: PullIndex.empty(), coverage: { from: later - 30 * DAY, to: later - 2 * DAY } } });
    expect(keep.context.pullsHeld).toEqual([expect.stringMatching(/^--keep-pulled-within 2d selects nothing: the log the pull index has seen ends at .* \(2 days ago\)/)]);
    const recent = await plan({ policy, now: later, pulls: { index: PullIndex.empty(), coverage: { from: later - 30 * DAY, to: later - DAY + 60_000 } } });
    expect(recent.plan.tags.map((t) => t.tag)).toEqual(['v1']);
    expect(recent.context.pullsHeld).toEqual([]);
  });

  it('counts a tag pushed after the coverage began and never pulled from its push', async () => {
    await w.image('app', { seed: 'a', tag: 'fresh' });
    const later = Date.now() + 2 * DAY; // pushed 2 days before `later`
    const policy = { rules: [], fallback: makeRules({ unpulledFor: '3d' }) };
    const { plan: p } = await plan({ policy, now: later, pulls: { index: PullIndex.empty(), coverage: { from: later - 30 * DAY, to: later } } });
    expect(p.tags).toEqual([]);
    const after = await plan({ policy, now: later + 2 * DAY, pulls: { index: PullIndex.empty(), coverage: { from: later - 30 * DAY, to: later + 2 * DAY } } });
    expect(after.plan.tags.map((t) => t.tag)).toEqual(['fresh']);
  });
});
