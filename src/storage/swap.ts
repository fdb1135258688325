/**
 * Taking many entries out of one directory in few metadata operations: the
 * directory goes aside into the trash whole (one rename), a new one takes its
 * place with the same owner and mode, and only the entries that stay are
 * renamed back. Where a directory keeps few entries and loses many (a blob
 * prefix directory, a repository's revisions), that is a fraction of one
 * rename per removed entry, inside the window where every operation counts.
 *
 * Between the first rename and the last, the entries that stay are not where
 * the registry looks. So each swap is announced first in the trash's swap log
 * (one line appended to an open file: no directory operation) and marked done
 * after; a run that dies halfway leaves a swap without its done line, and
 * whoever brings the registry back (the watchdog, the next run) undoes it with
 * undoSwaps before the registry serves again: every entry goes back, which at
 * worst sweeps less.
 */
import fs from 'node:fs';
import path from 'node:path';
import { errnoOf, isMissing } from '../util/errno.js';

/** The swap log, in the trash: `swap <aside> <origin>` before each swap, `done <aside>` after (JSON strings, one per line). */
const LOG = 'swaps.jsonl';

/** Swapping pays when the directory loses this many more entries than it keeps (and this process can give the new one its owner). */
export const WORTH = 8;

/** Can this process give a new directory the owner and mode of `stat`? */
function canRecreate(stat: fs.Stats): boolean {
  const uid = process.getuid?.();
  return uid === 0 || uid === stat.uid;
}

/** The `removing` entries of `dir`, which holds `total`, should go by a swap: its stat, for swapOut; else undefined. */
export function worthSwapping(dir: string, total: number, removing: number): fs.Stats | undefined {
  if (removing - (total - removing) < WORTH) return undefined;
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  return stat !== undefined && canRecreate(stat) ? stat : undefined;
}

/** A new directory at `dir` with the owner and mode of `stat`, touched only where mkdir did not already give them. */
function makeLike(dir: string, stat: fs.Stats): void {
  const mode = stat.mode & 0o7777;
  fs.mkdirSync(dir, { mode });
  const made = fs.statSync(dir);
  if (made.uid !== stat.uid || made.gid !== stat.gid) fs.chownSync(dir, stat.uid, stat.gid);
  if ((made.mode & 0o7777) !== mode) fs.chmodSync(dir, mode);
}

/** Owner and mode: what a spare directory must share with the one it replaces. */
function likeness(stat: fs.Stats): string {
  return `${stat.uid}:${stat.gid}:${stat.mode & 0o7777}`;
}

/** The swap log of one trash, opened on the first swap; the caller closes it. */
export class SwapLog {
  private fd: number | undefined;
  /** Empty directories made before the window, by likeness: a rename into place costs less than a mkdir in it. */
  private readonly spares = new Map<string, string[]>();
  private made = 0;

  constructor(private readonly trash: string) {}

  /** Before the window: `count` spare directories in the trash like `template` (owner and mode). */
  prepareSpares(template: string, count: number): void {
    fs.mkdirSync(this.trash, { recursive: true });
    const stat = fs.statSync(template, { throwIfNoEntry: false });
    if (!stat || !canRecreate(stat)) return;
    const list = this.spares.get(likeness(stat)) ?? [];
    this.spares.set(likeness(stat), list);
    for (let i = 0; i < count; i++) {
      const spare = path.join(this.trash, `spare-${this.made++}`);
      makeLike(spare, stat);
      list.push(spare);
    }
  }

  /** A new directory at `dir` like `stat`: a spare renamed into place, else a mkdir. */
  private recreate(dir: string, stat: fs.Stats): void {
    const spare = this.spares.get(likeness(stat))?.pop();
    if (spare === undefined) return makeLike(dir, stat);
    fs.renameSync(spare, dir);
  }

  private append(text: string): void {
    this.fd ??= fs.openSync(path.join(this.trash, LOG), 'a');
    fs.writeSync(this.fd, text);
  }

  private line(entry: unknown[]): void {
    this.append(`${JSON.stringify(entry)}\n`);
  }

  /**
   * Moves `dir` (whose stat worthSwapping gave) to `aside` (a path in the
   * trash, which must not exist) and every entry of `keep` back into a new
   * `dir`. The caller journals what went.
   */
  swapOut(dir: string, stat: fs.Stats, aside: string, keep: Iterable<string>): void {
    this.line(['swap', aside, dir]);
    fs.renameSync(dir, aside);
    this.recreate(dir, stat);
    for (const name of keep) fs.renameSync(`${aside}${path.sep}${name}`, `${dir}${path.sep}${name}`);
    this.done(aside);
  }

  /** Ends a line a dying run cut short, so what follows is read on its own. */
  cutShort(): void {
    this.append('\n');
  }

  /** The swap to `aside` is finished (or undone): nothing to put back. */
  done(aside: string): void {
    this.line(['done', aside]);
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Moves back every entry of an aside directory its origin lacks. */
function undoOne(aside: string, origin: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(aside);
  } catch (error) {
    if (isMissing(error)) return; // the run died before moving the directory aside
    throw error;
  }
  fs.mkdirSync(origin, { recursive: true });
  for (const name of names) {
    try {
      fs.renameSync(path.join(aside, name), path.join(origin, name));
    } catch (error) {
      // Already back (moved back before the run died), or there again: leave it.
      if (errnoOf(error) !== 'EEXIST' && errnoOf(error) !== 'ENOTEMPTY') throw error;
    }
  }
}

/** A line of the log, or undefined for one cut short by a dying run (never acted on: the rename comes after it). */
function parseLine(line: string): [string, string, string?] | undefined {
  try {
    return JSON.parse(line) as [string, string, string?];
  } catch {
    return undefined;
  }
}

/** The swaps of a log that have no done line: aside → origin. */
function unfinished(text: string): Map<string, string> {
  const open = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [what, aside, origin] = parseLine(line) ?? [];
    if (what === 'swap' && aside !== undefined && origin !== undefined) open.set(aside, origin);
    else if (what === 'done' && aside !== undefined) open.delete(aside);
  }
  return open;
}

/**
 * Undoes the swaps a dead run left half-done in its trash (its lock names the
 * trash), and marks them done. Returns how many it undid.
 */
export function undoSwaps(trash: string | undefined): number {
  if (!trash) return 0;
  let text: string;
  try {
    text = fs.readFileSync(path.join(trash, LOG), 'utf8');
  } catch (error) {
    if (isMissing(error)) return 0;
    throw error;
  }
  const open = unfinished(text);
  if (open.size === 0) return 0;
  const log = new SwapLog(trash);
  try {
    if (!text.endsWith('\n')) log.cutShort();
    for (const [aside, origin] of open) {
      undoOne(aside, origin);
      log.done(aside);
    }
  } finally {
    log.close();
  }
  return open.size;
}
