/**
 * What a repository must keep once its roots are chosen: the children of kept
 * lists and indexes and the referrers (signatures, SBOMs, attestations) of
 * kept manifests, recursively.
 */
import type { Digest, ParsedManifest, Problem, RepositoryState } from '../model.js';

// Tags cosign and friends push for registries without a referrers API: `sha256-<hex>` and `sha256-<hex>.<suffix>`.
const FALLBACK_TAG = /^sha256-([0-9a-f]{64})(?:\.[A-Za-z0-9_.-]+)?$/;

/** The manifest a fallback tag (signature, attestation, SBOM) belongs to, or undefined for an ordinary tag. */
export function fallbackSubject(tag: string): Digest | undefined {
  const m = FALLBACK_TAG.exec(tag);
  return m ? (`sha256:${m[1]}` as Digest) : undefined;
}

/**
 * Grows `kept` from the roots added to it. Roots that are not revisions of
 * the repository are reported: whatever names them is already broken.
 */
export class Closure {
  readonly kept = new Set<Digest>();
  readonly problems: Problem[] = [];
  private readonly revisions: Set<Digest>;
  private readonly referrers = new Map<Digest, Digest[]>();

  constructor(
    private readonly repo: RepositoryState,
    private readonly manifests: ReadonlyMap<Digest, ParsedManifest>,
  ) {
    this.revisions = new Set(repo.revisions);
    for (const digest of repo.revisions) {
      const subject = manifests.get(digest)?.subject;
      if (subject) this.referrers.set(subject, [...(this.referrers.get(subject) ?? []), digest]);
    }
  }

  /** Is it a revision of the repository (kept or not)? */
  has(digest: Digest): boolean {
    return this.revisions.has(digest);
  }

  add(digest: Digest, via: string): void {
    const queue: Array<{ digest: Digest; via: string }> = [{ digest, via }];
    while (queue.length > 0) {
      const next = queue.pop() as { digest: Digest; via: string };
      if (this.kept.has(next.digest)) continue;
      if (!this.revisions.has(next.digest)) {
        this.problems.push({ repository: this.repo.name, message: `${next.via} needs ${next.digest}, which is not a revision of the repository` });
        continue;
      }
      this.kept.add(next.digest);
      for (const child of this.manifests.get(next.digest)?.children ?? []) queue.push({ digest: child, via: `index ${next.digest}` });
      for (const referrer of this.referrers.get(next.digest) ?? []) queue.push({ digest: referrer, via: `referrer of ${next.digest}` });
    }
  }
}

/** The closure of every tag as it is now: what the repository keeps when no tag goes. */
export function keptRevisions(repo: RepositoryState, manifests: ReadonlyMap<Digest, ParsedManifest>): Closure {
  const closure = new Closure(repo, manifests);
  for (const tag of repo.tags) if (tag.current) closure.add(tag.current, `tag ${tag.name}`);
  return closure;
}
