/**
 * `--usage`: where the disk goes, repository by repository. Fed the same
 * repositories as the global mark, one at a time in name order, it keeps of
 * each only the ids of the distinct blobs its revisions reference (one list
 * for all, a range per repository) and, per id, how many repositories
 * reference it. Blob sizes arrive in parallel with the repositories and the
 * prediction is known only at the end, so bytes are summed after the scan.
 *
 * A repository references its revisions' manifests and what each references
 * (config and layers, the children of an index, a schema1 manifest's layers):
 * what garbage-collect would mark for it were every revision kept. Only blobs
 * present under blobs/ count, at the size of their data.
 */
import type { Digest, ParsedManifest, RepositoryState } from '../model.js';
import { Flag } from '../storage/digestTable.js';
import { type GlobalMark, IdList } from './globalMark.js';
import type { PullIndex } from './pullIndex.js';

export interface RepositoryUsage {
  repository: string;
  /** Its tags, as the scan counts them (`before.tags`). */
  tags: number;
  /** Its revisions (`_manifests/revisions`). */
  manifests: number;
  /** The distinct blobs its revisions reference. */
  bytes: number;
  /** Those no other repository's revisions reference. */
  uniqueBytes: number;
  /** Those the prediction sweeps: what the same options' purge and garbage-collect would free of it. */
  reclaimableBytes: number;
  /** With a pull index: its last pull of anything (ISO time), null when the index saw none. */
  lastPulled?: string | null;
  /** With a pull index: each tag's last pull, by its name or the digest it points at now. */
  tagsPulled?: { tag: string; lastPulled: string | null }[];
}

export interface UsageTotals {
  repositories: number;
  tags: number;
  manifests: number;
  /** The distinct blobs any revision references, each once. */
  bytes: number;
  /** Blobs no revision references (orphan uploads, leftovers): `before.bytes` is `bytes` plus these. */
  unreferencedBytes: number;
  /** The prediction's bytes, each swept blob once (unreferenced ones included). */
  reclaimableBytes: number;
}

export interface UsageReport {
  /** Largest first (by bytes, then by name). */
  repositories: RepositoryUsage[];
  totals: UsageTotals;
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** A repository's last pull and each tag's, as the pull index knows them. */
function lastPulls(index: PullIndex, repo: RepositoryState): Pick<RepositoryUsage, 'lastPulled' | 'tagsPulled'> {
  const tagsPulled = repo.tags.map((t) => ({ tag: t.name, lastPulled: iso(index.lastPull(repo.name, t.name, t.current)) }));
  return { lastPulled: iso(index.repositoryLastPull(repo.name)), tagsPulled };
}

/** A number per digest id, 0 until set; grows a chunk at a time. */
class IdColumn {
  private readonly chunks: Int32Array[] = [];

  get(id: number): number {
    return this.chunks[id >>> 14]?.[id & ((1 << 14) - 1)] ?? 0;
  }

  set(id: number, value: number): void {
    while (this.chunks.length <= id >>> 14) this.chunks.push(new Int32Array(1 << 14));
    (this.chunks[id >>> 14] as Int32Array)[id & ((1 << 14) - 1)] = value;
  }
}

interface Row {
  repository: string;
  tags: number;
  manifests: number;
  pulls?: Pick<RepositoryUsage, 'lastPulled' | 'tagsPulled'>;
  /** Where its ids end in the list (they start where the previous row's end). */
  end: number;
}

export class UsageTally {
  private readonly ids = new IdList();
  private readonly rows: Row[] = [];
  /** Per id: the number (1-based) of the last repository that listed it, so a blob is listed once per repository without a set. */
  private readonly lastListedBy = new IdColumn();
  /** Per id: how many repositories reference it. */
  private readonly referencedBy = new IdColumn();

  /** Shares the mark's digest table (its ids), and asks it, at the end, which blobs are sizes and which are swept. */
  constructor(
    private readonly mark: GlobalMark,
    private readonly pulls?: PullIndex,
  ) {}

  /** One repository as scanned (before any plan): call in the order the mark is fed. */
  repository(repo: RepositoryState, manifests: ReadonlyMap<Digest, ParsedManifest>): void {
    const number = this.rows.length + 1;
    const list = (digest: Digest): void => {
      const id = this.mark.table.id(digest);
      if (this.lastListedBy.get(id) === number) return;
      this.lastListedBy.set(id, number);
      this.referencedBy.set(id, this.referencedBy.get(id) + 1);
      this.ids.push(id);
    };
    for (const digest of repo.revisions) {
      list(digest);
      for (const ref of manifests.get(digest)?.references ?? []) list(ref);
    }
    this.rows.push({ repository: repo.name, tags: repo.tags.length, manifests: repo.revisions.length, end: this.ids.length, ...(this.pulls ? { pulls: lastPulls(this.pulls, repo) } : {}) });
  }

  /** The report, once every repository and blob is in and the mark has swept. */
  report(): UsageReport {
    const { table } = this.mark;
    const repositories: RepositoryUsage[] = [];
    let index = 0;
    for (const { repository, tags, manifests, end, pulls } of this.rows) {
      const row = { repository, tags, manifests, bytes: 0, uniqueBytes: 0, reclaimableBytes: 0, ...pulls };
      for (; index < end; index++) {
        const id = this.ids.get(index);
        // A referenced digest without data (a missing blob) takes no disk.
        if (!table.has(id, Flag.blob)) continue;
        const size = table.size(id);
        row.bytes += size;
        if (this.referencedBy.get(id) === 1) row.uniqueBytes += size;
        if (this.mark.sweeps(id)) row.reclaimableBytes += size;
      }
      repositories.push(row);
    }
    repositories.sort((a, b) => b.bytes - a.bytes || (a.repository < b.repository ? -1 : a.repository > b.repository ? 1 : 0));
    return { repositories, totals: this.totals(repositories) };
  }

  private totals(rows: readonly RepositoryUsage[]): UsageTotals {
    const { table } = this.mark;
    let bytes = 0;
    for (let id = 0; id < table.count; id++) if (this.referencedBy.get(id) > 0 && table.has(id, Flag.blob)) bytes += table.size(id);
    const sum = (key: 'tags' | 'manifests'): number => rows.reduce((n, r) => n + r[key], 0);
    return {
      repositories: rows.length,
      tags: sum('tags'),
      manifests: sum('manifests'),
      bytes,
      unreferencedBytes: this.mark.totals().bytes - bytes,
      reclaimableBytes: this.mark.sweep().bytes,
    };
  }
}
