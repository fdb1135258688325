/**
 * The journal of a purge (JSON lines): every link file a run removes, written
 * before it is removed, so `--restore` can put the links back until
 * garbage-collect has swept what they named. In a quarantine (`--quarantine`)
 * it also records, for every directory moved there, where it came from, so
 * `--restore` can move it back, blobs included.
 *
 *   {"regsweep":"journal","version":2,"root":…,"createdAt":…,"quarantine":".regsweep-quarantine-…","until":…}
 *   {"path":"docker/registry/v2/repositories/app/_manifests/revisions/sha256/…/link","content":"sha256:…"}
 *   {"path":"docker/registry/v2/repositories/app/_manifests/revisions/sha256/…","movedTo":"3"}
 *
 * A journal without a quarantine is version 1 and holds link entries only.
 */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { JournalError, LayoutError } from '../errors.js';
import { isMissing } from '../util/errno.js';
import { Layout } from '../storage/layout.js';
import { appendWhole } from '../util/append.js';
import { failpoint } from '../util/failpoint.js';

/** A removed link file and its content. Paths are relative to the storage root, with '/' separators. */
interface LinkEntry {
  path: string;
  content: string;
}

/** A directory moved into the quarantine: `movedTo` is relative to the quarantine directory. */
interface MoveEntry {
  path: string;
  movedTo: string;
}

interface JournalHeader {
  regsweep: 'journal';
  version: 1 | 2;
  root: string;
  createdAt: string;
  /** Version 2: the quarantine's directory name in the storage root, and when it expires. */
  quarantine?: string;
  until?: string;
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
 * Written ahead: a link's line is in the files (not yet synced) before the
 * link is unlinked; a move's line right after the rename. Synced once at the
 * end. Without files it records nothing.
 */
export class Journal {
  private written = 0;

  private constructor(
    private readonly fds: number[],
    private readonly layout: Layout,
    /** Moves are journaled only into a quarantine: a trash is deleted after the window. */
    private readonly movesToo: boolean,
  ) {}

  static open(files: readonly string[], layout: Layout, quarantine?: { name: string; until: number }): Journal {
    const header: JournalHeader = { regsweep: 'journal', version: quarantine ? 2 : 1, root: layout.root, createdAt: new Date().toISOString() };
    if (quarantine) Object.assign(header, { quarantine: quarantine.name, until: new Date(quarantine.until).toISOString() });
    const fds: number[] = [];
    try {
      for (const file of files) {
        const fd = fsSync.openSync(file, 'a');
        fds.push(fd);
        appendWhole(fd, `${JSON.stringify(header)}\n`);
      }
    } catch (error) {
      for (const fd of fds) fsSync.closeSync(fd);
      throw error;
    }
    return new Journal(fds, layout, quarantine !== undefined);
  }

  get enabled(): boolean {
    return this.fds.length > 0;
  }

  /** Does moved() write anything? (Only into a quarantine.) */
  get recordsMoves(): boolean {
    return this.enabled && this.movesToo;
  }

  /** Entries written so far. */
  get entries(): number {
    return this.written;
  }

  private relative(file: string): string {
    return path.relative(this.layout.root, file).split(path.sep).join('/');
  }

  private line(entry: LinkEntry | MoveEntry): void {
    const text = `${JSON.stringify(entry)}\n`;
    for (const fd of this.fds) appendWhole(fd, text);
    failpoint('journal.line');
    this.written++;
  }

  write(file: string, content: string): void {
    if (this.enabled) this.line({ path: this.relative(file), content });
  }

  /** `dir` is now at `to` (relative, '/' separators) inside the quarantine. */
  moved(dir: string, to: string): void {
    if (this.recordsMoves) this.line({ path: this.relative(dir), movedTo: to });
  }

  /** Records every link below `dir` (v2.4 signature links too) before the directory goes; upload data is not kept. */
  async recordAll(dir: string): Promise<void> {
    if (!this.enabled) return;
    for (const file of await filesBelow(dir)) {
      if (path.basename(file) === 'link') this.write(file, fsSync.readFileSync(file, 'latin1'));
    }
  }

  close(): void {
    for (const fd of this.fds.splice(0)) {
      fsSync.fsyncSync(fd);
      fsSync.closeSync(fd);
    }
  }
}

/** A move as read back: where it belongs, and the quarantine its run's header named (a file several runs appended to has several). */
export interface ReadMove extends MoveEntry {
  target: string;
  quarantine?: { name: string; until?: string };
}

export interface ReadJournal {
  /** Links, each with the absolute path it belongs at. */
  links: Array<LinkEntry & { target: string }>;
  /** Moves in the order they were made. */
  moves: ReadMove[];
}

/** A quarantine-relative path that cannot leave the quarantine. */
function isInside(relative: string): boolean {
  return relative.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

type JournalLine = Partial<LinkEntry & MoveEntry & JournalHeader>;

/** One line's entry, with where it belongs in the tree; refuses (exit 2) anything that is not one. */
function entryOf(value: JournalLine, where: string, layout: Layout): { link: LinkEntry & { target: string } } | { move: MoveEntry & { target: string } } {
  const isLink = typeof value?.path === 'string' && typeof value.content === 'string';
  const isMove = typeof value?.path === 'string' && typeof value.movedTo === 'string' && isInside(value.movedTo);
  if (!isLink && !isMove) throw new JournalError(`${where}: not a journal entry`);
  let target: string;
  try {
    target = layout.resolveRelative(value.path as string);
  } catch (error) {
    if (error instanceof LayoutError) throw new JournalError(`${where}: ${error.message}`);
    throw error;
  }
  if (isLink) return { link: { path: value.path as string, content: value.content as string, target } };
  return { move: { path: value.path as string, movedTo: value.movedTo as string, target } };
}

/** The entries of a journal's text, each with where it points in the tree; refuses (exit 2) anything else. */
export function readJournal(text: string, file: string, layout: Layout): ReadJournal {
  const read: ReadJournal = { links: [], moves: [] };
  let header: JournalHeader | undefined;
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const where = `${file}:${i + 1}`;
    let value: JournalLine;
    try {
      value = JSON.parse(line);
    } catch {
      throw new JournalError(`${where}: not a journal line`);
    }
    if (value?.regsweep === 'journal') {
      header = value as JournalHeader;
      continue;
    }
    const entry = entryOf(value, where, layout);
    if ('link' in entry) read.links.push(entry.link);
    else read.moves.push({ ...entry.move, ...(typeof header?.quarantine === 'string' ? { quarantine: { name: header.quarantine, until: header.until } } : {}) });
  }
  return read;
}
