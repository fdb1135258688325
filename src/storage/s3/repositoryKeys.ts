/**
 * The keys below `repositories/`, sorted into what a filesystem scan reads of
 * each repository directory: which directories hold `_layers` or `_manifests`
 * (a repository, registry 2.x and 3.x), the entries of its revisions
 * directory, its tags and each tag's index, and the link objects among them.
 * Only what a scan reads is kept: `_layers` and `_uploads` keys count for
 * nothing but the directory they make.
 *
 * A directory of the tree is walked as scan.ts walks it: every component of
 * its path is not `_`-prefixed (those directories are the registry's own, no
 * name component can start with `_`). An entry is a file when a key ends at
 * it and a directory when a key goes on below it.
 */
import type { ListedObject } from './listing.js';

/** A directory entry as the keys show it. */
export interface EntryKeys {
  file: boolean;
  dir: boolean;
  /** The object `<entry>/link`, when there is one. */
  link?: ListedObject;
}

export interface TagKeys extends EntryKeys {
  /** `<tag>/current/link` */
  current?: ListedObject;
  /** The entries of `<tag>/index/sha256/`. */
  index: Map<string, EntryKeys>;
}

export interface RepositoryKeys {
  /** The path below repositories/, valid as a repository name or not. */
  name: string;
  hasLayers: boolean;
  hasManifests: boolean;
  /** Some key is below `_manifests/tags/`. */
  hasTagsDir: boolean;
  /** The entries of `_manifests/revisions/sha256/`. */
  revisions: Map<string, EntryKeys>;
  tags: Map<string, TagKeys>;
  /** With `keepKeys`: every key of its own `_layers`, `_manifests` and `_uploads`, in key order (what removing it takes). */
  keys?: string[];
  /** With `keepKeys`: its `_layers/sha256/<hex>/link` objects, by hex. */
  layerLinks?: Map<string, ListedObject>;
  /** With `keepKeys`: its `_uploads/` objects, in key order. */
  uploads?: ListedObject[];
}

function entryOf<T>(map: Map<string, T>, name: string, make: () => T): T {
  let entry = map.get(name);
  if (entry === undefined) map.set(name, (entry = make()));
  return entry;
}

const newEntry = (): EntryKeys => ({ file: false, dir: false });
const newTag = (): TagKeys => ({ file: false, dir: false, index: new Map() });

/**
 * Notes one entry from the components below its directory: `rest[0]` is the
 * entry, a file when it is the last component, and its link when `rest` is
 * exactly `[entry, 'link']`.
 */
function noteEntry(entry: EntryKeys, rest: readonly string[], object: ListedObject): void {
  if (rest.length === 1) entry.file = true;
  else entry.dir = true;
  if (rest.length === 2 && rest[1] === 'link') entry.link = object;
}

/** `_manifests/...` below a repository: `r` starts after `_manifests`. */
function noteManifestsKey(repo: RepositoryKeys, r: readonly string[], object: ListedObject): void {
  if (r[0] === 'revisions' && r[1] === 'sha256' && r.length >= 3) {
    noteEntry(entryOf(repo.revisions, r[2] as string, newEntry), r.slice(2), object);
    return;
  }
  if (r[0] !== 'tags' || r.length < 2) return;
  repo.hasTagsDir = true;
  const tag = entryOf(repo.tags, r[1] as string, newTag);
  if (r.length === 2) tag.file = true;
  else tag.dir = true;
  if (r.length === 4 && r[2] === 'current' && r[3] === 'link') tag.current = object;
  if (r[2] === 'index' && r[3] === 'sha256' && r.length >= 5) noteEntry(entryOf(tag.index, r[4] as string, newEntry), r.slice(4), object);
}

/** Repositories as their keys come in, in any order. */
export class RepositoryIndex {
  private readonly byName = new Map<string, RepositoryKeys>();
  /** With keepKeys: `_uploads` objects by the directory above them (a repository or not: only `_layers` and `_manifests` make one). */
  private readonly uploads = new Map<string, ListedObject[]>();

  /** `keepKeys`: also keep every key of each repository (a real run's removals), and its `_layers` links. */
  constructor(private readonly keepKeys = false) {}

  /** One key, as its components below `repositories/`. */
  add(components: readonly string[], object: ListedObject): void {
    const at = components.findIndex((c) => c.startsWith('_'));
    // Not below a repository directory: no `_` component, one at the top (never walked), or the key itself is the `_` entry (a file, not a directory).
    if (at <= 0 || at === components.length - 1) return;
    const own = components[at];
    const name = components.slice(0, at).join('/');
    if (own === '_uploads' && this.keepKeys) entryOf(this.uploads, name, () => []).push(object);
    if (own !== '_layers' && own !== '_manifests') return;
    const repo = entryOf(this.byName, name, () => ({ name, hasLayers: false, hasManifests: false, hasTagsDir: false, revisions: new Map(), tags: new Map(), ...(this.keepKeys ? { keys: [], layerLinks: new Map() } : {}) }));
    repo.keys?.push(object.key);
    if (own === '_layers') {
      repo.hasLayers = true;
      const r = components.slice(at + 1);
      if (r.length === 3 && r[0] === 'sha256' && r[2] === 'link') repo.layerLinks?.set(r[1] as string, object);
      return;
    }
    repo.hasManifests = true;
    noteManifestsKey(repo, components.slice(at + 1), object);
  }

  /** Every directory holding `_layers` or `_manifests`, in the order a walk of sorted directories meets them. */
  repositories(): RepositoryKeys[] {
    for (const [name, objects] of this.uploads) {
      const repo = this.byName.get(name);
      if (!repo) continue;
      for (const o of objects) repo.keys?.push(o.key);
      repo.uploads = objects;
    }
    this.uploads.clear();
    return [...this.byName.values()].sort((a, b) => byComponents(a.name, b.name));
  }
}

/** Path order of a depth-first walk with each directory's children sorted: component by component. */
function byComponents(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const [p, q] = [x[i] as string, y[i] as string];
    if (p !== q) return p < q ? -1 : 1;
  }
  return x.length - y.length;
}
