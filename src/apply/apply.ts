/**
 * Carries out a Plan on the tree. First it re-reads the tags of every
 * repository the plan touches and compares them with what the plan assumed:
 * if any moved, it removes nothing at all (`onChange: 'abort'`, what a
 * maintenance window wants) or leaves just those repositories (`'skip'`). Every link file is
 * written to the journal before it is removed, so a purge can be undone
 * (restoreJournal) until garbage-collect runs.
 */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { RegsweepError } from '../errors.js';
import { Layout, type PathSpec, parseDigest } from '../storage/layout.js';
import { type Plan, type PlannedIndexEntries, type PlannedManifests, type PlannedRepository, type PlannedTag, type RepositoryCheck, plannedIndexEntries, plannedManifests } from '../plan/planner.js';
import type { ProgressSink } from '../progress.js';
import type { Problem } from '../storage/scan.js';

/** Tags moved between the plan and the apply, and the apply was told to stop: nothing was removed. */
export class TreeChangedError extends RegsweepError {}

export interface ApplyOptions {
  /** Where to write the journal of removed links (JSON lines). */
  journal?: string;
  /** When a repository's tags moved since the plan: remove nothing at all, or skip that repository (default). */
  onChange?: 'abort' | 'skip';
  /** Move removals here (see Remover) and delete them later with emptyTrash. */
  trash?: string;
  /** Stops between two removals (SIGINT/SIGTERM); what was removed is in the journal. */
  signal?: AbortSignal;
  onProgress?: ProgressSink;
}

export interface ApplyResult {
  repositories: PlannedRepository[];
  tags: PlannedTag[];
  manifests: PlannedManifests;
  indexEntries: PlannedIndexEntries;
  /** Repositories left alone because the tree no longer matched the plan. */
  skipped: Problem[];
  /** Every removed directory, relative to the root. */
  paths: string[];
}

export interface JournalEntry {
  path: string;
  content: string;
}

interface JournalHeader {
  regsweep: 'journal';
  version: 1;
  root: string;
  createdAt: string;
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The tags of a repository as they are on disk now, or a reason they cannot be read. */
function currentTags(layout: Layout, repository: string): Record<string, string | undefined> {
  const tags: Record<string, string | undefined> = {};
  let names: string[];
  try {
    names = fsSync.readdirSync(layout.pathFor({ kind: 'tags', name: repository }));
  } catch (error) {
    if (isMissing(error)) return tags;
    throw error;
  }
  for (const tag of names) {
    try {
      tags[tag] = parseDigest(fsSync.readFileSync(layout.pathFor({ kind: 'tagCurrentLink', name: repository, tag }), 'latin1'));
    } catch {
      tags[tag] = undefined;
    }
  }
  return tags;
}

/** Why the repository no longer matches the plan, or undefined when it does. */
function recheck(layout: Layout, check: RepositoryCheck): string | undefined {
  const now = currentTags(layout, check.repository);
  const planned = Object.keys(check.tags);
  for (const tag of planned) {
    if (!(tag in now)) return `tag ${tag} was removed since the scan`;
    if (now[tag] !== check.tags[tag]) return `tag ${tag} moved since the scan (now ${now[tag] ?? 'unreadable'})`;
  }
  for (const tag of Object.keys(now)) {
    if (!(tag in check.tags)) return `tag ${tag} appeared since the scan`;
  }
  return undefined;
}

async function filesBelow(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let list;
    try {
      list = await fs.readdir(d, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    for (const e of list) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else found.push(p);
    }
  };
  await walk(dir);
  return found;
}

/**
 * The journal is written ahead: a link's line is on disk (in the file, not
 * yet synced) before the link is unlinked. Synced once at the end.
 */
class Journal {
  private constructor(private readonly fd: number | undefined, private readonly layout: Layout) {}

  static open(file: string | undefined, layout: Layout): Journal {
    if (!file) return new Journal(undefined, layout);
    const fd = fsSync.openSync(file, 'a');
    const header: JournalHeader = { regsweep: 'journal', version: 1, root: layout.root, createdAt: new Date().toISOString() };
    fsSync.writeSync(fd, `${JSON.stringify(header)}\n`);
    return new Journal(fd, layout);
  }

  get enabled(): boolean {
    return this.fd !== undefined;
  }

