/**
 * The pull index: per repository the last pull of each tag and of each
 * digest, and the time from which it has seen the registry's log without a
 * gap (its coverage). Logs rotate; the index outlives them, kept in the
 * storage root beside docker/ (storage/ writes it). Pure: this module merges,
 * judges coverage and turns the index into text and back; it reads nothing.
 *
 * The text is one header line, then the body as JSON. The header carries the
 * body's sha256, so an index damaged in any way is known as damaged (and
 * rebuilt from the log), never trusted.
 */
import { createHash } from 'node:crypto';
import type { Digest, TagState } from '../model.js';
import { isDigest, isRepositoryName, isTagName } from '../storage/layout.js';
import type { Pull } from './accessLog.js';

const PULL_INDEX_FORMAT = 'regsweep-pull-index';
const VERSION = 1;

/** Where an engine log was read up to: its last line, found again as the first of the next read when nothing was lost. */
export interface SourceMark {
  /** The engine's timestamp of the line (RFC 3339 with nanoseconds), what the next read asks for lines since. */
  ts: string;
  /** A hash of that line, so an equal timestamp of another line is no overlap. */
  line: string;
  /** The container ran when it was read: lines it logged afterwards are lost if it is removed unread. */
  running: boolean;
}

export interface Coverage {
  /** The index has seen every line of the registry's log since this time (ms). */
  from: number;
  /**
   * … up to this time: the last run's read, when it read a container's log;
   * where the log files it read end (their latest line), when it read only
   * files: pulls after that are unknown (the planner holds the pull rules
   * when this is over a day ago).
   */
  to: number;
}

interface RepositoryPulls {
  tags: Record<string, number>;
  digests: Record<string, number>;
}

export interface PullIndexData {
  coverage?: Coverage;
  /** Engine log marks by container id. */
  sources: Record<string, SourceMark>;
  repositories: Record<string, RepositoryPulls>;
}

/** One log read of this run, as coverage needs it. */
export interface SourceRead {
  /** A container's log (marks kept by id), or a log file or stdin (judged by its times). */
  kind: 'container' | 'file';
  /** Container id, or the file's name. */
  id: string;
  /** A container's creation time (ms). */
  created?: number;
  /** The time of the first line this read found (after the mark it found again), if any. */
  first?: number;
  /** A file's latest line, if any: where what the file says ends. */
  last?: number;
  /** A container read from a mark: the marked line was found again, so nothing between was lost. */
  continued?: boolean;
  /** A container whose log could not be read (its log driver keeps none the engine reads back): why. */
  failed?: string;
  /** A container's new mark (its last line), or its old one when nothing was new. */
  mark?: SourceMark;
}

/** A container whose first line came this soon after its creation has its whole log (nothing rotated away). */
const START_SLACK_MS = 60_000;

export class PullIndexCorrupt extends Error {}

/** What a run did with the pull index, as its report says. */
export interface PullReport {
  index: {
    /** Where it is kept: a file or an object beside docker/. */
    where: string;
    /** created (there was none), written, rebuilt (the one there was damaged), read-only (this run cannot write the storage), failed (the write failed: problem), unchanged (nothing read). */
    state: 'created' | 'written' | 'rebuilt' | 'read-only' | 'failed' | 'unchanged';
    problem?: string;
  };
  /** What the index has seen of the log without a gap (ISO times); null when it has seen nothing. */
  coverage: { from: string; to: string } | null;
  /** What this run read: logs (containers and files), lines, pulls, lines not the registry's, logs it could not read. */
  read: { sources: number; lines: number; pulls: number; junk: number; failed: string[] };
  /** Why pull rules selected nothing. */
  held: string[];
}

export function hashLine(line: string): string {
  return createHash('sha256').update(line).digest('hex').slice(0, 16);
}

export class PullIndex {
  private constructor(private readonly data: PullIndexData) {}

  static empty(): PullIndex {
    return new PullIndex({ sources: {}, repositories: {} });
  }

