import semver from 'semver';
import { describe, expect, it } from 'vitest';
import type { TagState } from '../../src/model.js';
import { fallbackSubject } from '../../src/plan/closure.js';
import { makeRules, parseDuration, parsePolicy, parseTagPattern, rulesFor, repositoryGlob, tagVersion, tagsSelectedByRules } from '../../src/plan/policy.js';

const now = Date.parse('2026-11-22T00:00:00Z');
const tag = (name: string, daysAgo: number): TagState => ({ name, index: [], pushedMs: now - daysAgo * 86_400_000 });

describe('tag patterns', () => {
  it.each([
    // A variant like 1.3-alpine reads as the pre-release 1.3.0-alpine, below 1.4.
    ['<1.4', ['1.2.0', 'v1.3.9', '1.3', '1', '1.3-alpine'], ['1.4.0', '1.4.0-rc.1', 'v1.4', '2', 'latest', 'dev', '1.3.x']],
    ['>=2.0.0 <3', ['2.0.0', 'v2.9.1', '2.1'], ['1.9.9', '3.0.0', 'latest']],
    ['~1.2', ['1.2.0', '1.2.9', 'v1.2'], ['1.3.0', '1.1.9']],
    ['^latest$', ['latest'], ['latest2', 'xlatest']],
    ['dev-.*', ['dev-1', 'dev-'], ['dev', 'xdev-1']],
    ['v1', ['v1', '1.0.0', '1.5.0'], ['v2', 'v10']],
  ])('%s', (source, yes, no) => {
    const p = parseTagPattern(source);
    for (const t of yes) expect(p.test(t), t).toBe(true);
    for (const t of no) expect(p.test(t), t).toBe(false);
  });
  it('reads versions out of tags, and only versions', () => {
    expect(tagVersion('v1.2')).toBe('1.2.0');
    expect(tagVersion('1.2.3-rc.1')).toBe('1.2.3-rc.1');
    expect(tagVersion('latest')).toBeUndefined();
    expect(tagVersion('1.2.3.4')).toBeUndefined();
  });
  it('refuses what is neither a range nor a regular expression', () => {
    expect(() => parseTagPattern('(')).toThrow(/neither a semver range nor a regular expression/);
  });
  it('takes as a regular expression, without asking semver, only what semver would refuse as a range', () => {
    // parseTagPattern skips semver for a pattern with a character no range has; this holds that to semver itself.
    const outside = ['$', '(', ')', '[', ']', '\\', '/', '?', '!', '#', '%', '&', '_', ',', ';', ':', '"', "'", '{', '}', 'é'];
    const inside = ['1', '2.x', '*', '>=', '<', '^', '~', '-', '+', '||', ' ', 'v', 'X', 'latest'];
    for (const o of outside) {
      for (const i of inside) {
        for (const candidate of [`${i}${o}`, `${o}${i}`, `${i}${o}${i}`]) expect(semver.validRange(candidate), candidate).toBeNull();
      }
    }
    expect(parseTagPattern('1.x|2.x').source).toBe('1.x|2.x');
    expect(parseTagPattern('>=1 <2 || 3').test('3.1.0')).toBe(true);
  });
});

describe('durations and globs', () => {
  it('parses s, m, h, d, w', () => {
    expect(parseDuration('12h')).toBe(12 * 3_600_000);
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
    expect(parseDuration('8w')).toBe(8 * 604_800_000);
    expect(() => parseDuration('3 weeks')).toThrow(/invalid duration/);
    expect(() => parseDuration('-1d')).toThrow(/invalid duration/);
  });
  it.each([
    ['team/*', ['team/web'], ['team', 'team/web/api', 'teams/web']],
    ['team/**', ['team/web', 'team/web/api'], ['team', 'teamx/a']],
    ['**/api', ['api', 'team/api', 'a/b/api'], ['team/apix']],
    ['app?', ['app1'], ['app', 'app12']],
    ['a.b', ['a.b'], ['axb']],
  ])('%s', (glob, yes, no) => {
    const matches = repositoryGlob(glob);
    for (const r of yes) expect(matches(r), r).toBe(true);
    for (const r of no) expect(matches(r), r).toBe(false);
  });
});

