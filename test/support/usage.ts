/**
 * What `--usage` must report, worked out independently of regsweep's scanner
 * from the files on disk: every revision link and manifest read here, blob
 * data sizes summed, and a small mark of its own over what the tags keep (the
 * default purge: tags' current manifests and, through indexes, their children).
 */
import fs from 'node:fs/promises';
import path from 'node:path';

const list = (dir: string): Promise<string[]> => fs.readdir(dir).catch(() => [] as string[]);

export function blobDataPath(root: string, digest: string): string {
  return path.join(root, 'docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');
}

interface Repo {
  name: string;
  tags: string[];
  currents: string[];
  revisions: string[];
}

/** Repositories: every directory holding _layers or _manifests. */
async function repositories(dir: string, parts: string[] = []): Promise<Repo[]> {
  const names = await list(dir);
  const found: Repo[] = [];
  if (parts.length > 0 && (names.includes('_layers') || names.includes('_manifests'))) {
    const tags = await list(path.join(dir, '_manifests/tags'));
    const currents = await Promise.all(tags.map((t) => fs.readFile(path.join(dir, '_manifests/tags', t, 'current/link'), 'utf8')));
    const hexes = await list(path.join(dir, '_manifests/revisions/sha256'));
    const revisions = await Promise.all(hexes.map((h) => fs.readFile(path.join(dir, '_manifests/revisions/sha256', h, 'link'), 'utf8')));
    found.push({ name: parts.join('/'), tags, currents, revisions });
  }
  for (const n of names.filter((n) => !n.startsWith('_'))) found.push(...(await repositories(path.join(dir, n), [...parts, n])));
  return found;
}

/** What a stored manifest references: config, layers, or an index's children. */
export async function manifestReferences(root: string, digest: string): Promise<string[]> {
  const doc = JSON.parse(await fs.readFile(blobDataPath(root, digest), 'utf8'));
  return [...(doc.config ? [doc.config.digest] : []), ...(doc.layers ?? []).map((l: { digest: string }) => l.digest), ...(doc.manifests ?? []).map((m: { digest: string }) => m.digest)];
}

/** Every blob under blobs/ with the size of its data. */
async function blobSizes(root: string): Promise<Map<string, number>> {
  const base = path.join(root, 'docker/registry/v2/blobs/sha256');
  const sizes = new Map<string, number>();
  for (const prefix of await list(base)) {
    for (const hex of await list(path.join(base, prefix))) sizes.set(`sha256:${hex}`, (await fs.stat(path.join(base, prefix, hex, 'data'))).size);
  }
  return sizes;
}

/** The blobs each repository's revisions reference, and the blobs the tags keep anywhere (the mark). */
async function referencedAndMarked(root: string, repos: readonly Repo[]): Promise<{ referenced: Map<string, Set<string>>; marked: Set<string> }> {
  const referenced = new Map<string, Set<string>>();
  const marked = new Set<string>();
  for (const repo of repos) {
    const refs = new Set<string>();
    for (const r of repo.revisions) for (const d of [r, ...(await manifestReferences(root, r))]) refs.add(d);
    referenced.set(repo.name, refs);
    const kept = new Set<string>();
    const keep = async (d: string): Promise<void> => {
      if (kept.has(d)) return;
      kept.add(d);
      for (const child of (await manifestReferences(root, d)).filter((c) => repo.revisions.includes(c))) await keep(child);
    };
    for (const c of repo.currents) await keep(c);
    for (const k of kept) for (const d of [k, ...(await manifestReferences(root, k))]) marked.add(d);
  }
  return { referenced, marked };
}

/** The `usage` of a tree purged with default options (no retention rules, no selectors, no referrers). */
export async function expectedUsage(root: string) {
  const sizes = await blobSizes(root);
  const repos = await repositories(path.join(root, 'docker/registry/v2/repositories'));
  const { referenced, marked } = await referencedAndMarked(root, repos);
  const swept = new Set([...sizes.keys()].filter((d) => !marked.has(d)));
  const sum = (digests: Iterable<string>): number => [...digests].reduce((n, d) => n + (sizes.get(d) ?? 0), 0);
  const elsewhere = (name: string, d: string): boolean => [...referenced].some(([n, refs]) => n !== name && refs.has(d));
  const rows = repos.map((repo) => {
    const refs = [...(referenced.get(repo.name) as Set<string>)];
    return {
      repository: repo.name,
      tags: repo.tags.length,
      manifests: repo.revisions.length,
      bytes: sum(refs),
      uniqueBytes: sum(refs.filter((d) => !elsewhere(repo.name, d))),
      reclaimableBytes: sum(refs.filter((d) => swept.has(d))),
    };
  });
  rows.sort((a, b) => b.bytes - a.bytes || (a.repository < b.repository ? -1 : 1));
  const bytes = sum(new Set([...referenced.values()].flatMap((s) => [...s])));
  const count = (key: 'tags' | 'manifests'): number => rows.reduce((n, r) => n + r[key], 0);
  const totals = { repositories: repos.length, tags: count('tags'), manifests: count('manifests'), bytes, unreferencedBytes: sum(sizes.keys()) - bytes, reclaimableBytes: sum(swept) };
  return { repositories: rows, totals };
}
