/**
 * `REPOSITORY` and `REPOSITORY:TAG` as users write them (arguments and `-x`),
 * checked against the tree so a typo never reads as "nothing to do".
 */
import { UsageError } from '../errors.js';
import type { RepositoryState } from '../model.js';
import { isRepositoryName, isTagName } from '../storage/layout.js';

export interface Selector {
  repository: string;
  tag?: string;
}

export function parseSelector(text: string): Selector {
  const colon = text.lastIndexOf(':');
  // A ':' inside the last path component separates the tag; `host:port/x` never reaches a storage path.
  const hasTag = colon > text.lastIndexOf('/');
  const repository = hasTag ? text.slice(0, colon) : text;
  const tag = hasTag ? text.slice(colon + 1) : undefined;
  if (!isRepositoryName(repository)) throw new UsageError(`invalid repository name: ${JSON.stringify(repository)}`);
  if (tag !== undefined && !isTagName(tag)) throw new UsageError(`invalid tag: ${JSON.stringify(tag)} (in ${JSON.stringify(text)})`);
  return tag === undefined ? { repository } : { repository, tag };
}

/** Refuses selectors that name a repository the tree does not hold. */
export function checkSelectedRepositories(root: string, names: readonly string[], selectors: readonly Selector[]): void {
  const known = new Set(names);
  for (const s of selectors) if (!known.has(s.repository)) throw new UsageError(`no repository ${s.repository} in ${root}`);
}

/** Refuses selectors that name a tag the repository does not hold. */
export function checkSelectedTags(repo: RepositoryState, selectors: readonly Selector[]): void {
  for (const s of selectors) {
    if (s.repository === repo.name && s.tag !== undefined && !repo.tags.some((t) => t.name === s.tag)) {
      throw new UsageError(`no tag ${s.tag} in repository ${s.repository}`);
    }
  }
}