describe('tagsSelectedByRules', () => {
  const tags = [tag('v1', 50), tag('v2', 40), tag('v3', 20), tag('v4', 1), tag('latest', 100)];
  const names = (rules: Parameters<typeof makeRules>[0]) => [...tagsSelectedByRules(tags, makeRules(rules), now).keys()].sort();
  it('selects nothing without keep, olderThan or tags', () => {
    expect(names({ history: 2 })).toEqual([]);
  });
  it('keep counts only unprotected tags, newest first', () => {
    expect(names({ keep: 2 })).toEqual(['v1', 'v2']);
    expect(names({ keep: 0 })).toEqual(['v1', 'v2', 'v3', 'v4']);
  });
  it('every given rule must select a tag', () => {
    expect(names({ olderThan: '30d' })).toEqual(['v1', 'v2']);
    expect(names({ keep: 3, olderThan: '30d' })).toEqual(['v1']);
    expect(names({ olderThan: '30d', tags: 'v1' })).toEqual(['v1']);
  });
  it('keepTags replaces the default protection', () => {
    expect(names({ olderThan: '30d', keepTags: 'v2' })).toEqual(['latest', 'v1']);
  });
});

describe('fallback tags', () => {
  const hex = 'ab'.repeat(32);
  it.each([
    [`sha256-${hex}`, `sha256:${hex}`],
    [`sha256-${hex}.sig`, `sha256:${hex}`],
    [`sha256-${hex}.att`, `sha256:${hex}`],
    ['sha256-abc.sig', undefined],
    ['latest', undefined],
  ])('%s', (name, subject) => {
    expect(fallbackSubject(name)).toBe(subject);
  });
});

describe('policy files', () => {
  const fallback = makeRules({ keep: 7 });
  it('parses rules per glob, first match wins, fallback elsewhere', () => {
    const policy = parsePolicy('rules:\n  - repositories: team/web\n    keep: 3\n    history: 1\n  - repositories: "team/*"\n    olderThan: 30d\n    tags: "<2"\n    keepTags: "^(latest|stable)$"\n', 'p.yml', fallback);
    expect(rulesFor(policy, 'team/web')).toMatchObject({ keep: 3, history: 1 });
    expect(rulesFor(policy, 'team/api')).toMatchObject({ olderThan: '30d' });
    expect(rulesFor(policy, 'team/api').keepTags.test('stable')).toBe(true);
    expect(rulesFor(policy, 'other')).toBe(fallback);
    expect(policy.rules.map((r) => r.line)).toEqual([2, 5]);
  });
  it('accepts a bare list of rules', () => {
    expect(parsePolicy('- repositories: "**"\n  keep: 1\n', 'p.yml', fallback).rules[0]?.rules.keep).toBe(1);
  });
  it('parses "<repository> <N>" lines with comments', () => {
    const policy = parsePolicy('# retention\nteam/web 5\nhist/* 2  # old stuff\n\n', 'keep.txt', fallback);
    expect(rulesFor(policy, 'team/web').keep).toBe(5);
    expect(rulesFor(policy, 'hist/app').keep).toBe(2);
    expect(rulesFor(policy, 'x')).toBe(fallback);
  });
  it.each([
    ['rules:\n  - repositories: a\n    keep: -1\n', /^p.yml:2: keep must be a whole number, not -1$/],
    ['rules:\n  - repositories: a\n  - repositories: b\n    kep: 1\n', /^p.yml:3: unknown field "kep"/],
    ['rules:\n  - keep: 1\n', /^p.yml:2: rule 1 needs 'repositories'/],
    ['rules:\n  - repositories: a\n    tags: "("\n', /^p.yml:2: tags "\(" is neither/],
    ['rules: [\n', /^p.yml:2: not valid YAML/],
    ['just some text\n', /^p.yml:1: a policy is a list of rules/],
    ['app five\n', /^p.yml:1: "five" is not a whole number/],
    ['Bad/Name 3\n', /^p.yml:1: invalid repository "Bad\/Name"/],
  ])('refuses %j with its line', (text, message) => {
    expect(() => parsePolicy(text, 'p.yml', fallback)).toThrow(message);
  });
});