  write(file: string, content: string): void {
    if (this.fd === undefined) return;
    const entry: JournalEntry = { path: path.relative(this.layout.root, file).split(path.sep).join('/'), content };
    fsSync.writeSync(this.fd, `${JSON.stringify(entry)}\n`);
  }

  /** Records every link below `dir` (v2.4 signature links too) before the directory goes; upload data is not kept. */
  async recordAll(dir: string): Promise<void> {
    if (this.fd === undefined) return;
    for (const file of await filesBelow(dir)) {
      if (path.basename(file) === 'link') this.write(file, fsSync.readFileSync(file, 'latin1'));
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    fsSync.fsyncSync(this.fd);
    fsSync.closeSync(this.fd);
  }
}

function codeOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
}

export const TRASH_PREFIX = '.regsweep-trash-';

/**
 * Takes directories out of the registry's tree. With a trash directory (beside
 * docker/, on the same filesystem) each removal is one rename: the registry
 * and garbage-collect see it gone at once, and the slow unlinking happens
 * after the maintenance window (emptyTrash). Measured here: 20,000 renames
 * 0.9 s against 4.0 s for unlink + rmdir.
 */
class Remover {
  private sequence = 0;
  private trashReady = false;

  constructor(
    private readonly journal: Journal,
    private readonly trash: string | undefined,
  ) {}

