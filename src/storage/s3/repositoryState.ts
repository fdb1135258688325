/**
 * One repository's state from its keys, made as scan.ts makes it from its
 * directories: the same revisions, tags, index entries and times, and the
 * same problem for each thing it does not understand (a corrupt or mismatched
 * link, an unexpected entry, a missing current link, manifests without
 * `_layers`). Entries are taken in key order, so problems come in name order
 * where a filesystem lists them in its own directory order.
 */
import type { Digest, RepositoryState, TagState } from '../../model.js';
import { digestFromHex, isTagName } from '../layout.js';
import { describeCorrupt } from '../layout.js';
import type { BucketKeys } from './keys.js';
import type { ListedObject } from './listing.js';
import type { EntryKeys, RepositoryKeys, TagKeys } from './repositoryKeys.js';

/** The content of a link object, as read.ts's readLink says it: a digest, or the corrupt text. */
export type LinkContent = { digest: Digest } | { corrupt: string };

/** Reads a link object; `expected` are the digests it most likely holds (its ETag is checked against them first). */
export type LinkReader = (object: ListedObject, expected: readonly Digest[]) => Promise<LinkContent>;

/** Where a tag's problems go: the tags are read side by side, and their problems joined in tag order after. */
type ProblemSink = Pick<RepositoryState, 'name' | 'problems'>;

const byName = <T>(map: Map<string, T>): Array<[string, T]> => [...map.entries()].sort(([a], [b]) => (a < b ? -1 : 1));

async function scanRevisions(keys: BucketKeys, found: RepositoryKeys, repo: RepositoryState, readLink: LinkReader): Promise<void> {
  const dir = keys.keyFor({ kind: 'revisions', name: repo.name });
  const reads = byName(found.revisions).map(async ([name, entry]) => ({ name, digest: digestFromHex(name), entry, link: await linkOf(entry, digestFromHex(name), readLink) }));
  for (const { name, digest, entry, link } of await Promise.all(reads)) {
    const at = keys.display(`${dir}/${name}`);
    if (!digest || !entry.dir) {
      repo.problems.push({ repository: repo.name, path: at, message: 'unexpected entry among revisions', blocksGc: true });
      continue;
    }
    // garbage-collect only enumerates objects named exactly `link`; a directory without one is ignored by it too.
    if (link === undefined) continue;
    if ('corrupt' in link) {
      repo.problems.push({ repository: repo.name, path: at, message: `revision link ${describeCorrupt(link.corrupt)}`, blocksGc: true });
      continue;
    }
    if (link.digest !== digest) {
      repo.problems.push({ repository: repo.name, path: at, message: `revision link names ${link.digest}, not the digest of its directory`, blocksGc: true });
      continue;
    }
    repo.revisions.push(digest);
  }
  repo.revisions.sort();
}

/** The link of an entry that is a digest's directory; undefined when it has none (or is no digest's). */
function linkOf(entry: EntryKeys, digest: Digest | undefined, readLink: LinkReader): Promise<LinkContent> | undefined {
  return digest && entry.dir && entry.link ? readLink(entry.link, [digest]) : undefined;
}

async function scanTagIndex(keys: BucketKeys, tagKeys: TagKeys, tag: TagState, repo: ProblemSink, times: boolean, readLink: LinkReader): Promise<void> {
  const indexDir = keys.keyFor({ kind: 'tagIndex', name: repo.name, tag: tag.name });
  const reads = byName(tagKeys.index).map(async ([name, entry]) => ({ name, digest: digestFromHex(name), entry, link: await linkOf(entry, digestFromHex(name), readLink) }));
  for (const { name, digest, entry, link } of await Promise.all(reads)) {
    if (!digest || !entry.dir) {
      repo.problems.push({ repository: repo.name, path: keys.display(`${indexDir}/${name}`), message: `unexpected entry in the index of tag ${tag.name}` });
      continue;
    }
    if (link === undefined) continue;
    if ('corrupt' in link || link.digest !== digest) {
      const what = 'corrupt' in link ? describeCorrupt(link.corrupt) : `names ${link.digest}, not the digest of its directory`;
      repo.problems.push({ repository: repo.name, path: keys.display(`${indexDir}/${name}`), message: `index link of tag ${tag.name} ${what}` });
      continue;
    }
    tag.index.push(digest);
    if (times) (tag.indexTimes ??= {})[digest] = (entry.link as ListedObject).modified;
  }
}

async function scanTag(keys: BucketKeys, name: string, tagKeys: TagKeys, repo: ProblemSink, times: boolean, readLink: LinkReader): Promise<TagState> {
  const tag: TagState = { name, index: [] };
  const where = keys.display(keys.keyFor({ kind: 'tag', name: repo.name, tag: name }));
  // A current link most likely names one of the tag's index entries: their digests are what its ETag is checked against.
  const candidates = [...tagKeys.index.keys()].map(digestFromHex).filter((d): d is Digest => d !== undefined);
  const current = tagKeys.current ? await readLink(tagKeys.current, candidates) : undefined;
  if (current === undefined) {
    repo.problems.push({ repository: repo.name, path: where, message: `tag ${tag.name} has no current link` });
  } else if ('corrupt' in current) {
    repo.problems.push({ repository: repo.name, path: where, message: `current link of tag ${tag.name} ${describeCorrupt(current.corrupt)}` });
  } else {
    tag.current = current.digest;
    if (times) tag.pushedMs = (tagKeys.current as ListedObject).modified;
  }
  await scanTagIndex(keys, tagKeys, tag, repo, times, readLink);
  tag.index.sort();
  return tag;
}

async function scanTags(keys: BucketKeys, found: RepositoryKeys, repo: RepositoryState, times: boolean, readLink: LinkReader): Promise<void> {
  if (!found.hasTagsDir) return;
  repo.hasTagsDir = true;
  const dir = keys.keyFor({ kind: 'tags', name: repo.name });
  const tags = byName(found.tags);
  const scanned = await Promise.all(
    tags.map(async ([name, t]) => {
      if (!isTagName(name) || !t.dir) return undefined;
      const sink: ProblemSink = { name: repo.name, problems: [] };
      return { tag: await scanTag(keys, name, t, sink, times, readLink), problems: sink.problems };
    }),
  );
  // In tag order, as a scan that reads one tag after the other.
  tags.forEach(([name], i) => {
    const read = scanned[i];
    if (read === undefined) {
      repo.problems.push({ repository: repo.name, path: keys.display(`${dir}/${name}`), message: 'unexpected entry among tags' });
      return;
    }
    for (const problem of read.problems) repo.problems.push(problem);
    repo.tags.push(read.tag);
  });
}

/** The repository's state, as scanRepository makes it (its manifests are read apart: manifests.ts). */
export async function repositoryState(keys: BucketKeys, found: RepositoryKeys, times: boolean, readLink: LinkReader): Promise<RepositoryState> {
  const repo: RepositoryState = { name: found.name, hasLayers: found.hasLayers, hasManifests: found.hasManifests, hasTagsDir: false, tags: [], revisions: [], problems: [] };
  await scanRevisions(keys, found, repo, readLink);
  await scanTags(keys, found, repo, times, readLink);
  if (repo.hasManifests && !repo.hasLayers && repo.revisions.length > 0) {
    repo.problems.push({
      repository: repo.name,
      message: 'has manifests but no _layers: registry 2.x garbage-collect does not see it and would delete its blobs, 3.x aborts',
      blocksGc: true,
    });
  }
  return repo;
}
