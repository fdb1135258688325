/**
 * The global half of the prediction, kept compactly so it scales to millions
 * of revisions: garbage-collect's mark over every repository as the plan
 * leaves it, every blob's size, and which removed manifests used which blobs.
 * Repositories are fed one at a time (the scan streams them) and then dropped;
 * only digest ids and flags stay.
 */
import type { BlobPart, Digest, ParsedManifest, Prediction, Problem, RepositoryState } from '../model.js';
import { isV3 } from '../gc/version.js';
import { DigestTable, Flag, UintColumn } from '../storage/digestTable.js';

/** A growable list of ids, a chunk at a time. */
export class IdList {
  private readonly chunks: Int32Array[] = [];
  length = 0;

  push(id: number): void {
    const chunk = this.length >>> 14;
    if (chunk === this.chunks.length) this.chunks.push(new Int32Array(1 << 14));
    (this.chunks[chunk] as Int32Array)[this.length & ((1 << 14) - 1)] = id;
    this.length++;
  }

  get(index: number): number {
    return (this.chunks[index >>> 14] as Int32Array)[index & ((1 << 14) - 1)] as number;
  }
}

/**
 * garbage-collect's mark over the whole tree, repository by repository, and
 * the sizes of every blob: what its sweep will free, exactly.
 */
export class GlobalMark {
  private readonly treeProblems: Problem[] = [];
  private readonly repositoryProblems: Problem[] = [];
  /**
   * Per id, the first repository (its number in `users`, from 1) whose removed
   * manifests use it (themselves or their references), 0 for none: the row a
   * swept blob counts in. One small number per digest, where a list of every
   * use took 4 bytes per reference of every removed manifest.
   */
  private readonly firstUser = new UintColumn();
  /** The repositories whose removed manifests use anything, in the order fed. */
  private readonly users: string[] = [];
  private blobCount = 0;
  private blobBytes = 0;
  private result: Prediction | undefined;
  private byRepository: { repositories: Map<string, number>; unreferenced: number } | undefined;
  private readonly v3: boolean;

  /** Enumerated repositories: as 2.x (`_layers`), as 3.x (`_manifests`), or either (version unknown, regsweep's own sweep). */
  private readonly enumerates: (repo: RepositoryState) => boolean;
  /** regsweep's own sweep (`--gc builtin`): blobs noted recent are left. */
  private readonly spareRecent: boolean;

  /**
   * `table` may be shared with the plan's packed lists: the digests they name
   * are here anyway. With `builtin`, the sweep is regsweep's own: recent blobs
   * stay, and a registry of unknown version counts a repository as enumerated
   * by either directory (marking more, sweeping less).
   */
  constructor(
    private readonly registryVersion?: string,
    readonly table: DigestTable = new DigestTable(),
    options: { builtin?: boolean } = {},
  ) {
    this.v3 = registryVersion !== undefined && isV3(registryVersion);
    this.spareRecent = options.builtin ?? false;
    if (registryVersion === undefined && this.spareRecent) this.enumerates = (r) => r.hasLayers || r.hasManifests;
    else this.enumerates = this.v3 ? (r) => r.hasManifests : (r) => r.hasLayers;
  }

  /** Problems of the tree outside any repository (unexpected blob paths, bad repository names). */
  treeProblem(problems: readonly Problem[]): void {
    this.treeProblems.push(...problems.filter((p) => p.blocksGc));
  }

  /**
   * One repository as the plan leaves it: every revision it keeps is marked
   * with what it references, if garbage-collect enumerates the repository
   * (2.x by `_layers`, 3.x by `_manifests`). Call in repository-name order.
   */
  repository(repo: RepositoryState, manifests: ReadonlyMap<Digest, ParsedManifest>, removed: ReadonlySet<Digest>): void {
    this.repositoryProblems.push(...repo.problems.filter((p) => p.blocksGc));
    const v3 = this.v3;
    const enumerated = this.enumerates(repo);
    const user = this.users.length + 1;
    let used = false;
    const use = (id: number): void => {
      used = true;
      if (this.firstUser.get(id) === 0) this.firstUser.set(id, user);
    };
    for (const digest of repo.revisions) {
      const manifest = manifests.get(digest);
      if (removed.has(digest)) {
        use(this.table.id(digest));
        for (const ref of manifest?.references ?? []) use(this.table.id(ref));
        continue;
      }
      // A revision whose blob is missing is skipped by garbage-collect, and so not marked.
      if (!enumerated || !manifest) continue;
      if (v3 && manifest.kind === 'schema1') {
        this.repositoryProblems.push({ repository: repo.name, message: `registry ${this.registryVersion} cannot read schema1 manifest ${digest}; its garbage-collect aborts`, blocksGc: true });
      }
      this.table.set(this.table.id(digest), Flag.marked);
      for (const ref of manifest.references) this.table.set(this.table.id(ref), Flag.marked);
    }
    if (used) this.users.push(repo.name);
  }

