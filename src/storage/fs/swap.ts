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
 * and marked done after; a run that dies halfway leaves a swap without its
 * done line, and whoever brings the registry back (the watchdog, the next run)
 * undoes it with undoSwaps before the registry serves again: every entry goes
 * back, which at worst sweeps less. The announcement is on disk (fdatasync)
 * before the rename it announces, so a power loss cannot keep the rename and
 * lose the line: the swaps a run may make are announced together before its
 * window, in one write and one sync, each with an aside name of its own (a
 * swap announced and never made is undone as nothing). A done line needs no
 * sync: lost, it only makes a recovery put back what the swap took.
 *
 * Where the entries that stay are each a directory of one file (a blob's
 * `data`, a revision's `link`), the spare is filled before the window with a
 * twin of each: a new directory holding a hard link to that same file. The
 * swap then costs two renames, whatever the directory keeps; an entry without
 * a twin (of another shape, or new since) is still renamed back. A twin is the
 * entry (same inode, same bytes, same mtime), so a swap undone halfway leaves
 * the original aside where its twin stands, and nothing is lost.
 */
import fs from 'node:fs';
import path from 'node:path';
import { appendWhole } from '../../util/append.js';
import { errnoOf, isMissing, isNoSpace, isNotEmpty } from '../../util/errno.js';
import { failpoint } from '../../util/failpoint.js';

/** The swap log, in the trash: `swap <aside> <origin>` before each swap, `done <aside>` after (JSON strings, one per line). */
const LOG = 'swaps.jsonl';

/** Swapping pays when the directory loses this many more entries than it keeps (and this process can give the new one its owner). */
export const WORTH = 8;

/**
 * Twins a run makes at most: each holds its name in memory until the swap
 * (about a hundred bytes), so a tree of millions keeps some 3 MiB of them and
 * renames the rest back in the window as before. The bench's medium tree
 * keeps about 13,000 entries in the directories it swaps.
 */
const MAX_TWINS = 30_000;

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

/** Room to spare for twins: inodes and blocks beyond what `count` directories take, so filling a spare never takes the room a run needs. */
function roomForTwins(where: string, count: number): boolean {
  try {
    const s = fs.statfsSync(where);
    // Some filesystems (btrfs) count no inodes: files 0.
    const inodes = s.files === 0 || s.ffree >= 4 * count + 10_000;
    return inodes && s.bavail * s.bsize >= count * 8192 + 256 * 2 ** 20;
  } catch {
    return false;
  }
}

/** The one file `leaf` of directory `entry`, when that is all it holds and a regular file: a twin can be made of it. */
function soleFile(entry: string, leaf: string): boolean {
  try {
    const inside = fs.readdirSync(entry, { withFileTypes: true });
    return inside.length === 1 && inside[0]?.name === leaf && inside[0].isFile();
  } catch {
    return false;
  }
}

/** A spare filled before the window: the names it holds a twin of. */
interface Twinned {
  spare: string;
  twins: Set<string>;
  like: string;
}

/** Owner and mode: what a spare directory must share with the one it replaces. */
function likeness(stat: fs.Stats): string {
  return `${stat.uid}:${stat.gid}:${stat.mode & 0o7777}`;
}

/** The swap log of one trash, opened on the first swap; the caller closes it. */
export class SwapLog {
  private fd: number | undefined;
  /** Empty directories made in the trash, by likeness: a rename into place costs less than a mkdir in the window. */
  private readonly spares = new Map<string, string[]>();
  /** Spares filled with twins of what each directory keeps, by the directory. */
  private readonly twinned = new Map<string, Twinned>();
  private made = 0;
  /** Twins this log may still make. */
  private twinBudget: number;
  /** A line could not be written (a full disk): no more swaps, every entry goes on its own. */
  private broken = false;

  /** Asides announced (on disk) for the directories that may be swapped: origin → aside. */
  private readonly announced = new Map<string, string>();
  /** Aside names given out (asideFor) for swaps not announced before: origin → aside. */
  private readonly reserved = new Map<string, string>();
  private asides = 0;

  constructor(
    private readonly trash: string,
    maxTwins = MAX_TWINS,
  ) {
    this.twinBudget = maxTwins;
  }

  /**
   * Before the window: announces swaps of `dirs`, each to an aside of its own,
   * in one write made durable at once. False with nothing announced where the
   * log finds no room (then those directories go entry by entry).
   */
  announce(dirs: readonly string[]): boolean {
    const fresh = dirs.filter((dir) => !this.announced.has(dir));
    if (fresh.length === 0) return true;
    const pairs = fresh.map((dir) => [path.join(this.trash, `aside-${this.asides++}`), dir] as const);
    if (!this.append(pairs.map(([aside, dir]) => `${JSON.stringify(['swap', aside, dir])}\n`).join(''), true)) return false;
    for (const [aside, dir] of pairs) this.announced.set(dir, aside);
    failpoint('swap.announced');
    return true;
  }

  /** Before the window: up to `count` spare directories in the trash like `template` (owner and mode); fewer on a full disk. */
  prepareSpares(template: string, count: number): void {
    const stat = fs.statSync(template, { throwIfNoEntry: false });
    if (!stat || !canRecreate(stat)) return;
    try {
      fs.mkdirSync(this.trash, { recursive: true });
    } catch (error) {
      if (isNoSpace(error)) return;
      throw error;
    }
    for (let i = 0; i < count && this.makeSpare(stat); i++);
  }

  /**
   * Before the window: a spare for `dir` holding a twin of each entry that
   * `keeps` names and that is a directory of the one regular file `leaf`. Fewer
   * twins where the filesystem has no ample room or takes no hard link, none
   * once the run made MAX_TWINS (then the entries without one are renamed back
   * in the window). False when no spare was made.
   */
  prepareTwins(dir: string, keeps: (name: string) => boolean, leaf: string): boolean {
    const stat = fs.statSync(dir, { throwIfNoEntry: false });
    if (!stat || !canRecreate(stat)) return false;
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter(keeps);
    } catch {
      return false;
    }
    if (names.length > this.twinBudget || !roomForTwins(this.trash, names.length) || !this.makeSpare(stat)) return false;
    this.twinBudget -= names.length;
    const spare = this.spares.get(likeness(stat))?.pop() as string;
    const twins = new Set<string>();
    this.twinned.set(dir, { spare, twins, like: likeness(stat) });
    for (const name of names) {
      const entry = `${dir}${path.sep}${name}`;
      if (!soleFile(entry, leaf)) continue;
      const twin = `${spare}${path.sep}${name}`;
      try {
        makeLike(twin, fs.statSync(entry));
        fs.linkSync(`${entry}${path.sep}${leaf}`, `${twin}${path.sep}${leaf}`);
      } catch {
        // Gone meanwhile, no room, no hard links here: renamed back in the window instead.
        fs.rmSync(twin, { recursive: true, force: true });
        if (!fs.existsSync(entry)) continue;
        break;
      }
      twins.add(name);
    }
    return true;
  }

  /** One more spare like `stat`; false when there is no room for it. */
  private makeSpare(stat: fs.Stats): boolean {
    const spare = path.join(this.trash, `spare-${this.made++}`);
    try {
      makeLike(spare, stat);
    } catch (error) {
      if (!isNoSpace(error)) throw error;
      fs.rmSync(spare, { recursive: true, force: true });
      return false;
    }
    const list = this.spares.get(likeness(stat)) ?? [];
    this.spares.set(likeness(stat), list);
    list.push(spare);
    return true;
  }

  /** The directory that takes a swapped one's place, made before the swap begins; undefined when none can be made. */
  private spareLike(stat: fs.Stats): string | undefined {
    const list = this.spares.get(likeness(stat));
    if (list?.length) return list.pop();
    return this.makeSpare(stat) ? this.spares.get(likeness(stat))?.pop() : undefined;
  }

  /** The spare filled for `dir` before the window, if its owner and mode still match. */
  private filledFor(dir: string, stat: fs.Stats): Twinned | undefined {
    const filled = this.twinned.get(dir);
    this.twinned.delete(dir);
    return filled?.like === likeness(stat) ? filled : undefined;
  }

  /** Appends a whole line, or nothing (then the log takes no more swaps). */
  private line(entry: unknown[], durable = false): boolean {
    return this.append(`${JSON.stringify(entry)}\n`, durable);
  }

  /** Appends whole lines, on disk before this returns when `durable`; false, with nothing appended, when there is no room. */
  private append(text: string, durable = false): boolean {
    if (this.broken) return false;
    try {
      this.fd ??= fs.openSync(path.join(this.trash, LOG), 'a');
      appendWhole(this.fd, text);
      if (durable) fs.fdatasyncSync(this.fd);
      return true;
    } catch (error) {
      if (!isNoSpace(error)) throw error;
      this.broken = true;
      return false;
    }
  }

  /**
   * The name in the trash that a swap of `dir` moves it to: what a quarantine
   * journals before the swap, so a run killed in it leaves nothing unrecorded.
   */
  asideFor(dir: string): string {
    let aside = this.announced.get(dir) ?? this.reserved.get(dir);
    if (aside === undefined) this.reserved.set(dir, (aside = path.join(this.trash, `aside-${this.asides++}`)));
    return path.basename(aside);
  }

  /**
   * Moves `dir` (whose stat worthSwapping gave) aside into the trash and
   * every entry of `keep` back into a new `dir`; returns the aside's name in
   * the trash. Undefined, with nothing moved, when the swap cannot be made
   * safely here: no room for the new directory or for the log line, or `dir`
   * on another filesystem than the trash. A failure halfway puts everything
   * back before it is thrown. The caller journals what went.
   */
  swapOut(dir: string, stat: fs.Stats, keep: Iterable<string>): string | undefined {
    // Made first: between the two renames nothing may need room.
    const filled = this.filledFor(dir, stat);
    const spare = filled?.spare ?? this.spareLike(stat);
    if (spare === undefined) return undefined;
    const twins = filled?.twins ?? new Set<string>();
    const kept = new Set(keep);
    // Twins of entries gone since they were made leave the spare before it takes the place.
    for (const name of twins) {
      if (kept.has(name)) continue;
      fs.rmSync(`${spare}${path.sep}${name}`, { recursive: true, force: true });
      twins.delete(name);
    }
    const aside = path.join(this.trash, this.asideFor(dir));
    this.reserved.delete(dir);
    // Announced before the window as a rule; one that was not is announced now, on disk before the rename.
    if (!this.announced.delete(dir) && !this.line(['swap', aside, dir], true)) return undefined;
    try {
      fs.renameSync(dir, aside);
      failpoint('swap.aside');
    } catch (error) {
      this.done(aside);
      if (errnoOf(error) === 'EXDEV') return undefined;
      throw error;
    }
    try {
      fs.renameSync(spare, dir);
      failpoint('swap.spareInPlace');
      for (const name of kept) {
        if (twins.has(name)) continue;
        fs.renameSync(`${aside}${path.sep}${name}`, `${dir}${path.sep}${name}`);
        failpoint('swap.keptBack');
      }
    } catch (error) {
      undoOne(aside, dir);
      this.done(aside);
      throw error;
    }
    this.done(aside);
    failpoint('swap.done');
    return path.basename(aside);
  }

  /** Ends a line a dying run cut short, so what follows is read on its own. */
  cutShort(): void {
    this.append('\n');
  }

  /**
   * The swap to `aside` is finished (or undone): nothing to put back. A done
   * line that finds no room leaves the swap open in the log, which only makes
   * a recovery put back what it took: it sweeps less, never more.
   */
  done(aside: string): void {
    this.line(['done', aside]);
  }

  /** Closes the log, its done lines on disk: the trash may be emptied after this. */
  close(): void {
    if (this.fd !== undefined) {
      fs.fdatasyncSync(this.fd);
      fs.closeSync(this.fd);
    }
    this.fd = undefined;
  }
}

/**
 * Puts a swapped directory back: whole by one rename where its place is free
 * or holds an empty directory (no room needed, also on a full disk), else
 * every entry of the aside directory its origin lacks.
 */
function undoOne(aside: string, origin: string): boolean {
  try {
    fs.renameSync(aside, origin);
    return true;
  } catch (error) {
    if (isMissing(error)) return false; // announced, never made: the run died (or ended) before moving the directory aside
    if (!isNotEmpty(error)) throw error;
  }
  for (const name of fs.readdirSync(aside)) {
    try {
      fs.renameSync(path.join(aside, name), path.join(origin, name));
    } catch (error) {
      // Already back (moved back before the run died), or there again: leave it.
      if (!isNotEmpty(error)) throw error;
    }
  }
  return true;
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
 * trash), and marks them done. Returns how many it put back (an announced
 * swap never made has nothing to put back).
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
  let undone = 0;
  try {
    if (!text.endsWith('\n')) log.cutShort();
    for (const [aside, origin] of open) {
      if (undoOne(aside, origin)) undone++;
      log.done(aside);
    }
  } finally {
    log.close();
  }
  return undone;
}