  /** Parses an index's text; throws PullIndexCorrupt saying what is wrong with it. */
  static parse(text: string): PullIndex {
    const newline = text.indexOf('\n');
    if (newline < 0) throw new PullIndexCorrupt('no header line');
    let header: unknown;
    try {
      header = JSON.parse(text.slice(0, newline));
    } catch {
      throw new PullIndexCorrupt('the header is not JSON');
    }
    const h = header as { format?: unknown; version?: unknown; sha256?: unknown };
    if (h?.format !== PULL_INDEX_FORMAT) throw new PullIndexCorrupt('not a regsweep pull index');
    if (h.version !== VERSION) throw new PullIndexCorrupt(`version ${JSON.stringify(h.version)}, this regsweep reads ${VERSION}`);
    const body = text.slice(newline + 1);
    if (createHash('sha256').update(body).digest('hex') !== h.sha256) throw new PullIndexCorrupt('its checksum does not match its content');
    let data: unknown;
    try {
      data = JSON.parse(body);
    } catch {
      throw new PullIndexCorrupt('the body is not JSON');
    }
    return new PullIndex(checked(data));
  }

  serialize(): string {
    const body = `${JSON.stringify(this.data)}\n`;
    const sha256 = createHash('sha256').update(body).digest('hex');
    return `${JSON.stringify({ format: PULL_INDEX_FORMAT, version: VERSION, sha256 })}\n${body}`;
  }

  get coverage(): Coverage | undefined {
    return this.data.coverage;
  }

  mark(id: string): SourceMark | undefined {
    return this.data.sources[id];
  }

  /** Records a pull: only the latest time of each tag and digest is kept. */
  record(pull: Pull): void {
    const repo = (this.data.repositories[pull.repository] ??= { tags: {}, digests: {} });
    const [map, key] = pull.tag !== undefined ? [repo.tags, pull.tag] : [repo.digests, pull.digest as string];
    if ((map[key] ?? -Infinity) < pull.at) map[key] = pull.at;
  }

  /** A tag's last pull: the latest of its name and of the digest it points at now. */
  lastPull(repository: string, tag: string, current: Digest | undefined): number | undefined {
    const repo = this.data.repositories[repository];
    if (!repo) return undefined;
    const byName = repo.tags[tag];
    const byDigest = current === undefined ? undefined : repo.digests[current];
    if (byName === undefined) return byDigest;
    return byDigest === undefined ? byName : Math.max(byName, byDigest);
  }

  /**
   * A tag's last use, for the pull rules: its last pull, or its push when that
   * is later (a tag pushed after the coverage began and never pulled counts
   * from its push; one of unknown push time is taken as new, at `now`).
   */
  lastUse(repository: string, tag: TagState, now: number): { pulled?: number; used: number } {
    const pulled = this.lastPull(repository, tag.name, tag.current);
    return { ...(pulled === undefined ? {} : { pulled }), used: Math.max(pulled ?? -Infinity, tag.pushedMs ?? now) };
  }

  /** The repository's last pull of anything. */
  repositoryLastPull(repository: string): number | undefined {
    const repo = this.data.repositories[repository];
    if (!repo) return undefined;
    let last: number | undefined;
    for (const t of [...Object.values(repo.tags), ...Object.values(repo.digests)]) if (last === undefined || t > last) last = t;
    return last;
  }

  /** The digests of the repository pulled by digest at or after `since`, with their last pull. */
  digestsPulledSince(repository: string, since: number): Map<Digest, number> {
    const pulled = new Map<Digest, number>();
    for (const [digest, at] of Object.entries(this.data.repositories[repository]?.digests ?? {})) if (at >= since) pulled.set(digest as Digest, at);
    return pulled;
  }

  /** How many tags and digests it holds (what reading it costs). */
  size(): number {
    let n = 0;
    for (const repo of Object.values(this.data.repositories)) n += Object.keys(repo.tags).length + Object.keys(repo.digests).length;
    return n;
  }

