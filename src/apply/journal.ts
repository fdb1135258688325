/**
 * The journal of a purge: every link file a run removes, written (JSON lines)
 * before it is removed, so `--restore` can put the links back until
 * garbage-collect has swept what they named.
 */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { JournalError, LayoutError } from '../errors.js';
import { errnoText, isMissing } from '../util/errno.js';
import { Layout } from '../storage/layout.js';

interface JournalEntry {
  /** Relative to the storage root, with '/' separators. */
  path: string;
  content: string;
}

interface JournalHeader {
  regsweep: 'journal';
  version: 1;
  root: string;
  createdAt: string;
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
 * Written ahead: a link's line is in the file (not yet synced) before the
 * link is unlinked. Synced once at the end. Without a file it records nothing.
 */
export class Journal {
  private constructor(
    private readonly fd: number | undefined,
    private readonly layout: Layout,
  ) {}

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

export interface RestoreResult {
  restored: number;
  present: number;
  conflicts: string[];
}

/** The entries of a journal file, each with where it points in the tree; refuses (exit 2) anything else. */
function readJournal(text: string, file: string, layout: Layout): Array<JournalEntry & { target: string }> {
  const entries: Array<JournalEntry & { target: string }> = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const where = `${file}:${i + 1}`;
    let value: Partial<JournalEntry & JournalHeader>;
    try {
      value = JSON.parse(line);
    } catch {
      throw new JournalError(`${where}: not a journal line`);
    }
    if (value?.regsweep === 'journal') continue;
    if (typeof value?.path !== 'string' || typeof value.content !== 'string') throw new JournalError(`${where}: not a journal entry`);
    try {
      entries.push({ path: value.path, content: value.content, target: layout.resolveRelative(value.path) });
    } catch (error) {
      if (error instanceof LayoutError) throw new JournalError(`${where}: ${error.message}`);
      throw error;
    }
  }
  return entries;
}

/**
 * Puts back every link a journal recorded that is missing now. Links that
 * exist are left as they are. The whole journal is read and checked first, so
 * a bad line changes nothing.
 */
export async function restoreJournal(root: string, file: string): Promise<RestoreResult> {
  const layout = new Layout(root);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new JournalError(`cannot read journal ${file}: ${errnoText(error)}`);
  }
  const entries = readJournal(text, file, layout);
  const result: RestoreResult = { restored: 0, present: 0, conflicts: [] };
  for (const entry of entries) {
    let existing: string | undefined;
    try {
      existing = await fs.readFile(entry.target, 'latin1');
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    if (existing === undefined) {
      await fs.mkdir(path.dirname(entry.target), { recursive: true });
      await fs.writeFile(entry.target, entry.content, 'latin1');
      result.restored++;
    } else if (existing === entry.content) {
      result.present++;
    } else {
      result.conflicts.push(entry.path);
    }
  }
  return result;
}
