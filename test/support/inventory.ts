/**
 * The whole-inventory path, for tests: the tree read into memory at once, and
 * the plan and prediction computed from it with the same per-repository
 * functions the streaming planTree uses. Tests check the streaming pass
 * against it and write scenarios against it; the CLI never holds a whole tree.
 */
import type { BlobPart, Digest, ParsedManifest, Problem, RepositoryState } from '../../src/model.js';
import { GlobalMark } from '../../src/plan/globalMark.js';
import { type Plan, type PlanOptions, emptyPlan, planContext, planRepository, repositoryKeepsUntagged } from '../../src/plan/planner.js';
import { type RepositoryReclaim, reclaimRows } from '../../src/plan/planTree.js';
import { Layout } from '../../src/storage/layout.js';
import type { ScanOptions } from '../../src/storage/source.js';
import type { ScanPool } from '../../src/storage/fs/scanPool.js';
import { walkTree } from '../../src/storage/fs/source.js';

export interface Inventory {
  root: string;
  repositories: RepositoryState[];
  /** Every readable manifest that some repository links as a revision. */
  manifests: Map<Digest, ParsedManifest>;
  /** Every blob under blobs/ and the size of its data. */
  blobs: Map<Digest, number>;
  /** Problems outside any one repository. */
  problems: Problem[];
}

/** The digests and sizes of a BlobPart, as strings. */
function* blobsIn(part: BlobPart): Generator<[Digest, number]> {
  for (let i = 0; i < part.sizes.length; i++) {
    const hex = Buffer.from(part.digests.buffer, part.digests.byteOffset + i * 32, 32).toString('hex');
    yield [`sha256:${hex}` as Digest, part.sizes[i] as number];
  }
}

export async function scan(root: string, options: ScanOptions & { pool?: ScanPool } = {}): Promise<Inventory> {
  const layout = new Layout(root);
  const repositories: RepositoryState[] = [];
  const manifests = new Map<Digest, ParsedManifest>();
  const blobs = new Map<Digest, number>();
  const { problems } = await walkTree(layout.root, options, {
    repository({ repo, manifests: read }) {
      for (const [digest, m] of read) manifests.set(digest, m);
      repositories.push(repo);
    },
    blobs(part) {
      for (const [digest, size] of blobsIn(part)) blobs.set(digest, size);
    },
  }, options.pool);
  options.onProgress?.({ phase: options.phase ?? 'scan', done: blobs.size, unit: 'blobs' });
  return { root: layout.root, repositories, manifests, blobs, problems };
}

/** The plan of every repository of an inventory. */
export function planPurge(inventory: Inventory, options: PlanOptions = {}): Plan {
  const plan = emptyPlan();
  const context = planContext(inventory.repositories.map((r) => r.name), options);
  for (const repo of inventory.repositories) planRepository(repo, inventory.manifests, context, plan);
  return plan;
}

/** Manifests the plan removes, by repository. */
function removedByRepository(plan: Plan): Map<string, Set<Digest>> {
  const removed = new Map<string, Set<Digest>>();
  for (const m of plan.manifests) {
    const set = removed.get(m.repository) ?? new Set<Digest>();
    set.add(m.digest);
    removed.set(m.repository, set);
  }
  return removed;
}

export function keepsUntagged(inventory: Inventory, plan: Plan): boolean {
  const removed = removedByRepository(plan);
  return inventory.repositories.some((repo) => repositoryKeepsUntagged(repo, removed.get(repo.name) ?? new Set()));
}

function blobPartOf(blobs: ReadonlyMap<Digest, number>): BlobPart {
  const digests = new Uint8Array(blobs.size * 32);
  const sizes = new Float64Array(blobs.size);
  let i = 0;
  for (const [digest, size] of blobs) {
    digests.set(Buffer.from(digest.slice('sha256:'.length), 'hex'), i * 32);
    sizes[i++] = size;
  }
  return { digests, sizes, recent: [], problems: [] };
}

/** A global mark fed with a whole inventory and the plan for it. */
function markFor(inventory: Inventory, plan: Plan, registryVersion?: string): GlobalMark {
  const mark = new GlobalMark(registryVersion);
  const removed = removedByRepository(plan);
  mark.treeProblem(inventory.problems);
  for (const repo of inventory.repositories) mark.repository(repo, inventory.manifests, removed.get(repo.name) ?? new Set());
  mark.blobs(blobPartOf(inventory.blobs));
  return mark;
}

/** garbage-collect's mark on the tree the plan leaves, and the blobs its sweep frees. */
export function predictCollect(inventory: Inventory, plan: Plan, registryVersion?: string) {
  const mark = markFor(inventory, plan, registryVersion);
  return { ...mark.sweep(), digests: mark.sweptDigests() };
}

export function reclaimByRepository(inventory: Inventory, plan: Plan, registryVersion?: string): RepositoryReclaim[] {
  return reclaimRows(plan, markFor(inventory, plan, registryVersion));
}
