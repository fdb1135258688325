/**
 * Digests in use: what the Docker engine's containers and services run, and
 * what `--keep-digests` lists. The planner keeps each as a root in its
 * repository, like a tagged manifest. Pure: the engine and the file are read
 * elsewhere; this module only reads references.
 *
 * A reference names a repository by its path, whatever registry host it
 * names: `localhost:5000/team/web@sha256:…`, `registry.example.com/team/web:v1@sha256:…`
 * and `team/web@sha256:…` all mean repository `team/web`. A bare
 * `sha256:…` means "in any repository that holds it".
 */
import { UsageError } from '../errors.js';
import type { Digest } from '../model.js';
import { isDigest, isRepositoryName, isTagName } from '../storage/layout.js';

/** Who uses which digests: `container web-1`, `service stack_app`, `file pins.txt`. */
export interface Pinned {
  /** Repository → digest → its users. */
  byRepository: Map<string, Map<Digest, string[]>>;
  /** Bare digests: kept in every repository that holds them. */
  anywhere: Map<Digest, string[]>;
}

/** A digest the plan keeps because something uses it, and would otherwise have removed. */
export interface InUseDigest {
  repository: string;
  digest: Digest;
  users: string[];
}

interface PinReference {
  /** Undefined for a bare digest. */
  repository?: string;
  digest: Digest;
}

export function emptyPins(): Pinned {
  return { byRepository: new Map(), anywhere: new Map() };
}

/** How many digests are pinned (a digest pinned in two repositories counts twice). */
export function pinCount(pinned: Pinned): number {
  let n = pinned.anywhere.size;
  for (const digests of pinned.byRepository.values()) n += digests.size;
  return n;
}

// What kubectl's `imageID` prefixes a reference with (dockershim, some runtimes).
const SCHEMES = ['docker-pullable://', 'docker://'];
const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?$/;

/** Docker's rule: a first component names a registry host when it holds a `.` or a `:`, or is `localhost`. */
function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/** `[host/]path[:tag]` → the repository path, or undefined when it is not a valid name. */
function repositoryOf(name: string): string | undefined {
  const components = name.split('/');
  // A single component is never a host: `localhost@sha256:…` is repository `localhost`.
  if (components.length > 1 && looksLikeHost(components[0] as string)) {
    if (!HOST.test(components.shift() as string)) return undefined;
  }
  const last = components.pop() as string;
  const colon = last.indexOf(':');
  if (colon >= 0 && !isTagName(last.slice(colon + 1))) return undefined;
  const repository = [...components, colon >= 0 ? last.slice(0, colon) : last].join('/');
  return isRepositoryName(repository) ? repository : undefined;
}

/**
 * A reference that pins a digest: `[host[:port]/]path[:tag]@sha256:<hex>`, or a
 * bare `sha256:<hex>`, each maybe behind `docker-pullable://`. Undefined for
 * anything else, a reference by tag alone (`registry:2`) included.
 */
export function parseReference(text: string): PinReference | undefined {
  const scheme = SCHEMES.find((s) => text.startsWith(s));
  const ref = scheme ? text.slice(scheme.length) : text;
  const at = ref.lastIndexOf('@');
  const digest = ref.slice(at + 1);
  if (!isDigest(digest)) return undefined;
  if (at < 0) return { digest };
  const repository = repositoryOf(ref.slice(0, at));
  return repository === undefined ? undefined : { repository, digest };
}

/** Notes that `user` uses the reference's digest (in its repository, or anywhere). */
function addPin(pinned: Pinned, { repository, digest }: PinReference, user: string): void {
  let users: string[] | undefined;
  if (repository === undefined) {
    users = pinned.anywhere.get(digest);
    if (!users) pinned.anywhere.set(digest, (users = []));
  } else {
    let digests = pinned.byRepository.get(repository);
    if (!digests) pinned.byRepository.set(repository, (digests = new Map()));
    users = digests.get(digest);
    if (!users) digests.set(digest, (users = []));
  }
  if (!users.includes(user)) users.push(user);
}

/** Adds a reference the engine reports, when it pins a digest; others (`registry:2`, an image id) are no pin. Returns whether it did. */
export function addReference(pinned: Pinned, text: string, user: string): boolean {
  const ref = parseReference(text);
  if (ref) addPin(pinned, ref, user);
  return ref !== undefined;
}

/**
 * Reads a `--keep-digests` list into `pinned`: references separated by white
 * space (one a line, or many on a line as `kubectl … -o jsonpath='{..imageID}'`
 * prints them); `#` starts a comment to the end of its line. A bad reference
 * refuses the whole list, naming `source` and the line.
 */
export function readPinList(text: string, { source, user }: { source: string; user: string }, pinned: Pinned): void {
  for (const [i, line] of text.split('\n').entries()) {
    for (const token of line.split(/\s+/)) {
      if (token === '') continue;
      if (token.startsWith('#')) break;
      const ref = parseReference(token);
      if (!ref) throw new UsageError(`--keep-digests ${source}, line ${i + 1}: ${JSON.stringify(token)} is not REPOSITORY@sha256:<64 hex> or sha256:<64 hex>`);
      addPin(pinned, ref, user);
    }
  }
}