  /** A revision or index entry directory, which normally holds only its `link`. */
  async linkDirectory(dir: string): Promise<void> {
    if (this.journal.enabled) {
      let names: string[];
      try {
        names = fsSync.readdirSync(dir);
      } catch (error) {
        if (codeOf(error) === 'ENOENT') return; // gone already (by hand, or an earlier interrupted run)
        throw error;
      }
      // Anything besides the link (v2.4 signatures) is journaled link by link.
      if (names.length === 1 && names[0] === 'link') this.journal.write(path.join(dir, 'link'), fsSync.readFileSync(path.join(dir, 'link'), 'latin1'));
      else await this.journal.recordAll(dir);
    }
    if (this.toTrash(dir)) return;
    try {
      fsSync.unlinkSync(path.join(dir, 'link'));
      fsSync.rmdirSync(dir);
    } catch (error) {
      if (codeOf(error) === 'ENOENT') return;
      if (codeOf(error) !== 'ENOTEMPTY' && codeOf(error) !== 'EEXIST') throw error;
      fsSync.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** A tag directory or a repository's own directories. */
  async tree(dir: string): Promise<void> {
    await this.journal.recordAll(dir);
    if (!this.toTrash(dir)) fsSync.rmSync(dir, { recursive: true, force: true });
  }

  /** True when the directory was moved to the trash (or was already gone). */
  private toTrash(dir: string): boolean {
    if (!this.trash) return false;
    if (!this.trashReady) {
      fsSync.mkdirSync(this.trash, { recursive: true });
      this.trashReady = true;
    }
    try {
      fsSync.renameSync(dir, path.join(this.trash, String(this.sequence++)));
      return true;
    } catch (error) {
      if (codeOf(error) === 'ENOENT') return true;
      if (codeOf(error) === 'EXDEV') return false; // another filesystem: delete in place
      throw error;
    }
  }
}

/** Deletes the trash of this run and any left by an interrupted one. Never inside docker/registry/v2. */
export function emptyTrash(root: string): void {
  const base = new Layout(root).root;
  for (const name of fsSync.readdirSync(base)) {
    if (name.startsWith(TRASH_PREFIX)) fsSync.rmSync(path.join(base, name), { recursive: true, force: true });
  }
}

/** A fresh trash directory beside docker/ in the storage root. */
export function trashFor(root: string): string {
  return path.join(new Layout(root).root, `${TRASH_PREFIX}${process.pid}-${Date.now()}`);
}

/** Removes the repository's directory and its parents while they are empty, up to repositories/. */
function removeEmptyDirectories(layout: Layout, repository: string): void {
  const parts = repository.split('/');
  while (parts.length > 0) {
    try {
      fsSync.rmdirSync(layout.pathFor({ kind: 'repository', name: parts.join('/') }));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOENT') return;
      throw error;
    }
    parts.pop();
  }
}

function groupBy<T>(items: Iterable<T>, key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = groups.get(k);
    if (list) list.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

export async function applyPlan(root: string, plan: Plan, options: ApplyOptions = {}): Promise<ApplyResult> {
  const layout = new Layout(root);
  const result: ApplyResult = { repositories: [], tags: [], manifests: plannedManifests(), indexEntries: plannedIndexEntries(), skipped: [], paths: [] };
  let total = plan.repositories.length * 3 + plan.tags.filter((t) => t.reason !== 'repository-removed').length + plan.indexEntries.length;
  for (const m of plan.manifests) if (m.reason !== 'repository-removed') total++;
  const journal = Journal.open(options.journal, layout);
  const remover = new Remover(journal, options.trash);
  try {
    const remove = async (spec: PathSpec): Promise<void> => {
      options.signal?.throwIfAborted();
      const dir = layout.pathFor(spec);
      if (spec.kind === 'revisionDir' || spec.kind === 'tagIndexEntryDir') await remover.linkDirectory(dir);
      else await remover.tree(dir);
      result.paths.push(layout.relativePathFor(spec));
      options.onProgress?.({ phase: 'apply', done: result.paths.length, total, unit: 'removals' });
    };
    const entriesOf = groupBy(plan.indexEntries, (e) => e.repository);
    const manifestsOf = groupBy(plan.manifests, (m) => m.repository);
    const tagsOf = groupBy(plan.tags, (t) => t.repository);
    const repositoryRemovals = new Map(plan.repositories.map((r) => [r.repository, r]));
    // Every check before any removal, each repository read once.
    const changed = new Map<string, string>();
    for (const check of plan.checks) {
      const why = recheck(layout, check);
      if (why) changed.set(check.repository, why);
    }
    if (changed.size > 0 && options.onChange === 'abort') {
      throw new TreeChangedError(`the registry changed since the scan, nothing was removed (${[...changed].map(([r, why]) => `${r}: ${why}`).join('; ')})`);
    }
    for (const check of plan.checks) {
      const why = changed.get(check.repository);
      if (why) {
        result.skipped.push({ repository: check.repository, message: `not purged: ${why}` });
        continue;
      }
      const removal = repositoryRemovals.get(check.repository);
      if (removal) {
        // Only its own directories: repositories nested below it keep working.
        for (const kind of ['manifests', 'layers', 'uploads'] as const) await remove({ kind, name: removal.repository });
        removeEmptyDirectories(layout, removal.repository);
        result.repositories.push(removal);
        result.tags.push(...(tagsOf.get(check.repository) ?? []));
        for (const m of manifestsOf.get(check.repository) ?? []) result.manifests.push(m);
        continue;
      }
      for (const tag of tagsOf.get(check.repository) ?? []) {
        await remove({ kind: 'tag', name: tag.repository, tag: tag.tag });
        result.tags.push(tag);
      }
      for (const entry of entriesOf.get(check.repository) ?? []) {
        await remove({ kind: 'tagIndexEntryDir', name: entry.repository, tag: entry.tag, digest: entry.digest });
        result.indexEntries.push(entry);
      }
      for (const manifest of manifestsOf.get(check.repository) ?? []) {
        await remove({ kind: 'revisionDir', name: manifest.repository, digest: manifest.digest });
        result.manifests.push(manifest);
      }
    }
  } finally {
    journal.close();
  }
  return result;
}

export interface RestoreResult {
  restored: number;
  present: number;
  conflicts: string[];
}

/** Puts back every link a journal recorded that is missing now. Links that exist are left as they are. */
export async function restoreJournal(root: string, file: string): Promise<RestoreResult> {
  const layout = new Layout(root);
  const text = await fs.readFile(file, 'utf8');
  const result: RestoreResult = { restored: 0, present: 0, conflicts: [] };
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const entries: JournalEntry[] = [];
  for (const [i, line] of lines.entries()) {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Error(`${file}:${i + 1}: not a journal line`);
    }
    const v = value as Partial<JournalEntry & JournalHeader>;
    if (v.regsweep === 'journal') continue;
    if (typeof v.path !== 'string' || typeof v.content !== 'string') throw new Error(`${file}:${i + 1}: not a journal entry`);
    entries.push({ path: v.path, content: v.content });
  }
  for (const entry of entries) {
    const target = layout.resolveRelative(entry.path);
    let existing: string | undefined;
    try {
      existing = await fs.readFile(target, 'latin1');
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    if (existing === undefined) {
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.writeFile(target, entry.content, 'latin1');
      result.restored++;
    } else if (existing === entry.content) {
      result.present++;
    } else {
      result.conflicts.push(entry.path);
    }
  }
  return result;
}