  /**
   * Advances the coverage by this run's reads at `now` and replaces the
   * container marks. Coverage begins again after any gap: a marked line not
   * found again (rotated away), a container whose log starts well after its
   * creation, a running container removed unread, an unreadable log, a file
   * starting after the last read. A run that read nothing leaves it as it is.
   * It ends now when a container's log was read (the engine gives its log up
   * to now; one it could not read is a gap up to now), else where the files
   * end: their latest line, or the end of the coverage before when that is
   * later.
   */
  advance(reads: readonly SourceRead[], now: number): void {
    if (reads.length === 0) return;
    const prior = this.data.coverage;
    const gapEnds: number[] = [];
    const starts: number[] = [];
    const read = new Set(reads.filter((r) => r.kind === 'container').map((r) => r.id));
    const newlyCreated = reads.filter((r) => r.kind === 'container' && !this.data.sources[r.id] && r.created !== undefined).map((r) => r.created as number);
    for (const r of reads) {
      if (r.failed !== undefined) {
        gapEnds.push(now);
        continue;
      }
      if (r.kind === 'file') {
        const start = r.first ?? now;
        starts.push(start);
        if (!prior || r.first === undefined || r.first > prior.to) gapEnds.push(start);
        continue;
      }
      if (this.data.sources[r.id]) {
        if (!r.continued) gapEnds.push(r.first ?? now);
        starts.push(r.first ?? now);
      } else {
        const whole = r.first === undefined || (r.created !== undefined && r.first <= r.created + START_SLACK_MS);
        const start = whole ? (r.created ?? r.first ?? now) : (r.first as number);
        starts.push(start);
        if (!whole) gapEnds.push(start);
      }
      if (r.mark) this.data.sources[r.id] = r.mark;
    }
    for (const [id, mark] of Object.entries(this.data.sources)) {
      if (read.has(id)) continue;
      // Removed (or no longer the registry's): what it logged after its mark, while it ran, was never read.
      if (mark.running) gapEnds.push(newlyCreated.length > 0 ? Math.max(...newlyCreated) : now);
      delete this.data.sources[id];
    }
    const from = prior ? Math.max(prior.from, ...gapEnds) : Math.max(...starts, ...gapEnds);
    const engineRead = reads.some((r) => r.kind === 'container');
    const fileEnd = Math.max(prior?.to ?? -Infinity, ...reads.filter((r) => r.kind === 'file').map((r) => r.last ?? -Infinity));
    const to = engineRead || fileEnd === -Infinity ? now : Math.min(fileEnd, now);
    this.data.coverage = { from: Math.min(from, to), to };
  }
}

function isTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** The body as this version writes it, else PullIndexCorrupt: a damaged index is never trusted. */
function checked(data: unknown): PullIndexData {
  const bad = (what: string): never => {
    throw new PullIndexCorrupt(what);
  };
  if (!data || typeof data !== 'object') bad('the body is not an object');
  const d = data as Record<string, unknown>;
  const coverage = d.coverage as Coverage | undefined;
  if (coverage !== undefined && !(isTime(coverage?.from) && isTime(coverage?.to))) bad('its coverage is not two times');
  const sources = (d.sources ?? bad('no sources')) as Record<string, SourceMark>;
  for (const [id, m] of Object.entries(sources)) {
    if (typeof m?.ts !== 'string' || typeof m.line !== 'string' || typeof m.running !== 'boolean') bad(`the mark of ${id} is malformed`);
  }
  const repositories = (d.repositories ?? bad('no repositories')) as Record<string, RepositoryPulls>;
  for (const [name, repo] of Object.entries(repositories)) {
    if (!isRepositoryName(name)) bad(`invalid repository name ${JSON.stringify(name)}`);
    if (!repo || typeof repo.tags !== 'object' || typeof repo.digests !== 'object') bad(`repository ${name} is malformed`);
    for (const [tag, at] of Object.entries(repo.tags)) if (!isTagName(tag) || !isTime(at)) bad(`tag ${name}:${tag} is malformed`);
    for (const [digest, at] of Object.entries(repo.digests)) if (!isDigest(digest) || !isTime(at)) bad(`digest ${name}@${digest} is malformed`);
  }
  return { ...(coverage ? { coverage } : {}), sources, repositories };
}
