/**
 * `--restore`: puts back what a run removed, from its journal. Directories
 * the run moved into a quarantine (revisions, tag history, tags, a
 * repository's own directories, swept blobs and their `_layers` links) are
 * moved back, one rename each, mtimes and all; links the journal recorded
 * that are still missing are written from their recorded content. Nothing
 * that exists is ever overwritten: a link with other content is a conflict,
 * and a directory that exists again gets back only the files it lacks.
 */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { JournalError } from '../errors.js';
import { Layout } from '../storage/layout.js';
import { errnoText, isMissing } from '../util/errno.js';
import { type ReadMove, readJournal } from './journal.js';
import { QUARANTINE_JOURNAL, quarantineExpiry } from './trash.js';

export interface RestoreResult {
  /** Links written back from the content the journal recorded. */
  restored: number;
  /** Directories moved back from the quarantine (whole, or the files a directory that exists again lacked). */
  moved: number;
  /** Entries already in place. */
  present: number;
  /** Paths that exist with other content: left as they are. */
  conflicts: string[];
  /** Directories the journal says were moved into the quarantine that are in neither the quarantine nor the tree. */
  missing: string[];
}

function exists(p: string): boolean {
  try {
    fsSync.lstatSync(p);
    return true;
  } catch (error) {
    if (isMissing(error)) return false;
    throw error;
  }
}

/** Every file below `dir`, relative to it. */
function filesBelow(dir: string, prefix = ''): string[] {
  const found: string[] = [];
  for (const e of fsSync.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix === '' ? e.name : path.join(prefix, e.name);
    if (e.isDirectory()) found.push(...filesBelow(path.join(dir, e.name), rel));
    else found.push(rel);
  }
  return found;
}

/**
 * Moves into `target`, which exists again, each file of `source` it lacks.
 * A link with other content is a conflict; other files (blob or upload data,
 * named by their digest or upload) count as present.
 */
function merge(source: string, target: string, layout: Layout, result: RestoreResult): boolean {
  let moved = false;
  for (const rel of filesBelow(source)) {
    const from = path.join(source, rel);
    const to = path.join(target, rel);
    if (!exists(to)) {
      fsSync.mkdirSync(path.dirname(to), { recursive: true });
      fsSync.renameSync(from, to);
      moved = true;
    } else if (path.basename(rel) === 'link' && fsSync.readFileSync(to, 'latin1') !== fsSync.readFileSync(from, 'latin1')) {
      result.conflicts.push(path.relative(layout.root, to).split(path.sep).join('/'));
    }
  }
  return moved;
}

/** One directory back from the quarantine into the tree. */
function putBack(move: ReadMove, source: string, layout: Layout, result: RestoreResult): void {
  if (!exists(source)) {
    if (exists(move.target)) result.present++;
    else result.missing.push(move.path);
    return;
  }
  if (!exists(move.target)) {
    fsSync.mkdirSync(path.dirname(move.target), { recursive: true });
    fsSync.renameSync(source, move.target);
    result.moved++;
  } else if (merge(source, move.target, layout, result)) {
    result.moved++;
  } else {
    result.present++;
  }
}

/**
 * Where each move's directory is now: in the quarantine given, else in the
 * one its run's header names. Refuses (exit 2, nothing changed) when a
 * quarantine is gone.
 */
function sourcesOf(moves: readonly ReadMove[], layout: Layout, file: string, quarantine: string | undefined): string[] {
  const checked = new Set<string>();
  return moves.map((move) => {
    let dir = quarantine;
    if (!dir) {
      const name = move.quarantine?.name;
      if (!name || name !== path.basename(name) || quarantineExpiry(name) === undefined) throw new JournalError(`${file}: a moved directory with no quarantine named in the journal`);
      dir = path.join(layout.root, name);
    }
    if (!checked.has(dir)) {
      if (!exists(dir)) {
        const until = move.quarantine?.until ? ` (it expired at ${move.quarantine.until})` : '';
        throw new JournalError(`the quarantine ${dir} is gone${until}: nothing was restored`);
      }
      checked.add(dir);
    }
    return path.join(dir, ...move.movedTo.split('/'));
  });
}

/** The journal's file and, when `from` is a quarantine directory, that directory. */
async function journalAt(from: string): Promise<{ file: string; quarantine?: string }> {
  try {
    if ((await fs.stat(from)).isDirectory()) return { file: path.join(from, QUARANTINE_JOURNAL), quarantine: path.resolve(from) };
  } catch (error) {
    const until = quarantineExpiry(from);
    if (isMissing(error) && until !== undefined) throw new JournalError(`the quarantine ${from} is gone (it expired at ${new Date(until).toISOString()}): nothing was restored`);
    // Anything else is reported as a journal that cannot be read.
  }
  return { file: from };
}

/** True when `file` lies below one of `dirs`: a link a moved directory brought back. */
function below(file: string, dirs: ReadonlySet<string>): boolean {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) if (dirs.has(dir)) return true;
  return false;
}

/**
 * Puts back what a journal (a file, or a quarantine directory holding one)
 * recorded: the moved directories from the quarantine, newest first, then
 * every recorded link that is missing still. The whole journal is read and
 * checked first, and every quarantine it needs must exist, so a bad line or
 * a quarantine that expired changes nothing.
 */
export async function restoreJournal(root: string, from: string): Promise<RestoreResult> {
  const layout = new Layout(root);
  const { file, quarantine } = await journalAt(from);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new JournalError(`cannot read journal ${file}: ${errnoText(error)}`);
  }
  const { links, moves } = readJournal(text, file, layout);
  const sources = sourcesOf(moves, layout, file, quarantine);
  const result: RestoreResult = { restored: 0, moved: 0, present: 0, conflicts: [], missing: [] };
  for (let i = moves.length - 1; i >= 0; i--) putBack(moves[i] as ReadMove, sources[i] as string, layout, result);
  const movedBack = new Set(moves.map((m) => m.target));
  for (const entry of links) {
    let existing: string | undefined;
    try {
      existing = await fs.readFile(entry.target, 'latin1');
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    const covered = below(entry.target, movedBack);
    if (existing === undefined) {
      await fs.mkdir(path.dirname(entry.target), { recursive: true });
      await fs.writeFile(entry.target, entry.content, 'latin1');
      result.restored++;
    } else if (covered) {
      continue; // its directory was moved back, or counted as present or a conflict
    } else if (existing === entry.content) {
      result.present++;
    } else {
      result.conflicts.push(entry.path);
    }
  }
  return result;
}
