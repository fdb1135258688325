import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/model.js';
import { Layout, type PathSpec, ScanPaths, isRepositoryName, isTagName, parseDigest } from '../../src/storage/layout.js';

const D = `sha256:${'ab'.repeat(32)}` as Digest;
const HEX = 'ab'.repeat(32);
const R = 'docker/registry/v2/repositories';

describe('pathFor pins every location', () => {
  const layout = new Layout('/srv/reg');
  const table: Array<[PathSpec, string]> = [
    [{ kind: 'v2' }, 'docker/registry/v2'],
    [{ kind: 'blobs' }, 'docker/registry/v2/blobs'],
    [{ kind: 'blobAlgorithm' }, 'docker/registry/v2/blobs/sha256'],
    [{ kind: 'blobDir', digest: D }, `docker/registry/v2/blobs/sha256/ab/${HEX}`],
    [{ kind: 'blobData', digest: D }, `docker/registry/v2/blobs/sha256/ab/${HEX}/data`],
    [{ kind: 'repositories' }, R],
    [{ kind: 'repository', name: 'team/web' }, `${R}/team/web`],
    [{ kind: 'layers', name: 'a' }, `${R}/a/_layers`],
    [{ kind: 'layerLink', name: 'a', digest: D }, `${R}/a/_layers/sha256/${HEX}/link`],
    [{ kind: 'layerAlgorithm', name: 'a' }, `${R}/a/_layers/sha256`],
    [{ kind: 'layerDir', name: 'a', digest: D }, `${R}/a/_layers/sha256/${HEX}`],
    [{ kind: 'uploads', name: 'a/b' }, `${R}/a/b/_uploads`],
    [{ kind: 'manifests', name: 'a' }, `${R}/a/_manifests`],
    [{ kind: 'revisions', name: 'a' }, `${R}/a/_manifests/revisions/sha256`],
    [{ kind: 'revisionDir', name: 'a', digest: D }, `${R}/a/_manifests/revisions/sha256/${HEX}`],
    [{ kind: 'revisionLink', name: 'a', digest: D }, `${R}/a/_manifests/revisions/sha256/${HEX}/link`],
    [{ kind: 'tags', name: 'a' }, `${R}/a/_manifests/tags`],
    [{ kind: 'tag', name: 'a', tag: 'v1.0' }, `${R}/a/_manifests/tags/v1.0`],
    [{ kind: 'tagCurrentLink', name: 'a', tag: 'latest' }, `${R}/a/_manifests/tags/latest/current/link`],
    [{ kind: 'tagIndex', name: 'a', tag: 'latest' }, `${R}/a/_manifests/tags/latest/index/sha256`],
    [{ kind: 'tagIndexEntryDir', name: 'a', tag: 'latest', digest: D }, `${R}/a/_manifests/tags/latest/index/sha256/${HEX}`],
    [{ kind: 'tagIndexEntryLink', name: 'a', tag: 'latest', digest: D }, `${R}/a/_manifests/tags/latest/index/sha256/${HEX}/link`],
  ];
  it.each(table)('%o', (spec, expected) => {
    expect(layout.relativePathFor(spec)).toBe(expected);
    expect(layout.pathFor(spec)).toBe(`/srv/reg/${expected}`);
  });
  it('covers every kind of spec', () => {
    const kinds = new Set(table.map(([s]) => s.kind));
    expect(kinds.size).toBe(22);
  });
});