  /** Blobs under blobs/, with their sizes (their problems come through treeProblem). */
  blobs(part: Pick<BlobPart, 'digests' | 'sizes' | 'recent'>): void {
    for (const i of part.recent) this.table.set(this.table.idOfBytes(part.digests, i * 32), Flag.recent);
    for (let i = 0; i < part.sizes.length; i++) {
      const id = this.table.idOfBytes(part.digests, i * 32);
      if (this.table.has(id, Flag.blob)) continue;
      this.table.set(id, Flag.blob);
      this.table.setSize(id, part.sizes[i] as number);
      this.blobCount++;
      this.blobBytes += part.sizes[i] as number;
    }
  }

  /** Every blob and its bytes, before anything is removed. */
  totals(): { blobs: number; bytes: number } {
    return { blobs: this.blobCount, bytes: this.blobBytes };
  }

  private unmarked(id: number): boolean {
    return this.table.has(id, Flag.blob) && !this.table.has(id, Flag.marked);
  }

  private swept(id: number): boolean {
    return this.unmarked(id) && !(this.spareRecent && this.table.has(id, Flag.recent));
  }

  /** Does the predicted sweep free the blob with this id? (Never when garbage-collect is unsafe on the tree.) */
  sweeps(id: number): boolean {
    return this.sweep().blockedBy.length === 0 && this.swept(id);
  }

  /** The size of a blob's data, 0 when it is not a blob of the tree. */
  sizeOf(digest: Digest): number {
    const id = this.table.find(digest);
    return id >= 0 && this.table.has(id, Flag.blob) ? this.table.size(id) : 0;
  }

  /** Was there a blob with this digest (its data) when the scan ran? */
  hadBlob(digest: Digest): boolean {
    const id = this.table.find(digest);
    return id >= 0 && this.table.has(id, Flag.blob);
  }

  /** Did the mark reach this digest (a kept revision, or what one references)? */
  isMarked(digest: Digest): boolean {
    const id = this.table.find(digest);
    return id >= 0 && this.table.has(id, Flag.marked);
  }

  /** What garbage-collect's sweep frees once every repository and blob is in. */
  sweep(): Prediction {
    if (this.result) return this.result;
    const blockedBy = [...this.treeProblems, ...this.repositoryProblems];
    let blobs = 0;
    let bytes = 0;
    const recent = { blobs: 0, bytes: 0 };
    if (blockedBy.length === 0) {
      for (let id = 0; id < this.table.count; id++) {
        if (!this.unmarked(id)) continue;
        if (this.swept(id)) {
          blobs++;
          bytes += this.table.size(id);
        } else {
          recent.blobs++;
          recent.bytes += this.table.size(id);
        }
      }
    }
    this.result = { blobs, bytes, recent, blockedBy };
    return this.result;
  }

  /** The digests the sweep frees, sorted (for tests and small trees: it makes a string per blob). */
  sweptDigests(): Digest[] {
    if (this.sweep().blockedBy.length > 0) return [];
    const digests: Digest[] = [];
    for (let id = 0; id < this.table.count; id++) if (this.swept(id)) digests.push(this.table.digest(id));
    return digests.sort();
  }

  /**
   * The swept bytes by repository: a swept blob counts once, for the first
   * repository (in the order fed, by name) whose removed manifests used it;
   * the rest (orphans, leftovers of earlier runs) under `unreferenced`.
   */
  bytesByRepository(): { repositories: Map<string, number>; unreferenced: number } {
    this.byRepository ??= this.attribute();
    return this.byRepository;
  }

  private attribute(): { repositories: Map<string, number>; unreferenced: number } {
    const repositories = new Map<string, number>();
    const { blockedBy, bytes: total } = this.sweep();
    if (blockedBy.length > 0) return { repositories, unreferenced: 0 };
    const bytes = new Float64Array(this.users.length + 1);
    for (let id = 0; id < this.table.count; id++) {
      if (!this.swept(id)) continue;
      const user = this.firstUser.get(id);
      bytes[user] = (bytes[user] as number) + this.table.size(id);
    }
    let attributed = 0;
    this.users.forEach((repository, i) => {
      const b = bytes[i + 1] as number;
      if (b > 0) repositories.set(repository, b);
      attributed += b;
    });
    return { repositories, unreferenced: total - attributed };
  }
}
