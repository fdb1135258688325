/**
 * Taking directories out of the registry's tree. With a trash directory
 * (beside docker/, on the same filesystem, so invisible to the registry and
 * garbage-collect) each removal is one rename: the registry and
 * garbage-collect see it gone at once, and the slow unlinking happens after
 * the maintenance window (emptyTrash). Measured here: 20,000 renames 0.9 s
 * against 4.0 s for unlink + rmdir.
 *
 * A quarantine (`--quarantine`) is a trash that runs keep until the expiry its
 * name carries, with a journal inside saying where each directory came from,
 * so `--restore` can move it back.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Layout } from '../storage/layout.js';
import { names } from '../storage/read.js';
import { SwapLog, worthSwapping } from '../storage/swap.js';
import { errnoOf, isNotEmpty } from '../util/errno.js';
import { fastGlob } from '../util/lazy.js';
import { Journal } from './journal.js';

const TRASH_PREFIX = '.regsweep-trash-';
const QUARANTINE_PREFIX = '.regsweep-quarantine-';
/** `.regsweep-quarantine-<expiry, ms since the epoch>-<pid>` */
const QUARANTINE_RE = /^\.regsweep-quarantine-(\d{1,15})-(\d+)$/;
/** The journal every quarantine holds. */
export const QUARANTINE_JOURNAL = 'journal.jsonl';
/** Where the builtin sweep's blob directories and `_layers` links go inside a trash. */
const SWEPT = 'swept';

/**
 * A fresh trash directory beside docker/ in the storage root; with `keepMs`, a
 * quarantine that expires that long from now.
 */
export function trashFor(root: string, keepMs?: number, now = Date.now()): string {
  const name = keepMs === undefined ? `${TRASH_PREFIX}${process.pid}-${now}` : `${QUARANTINE_PREFIX}${now + keepMs}-${process.pid}`;
  return path.join(new Layout(root).root, name);
}

/** When the quarantine named `dir` expires (ms since the epoch), or undefined when `dir` is not named as one. */
export function quarantineExpiry(dir: string): number | undefined {
  const match = QUARANTINE_RE.exec(path.basename(dir));
  return match ? Number(match[1]) : undefined;
}

/** The directories directly in the storage root whose names start with `prefix`. */
function rootEntries(base: string, prefix: string): string[] {
  return fastGlob().sync(`${prefix}*`, { cwd: base, onlyDirectories: true, dot: true, deep: 1, absolute: true });
}

/**
 * Deletes the trash of this run and any left by an interrupted one, and every
 * quarantine that has expired; unexpired quarantines stay. Never inside
 * docker/registry/v2. Returns the quarantines it deleted.
 */
export function emptyTrash(root: string, now = Date.now()): string[] {
  const base = new Layout(root).root;
  for (const dir of rootEntries(base, TRASH_PREFIX)) fs.rmSync(dir, { recursive: true, force: true });
  const expired = rootEntries(base, QUARANTINE_PREFIX).filter((dir) => (quarantineExpiry(dir) ?? Infinity) <= now);
  for (const dir of expired) fs.rmSync(dir, { recursive: true, force: true });
  return expired;
}

export interface RemoverOptions {
  /** Files to journal every removed link to (JSON lines). */
  journals?: string[];
  /** Move removals here (trashFor) and delete them later with emptyTrash. */
  trash?: string;
}

/**
 * Journals and removes directories, into the trash when there is one. In a
 * quarantine it also journals where each directory went, and keeps a journal
 * of its own.
 */
export class Remover {
  private sequence = 0;
  private trashReady = false;
  private sweptReady = false;

  /** Swaps go only into a trash, announced in its log. */
  private readonly swaps: SwapLog | undefined;

  private constructor(
    private readonly journal: Journal,
    private readonly trash: string | undefined,
  ) {
    this.swaps = trash === undefined ? undefined : new SwapLog(trash);
  }

  /** Opens the journals; the caller closes them with close(). */
  static open(root: string, options: RemoverOptions): Remover {
    const { trash } = options;
    const until = trash === undefined ? undefined : quarantineExpiry(trash);
    const files = [...(options.journals ?? [])];
    let quarantine: { name: string; until: number } | undefined;
    if (trash !== undefined && until !== undefined) {
      fs.mkdirSync(trash, { recursive: true });
      files.unshift(path.join(trash, QUARANTINE_JOURNAL));
      quarantine = { name: path.basename(trash), until };
    }
    const remover = new Remover(Journal.open(files, new Layout(root), quarantine), trash);
    remover.trashReady = quarantine !== undefined;
    return remover;
  }

  /** Entries journaled so far (links and moves). */
  get entries(): number {
    return this.journal.entries;
  }

  close(): void {
    this.swaps?.close();
    this.journal.close();
  }