describe('validation before paths are made', () => {
  const layout = new Layout('/srv/reg');
  it.each(['Bad/Name', '../x', 'a//b', '/a', 'a/', '_layers', 'a/_manifests', 'a-', 'a..b', 'x'.repeat(256), ''])('refuses repository name %j', (name) => {
    expect(isRepositoryName(name)).toBe(false);
    expect(() => layout.pathFor({ kind: 'repository', name })).toThrow(/invalid repository name/);
  });
  it.each(['a', 'a/b/c', 'team/web-app', 'a__b', 'a.b_c', 'a---b', 'library/ubuntu'])('accepts repository name %j', (name) => {
    expect(isRepositoryName(name)).toBe(true);
  });
  it.each(['-x', '.x', '', 'a/b', 'a:b', '..', 'x'.repeat(129)])('refuses tag %j', (tag) => {
    expect(isTagName(tag)).toBe(false);
    expect(() => layout.pathFor({ kind: 'tag', name: 'a', tag })).toThrow(/invalid tag/);
  });
  it.each(['latest', 'v1.2.3', '_x', 'A-b.c_d', 'sha256-abc.sig', 'x'.repeat(128)])('accepts tag %j', (tag) => {
    expect(isTagName(tag)).toBe(true);
  });
  it.each([`sha256:${HEX}\n`, `sha256:${HEX.toUpperCase()}`, `sha512:${HEX}`, 'sha256:abc', '', `sha256:${HEX}0`])('refuses digest %j', (text) => {
    expect(parseDigest(text)).toBeUndefined();
    expect(() => layout.pathFor({ kind: 'blobData', digest: text as Digest })).toThrow(/invalid digest/);
  });
  it('keeps journal paths inside the tree', () => {
    expect(layout.resolveRelative(`${R}/a/_manifests/revisions/sha256/${HEX}/link`)).toBe(`/srv/reg/${R}/a/_manifests/revisions/sha256/${HEX}/link`);
    expect(() => layout.resolveRelative('../etc/passwd')).toThrow(/outside/);
    expect(() => layout.resolveRelative('docker/registry/v2/../../../x')).toThrow(/outside/);
  });
});

describe('ScanPaths, the scanner\'s fast paths', () => {
  const layout = new Layout('/srv/reg');
  it('builds exactly the paths pathFor builds', () => {
    const paths = new ScanPaths(layout, 'team/app');
    const name = 'team/app';
    expect(paths.revisions).toBe(layout.pathFor({ kind: 'revisions', name }));
    expect(paths.tags).toBe(layout.pathFor({ kind: 'tags', name }));
    expect(paths.revisionLink(D)).toBe(layout.pathFor({ kind: 'revisionLink', name, digest: D }));
    const tagDir = paths.tag('v1.0');
    expect(tagDir).toBe(layout.pathFor({ kind: 'tag', name, tag: 'v1.0' }));
    expect(ScanPaths.tagCurrentLink(tagDir)).toBe(layout.pathFor({ kind: 'tagCurrentLink', name, tag: 'v1.0' }));
    const indexDir = ScanPaths.tagIndex(tagDir);
    expect(indexDir).toBe(layout.pathFor({ kind: 'tagIndex', name, tag: 'v1.0' }));
    expect(ScanPaths.tagIndexEntryLink(indexDir, D)).toBe(layout.pathFor({ kind: 'tagIndexEntryLink', name, tag: 'v1.0', digest: D }));
    expect(paths.blobData(D)).toBe(layout.pathFor({ kind: 'blobData', digest: D }));
    expect(ScanPaths.child(paths.revisions, HEX)).toBe(layout.pathFor({ kind: 'revisionDir', name, digest: D }));
    const prefixDir = ScanPaths.child(layout.pathFor({ kind: 'blobAlgorithm' }), HEX.slice(0, 2));
    expect(ScanPaths.blobDataIn(prefixDir, HEX)).toBe(layout.pathFor({ kind: 'blobData', digest: D }));
  });
  it('refuses what pathFor refuses', () => {
    expect(() => new ScanPaths(layout, '../x')).toThrow(/invalid repository name/);
    const paths = new ScanPaths(layout, 'a');
    expect(() => paths.tag('../x')).toThrow(/invalid tag/);
    expect(() => paths.revisionLink(`sha256:../${HEX.slice(3)}` as Digest)).toThrow(/invalid digest/);
    expect(() => paths.blobData('sha256:ab' as Digest)).toThrow(/invalid digest/);
    expect(() => ScanPaths.tagIndexEntryLink('/x', `sha256:${HEX}/..` as Digest)).toThrow(/invalid digest/);
  });
});