  /** A revision or index entry directory, which normally holds only its `link`. */
  async linkDirectory(dir: string): Promise<void> {
    if (this.journal.enabled && !(await this.journalLinks(dir))) return;
    if (this.toTrash(dir)) return;
    try {
      fs.unlinkSync(path.join(dir, 'link'));
      fs.rmdirSync(dir);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return;
      if (!isNotEmpty(error)) throw error;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** A tag directory or a repository's own directories. */
  async tree(dir: string): Promise<void> {
    await this.journal.recordAll(dir);
    if (!this.toTrash(dir)) fs.rmSync(dir, { recursive: true, force: true });
  }

  /**
   * A swept blob's directory or a `_layers` link directory: one rename into
   * the trash's `swept/`. False when it was gone already.
   */
  sweep(dir: string): boolean {
    return this.move(dir, this.sweptSlot()) === 'moved';
  }

  /**
   * Before the window: empty directories like `template` for about `count`
   * swaps (storage/swap.ts), so that each costs a rename instead of a mkdir
   * inside it. Only into a trash.
   */
  prepareSwaps(template: string, count: number): void {
    if (!this.swaps || count <= 0) return;
    this.swaps.prepareSpares(template, count); // makes the trash
    this.trashReady = true;
  }

  /**
   * A `_layers` link directory of a swept blob, after the window while the
   * registry serves: one rename, never a swap (that would hide the kept links
   * for a moment). Left, or put back, when `needed` says the blob was pushed
   * again meanwhile. False when it stays.
   */
  sweepUnless(dir: string, needed: () => boolean): boolean {
    if (needed()) return false;
    const slot = this.sweptSlot();
    if (this.renameInto(dir, slot) !== 'moved') return false;
    if (needed()) {
      try {
        fs.renameSync(path.join(this.trash as string, ...slot.split('/')), dir);
      } catch (error) {
        // The push wrote the link again meanwhile: what it wrote stays.
        if (errnoOf(error) !== 'EEXIST' && !isNotEmpty(error)) throw error;
      }
      return false;
    }
    this.journal.moved(dir, slot);
    return true;
  }

  /**
   * The entries of `parent` that `removing` names: revision directories
   * (`links`, journaled as linkDirectory does) or swept blob and `_layers`
   * directories. When the directory loses many more entries than it keeps,
   * it goes aside whole and the kept ones come back (storage/swap.ts): a
   * fraction of the renames. Returns the names taken out.
   */
  async takeEntries(parent: string, removing: (name: string) => boolean, kind: 'links' | 'swept'): Promise<string[]> {
    const present = names(parent);
    const taken = present.filter(removing);
    const stat = taken.length > 0 && this.swaps ? worthSwapping(parent, present.length, taken.length) : undefined;
    if (!stat || !this.swaps) return this.oneByOne(parent, taken, kind);
    if (kind === 'links' && this.journal.enabled) for (const name of taken) await this.journalLinks(path.join(parent, name));
    const slot = this.sweptSlot();
    this.swaps.swapOut(parent, stat, path.join(this.trash as string, ...slot.split('/')), present.filter((name) => !removing(name)));
    if (this.journal.recordsMoves) for (const name of taken) this.journal.moved(`${parent}${path.sep}${name}`, `${slot}/${name}`);
    return taken;
  }

  private async oneByOne(parent: string, taken: readonly string[], kind: 'links' | 'swept'): Promise<string[]> {
    const out: string[] = [];
    for (const name of taken) {
      const dir = `${parent}${path.sep}${name}`;
      if (kind === 'links') await this.linkDirectory(dir);
      else if (!this.sweep(dir)) continue;
      out.push(name);
    }
    return out;
  }

  /** A fresh name in the trash's `swept/`. */
  private sweptSlot(): string {
    if (!this.trash) throw new Error('the builtin sweep needs a trash directory');
    if (!this.sweptReady) {
      fs.mkdirSync(path.join(this.trash, SWEPT), { recursive: true });
      this.sweptReady = true;
    }
    return `${SWEPT}/${this.sequence++}`;
  }

  /** Journals the links of a link directory; false when it is gone already (by hand, or an earlier interrupted run). */
  private async journalLinks(dir: string): Promise<boolean> {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return false;
      throw error;
    }
    // Anything besides the link (v2.4 signatures) is journaled link by link.
    if (names.length === 1 && names[0] === 'link') this.journal.write(path.join(dir, 'link'), fs.readFileSync(path.join(dir, 'link'), 'latin1'));
    else await this.journal.recordAll(dir);
    return true;
  }

  /** True when the directory was moved to the trash (or was already gone). */
  private toTrash(dir: string): boolean {
    if (!this.trash) return false;
    if (!this.trashReady) {
      fs.mkdirSync(this.trash, { recursive: true });
      this.trashReady = true;
    }
    const moved = this.move(dir, String(this.sequence++));
    return moved !== 'other filesystem'; // on another filesystem: delete in place
  }

  /** Renames `dir` to `to` inside the trash, and journals the move (in a quarantine) once it is made. */
  private move(dir: string, to: string): 'moved' | 'gone' | 'other filesystem' {
    const moved = this.renameInto(dir, to);
    if (moved === 'moved') this.journal.moved(dir, to);
    return moved;
  }

  /** Renames `dir` to `to` inside the trash, journaling nothing. */
  private renameInto(dir: string, to: string): 'moved' | 'gone' | 'other filesystem' {
    try {
      fs.renameSync(dir, path.join(this.trash as string, ...to.split('/')));
    } catch (error) {
      // Gone already; but a missing trash is a failure, never a removal.
      if (errnoOf(error) === 'ENOENT' && !fs.existsSync(dir)) return 'gone';
      if (errnoOf(error) === 'EXDEV') return 'other filesystem';
      throw error;
    }
    return 'moved';
  }
}
