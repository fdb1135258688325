/**
 * The mechanisms under a full disk and a tree across filesystems, on real
 * small tmpfs mounts (root only): the lock taken with no room for its file and
 * written once room exists, swaps that need no room between their renames or
 * do not happen, lines written whole or not at all, removals in place where no
 * trash can be made, and a trash on each filesystem the tree spans. The whole
 * runs are proven in test/e2e/fullDisk.e2e.test.ts and filesystems.e2e.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Remover, emptyTrash, trashFor } from '../../src/apply/trash.js';
import { BusyError } from '../../src/errors.js';
import { otherFilesystems } from '../../src/storage/fs/filesystems.js';
import { type HolderRecord, placeHere } from '../../src/storage/lockRecord.js';
import { RunLock } from '../../src/storage/fs/lock.js';
import { SwapLog, undoSwaps } from '../../src/storage/fs/swap.js';
import { appendWhole } from '../../src/util/append.js';
import { canMount, fillDisk, type Fill, type Fillers, mountTmpfs, unmountAll } from '../support/smallDisk.js';
import { rejection } from '../support/rejection.js';
import { tempDir } from '../support/tmp.js';

const mountable = canMount();

let disk: string;
let root: string;

/** A storage root on a fresh small tmpfs, fillers beside it. */
function smallRoot(): void {
  disk = mountTmpfs(512, 200);
  root = path.join(disk, 'root');
  fs.mkdirSync(path.join(root, 'docker/registry/v2/blobs/sha256'), { recursive: true });
  fs.mkdirSync(path.join(root, 'docker/registry/v2/repositories'), { recursive: true });
}

function fill(how: Fill): Fillers {
  return fillDisk(disk, how, root);
}

/** Makes room: one filler file less (an inode), or the byte filler cut by a page. */
function makeRoom(fillers: Fillers): void {
  for (const p of fillers.paths) {
    if (fs.statSync(p).isDirectory()) fs.rmSync(path.join(p, fs.readdirSync(p)[0] as string));
    else fs.truncateSync(p, Math.max(0, fs.statSync(p).size - 64 * 1024));
  }
}

const acquire = () => RunLock.acquire(root, { target: { kind: 'path', name: root }, bringBack: { restart: false } });

describe.skipIf(!mountable)('on a full disk', () => {
  beforeEach(smallRoot);
  afterEach(unmountAll);

  for (const how of ['inodes', 'bytes', 'both'] as const) {
    it(`the lock is taken with no room for its file (${how}), holds off a second run, and is written once there is room`, async () => {
      const fillers = fill(how);
      const lock = await acquire();
      try {
        expect(fs.readdirSync(root)).toEqual(['docker']); // no lock file, no temp file left
        const second = await rejection(acquire());
        expect(second).toBeInstanceOf(BusyError);
        expect((second as Error).message).toMatch(/^busy: /);
        lock.update({ paused: [{ id: 'abc', name: 'registry' }] });
        expect(lock.persist()).toBe(false);
        expect(fs.readdirSync(root)).toEqual(['docker']);
        makeRoom(fillers);
        makeRoom(fillers); // the whole file is linked into place: two inodes for a moment (a link counts as one on tmpfs)
        expect(lock.persist()).toBe(true);
        const written = JSON.parse(fs.readFileSync(path.join(root, '.regsweep.lock'), 'utf8')) as HolderRecord;
        expect(written.token).toBe(lock.token);
        expect(written.paused).toEqual([{ id: 'abc', name: 'registry' }]);
      } finally {
        lock.release();
      }
      expect(fs.readdirSync(root)).toEqual(['docker']);
      // Released: the next run takes it.
      (await acquire()).release();
    });
  }

  it('a dead run\'s lock is taken over with no room, and replaced by this run\'s record once there is room', async () => {
    const dead: HolderRecord = {
      regsweep: 'lock',
      token: 'dead-token',
      startedAt: '2026-12-01T00:00:00.000Z',
      place: placeHere(),
      process: { pid: 1, startTicks: -1 },
      target: { kind: 'path', name: root },
      paused: [],
      bringBack: { restart: false },
    };
    fs.writeFileSync(path.join(root, '.regsweep.lock'), JSON.stringify(dead));
    const fillers = fill('inodes');
    const lock = await acquire();
    try {
      expect(lock.previous?.token).toBe('dead-token');
      expect(lock.persist()).toBe(false);
      makeRoom(fillers);
      makeRoom(fillers); // the temp file and its rename need two inodes for a moment
      expect(lock.persist()).toBe(true);
      expect(JSON.parse(fs.readFileSync(path.join(root, '.regsweep.lock'), 'utf8')).token).toBe(lock.token);
    } finally {
      lock.release();
    }
    expect(fs.readdirSync(root)).toEqual(['docker']);
  });

  it('a line that does not fit leaves the file as it was', () => {
    const file = path.join(root, 'log');
    const fd = fs.openSync(file, 'a');
    try {
      appendWhole(fd, 'first\n');
      fill('bytes');
      // The first page has room left: fill it up to a few bytes short of its end.
      const left = 4096 - fs.statSync(file).size;
      appendWhole(fd, `${'x'.repeat(left - 3)}\n`);
      const before = fs.readFileSync(file, 'utf8');
      expect(() => appendWhole(fd, 'a line longer than what is left\n')).toThrow(/ENOSPC/);
      expect(fs.readFileSync(file, 'utf8')).toBe(before);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('a swap with no room for the directory that takes the swapped one\'s place does not happen', () => {
    const trash = path.join(root, 'trash');
    fs.mkdirSync(trash);
    const dir = path.join(root, 'prefix');
    fs.mkdirSync(dir);
    for (const name of ['a', 'b', 'c']) fs.mkdirSync(path.join(dir, name));
    fill('inodes');
    const log = new SwapLog(trash);
    expect(log.swapOut(dir, fs.statSync(dir), ['a'])).toBeUndefined();
    log.close();
    expect(fs.readdirSync(dir).sort()).toEqual(['a', 'b', 'c']);
    expect(fs.readdirSync(trash)).toEqual([]);
  });

  it('with no room for a trash, removals go in place, and into the trash once one fits', async () => {
    const blobs = path.join(root, 'docker/registry/v2/blobs/sha256/ab');
    for (const hex of ['ab01', 'ab02']) fs.mkdirSync(path.join(blobs, hex), { recursive: true });
    fs.writeFileSync(path.join(blobs, 'ab01/data'), 'x');
    fs.writeFileSync(path.join(blobs, 'ab02/data'), 'y');
    const fillers = fill('inodes');
    const trash = trashFor(root);
    const remover = Remover.open(root, { trash });
    remover.prepareSwaps(path.join(root, 'docker/registry/v2/blobs/sha256'), [{ dir: blobs }]);
    expect(remover.sweep(path.join(blobs, 'ab01'))).toBe(true);
    expect(fs.existsSync(path.join(blobs, 'ab01'))).toBe(false);
    expect(fs.existsSync(trash)).toBe(false);
    makeRoom(fillers);
    makeRoom(fillers);
    expect(remover.sweep(path.join(blobs, 'ab02'))).toBe(true);
    expect(fs.readdirSync(path.join(trash, 'swept'))).toHaveLength(1);
    remover.close();
    await emptyTrash(root);
    expect(fs.readdirSync(root)).toEqual(['docker']);
  });
});

describe.skipIf(!mountable)('a swap that fails halfway', () => {
  let dir: string;
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('puts the directory back whole before the error goes on, and leaves no open swap', async () => {
    dir = await tempDir();
    const trash = path.join(dir, 'trash');
    const prefix = path.join(dir, 'prefix');
    fs.mkdirSync(trash);
    fs.mkdirSync(prefix);
    for (const name of ['a', 'b', 'c']) fs.mkdirSync(path.join(prefix, name));
    const log = new SwapLog(trash);
    // `b` comes back, then `missing` cannot: the swap is undone.
    expect(() => log.swapOut(prefix, fs.statSync(prefix), ['b', 'missing'])).toThrow(/ENOENT/);
    log.close();
    expect(fs.readdirSync(prefix).sort()).toEqual(['a', 'b', 'c']);
    expect(undoSwaps(trash)).toBe(0);
  });
});

describe.skipIf(!mountable)('a tree across filesystems', () => {
  let base: string;
  let other: string;
  beforeEach(async () => {
    base = await tempDir();
    root = base;
    fs.mkdirSync(path.join(root, 'docker/registry/v2/repositories/team/web/_manifests'), { recursive: true });
    fs.mkdirSync(path.join(root, 'docker/registry/v2/repositories/plain/_manifests'), { recursive: true });
    other = mountTmpfs(1024, 500);
    // blobs/ moved to another disk behind a symlink, as admins do.
    fs.mkdirSync(path.join(other, 'blobs/sha256/cd/cd01'), { recursive: true });
    fs.writeFileSync(path.join(other, 'blobs/sha256/cd/cd01/data'), 'z');
    fs.symlinkSync(path.join(other, 'blobs'), path.join(root, 'docker/registry/v2/blobs'));
  });
  afterEach(async () => {
    unmountAll();
    await fs.promises.rm(base, { recursive: true, force: true });
  });

  it('finds the parts on other filesystems, and sweeps from each into a trash inside it, never across', async () => {
    const blobs = path.join(root, 'docker/registry/v2/blobs');
    const elsewhere = otherFilesystems(root, ['plain', 'team/web']);
    expect(elsewhere).toEqual([blobs]);
    const trash = trashFor(root);
    const remover = Remover.open(root, { trash, elsewhere });
    expect(remover.trashes).toEqual([trash, path.join(blobs, path.basename(trash))]);
    expect(remover.sweep(path.join(blobs, 'sha256/cd/cd01'))).toBe(true);
    expect(fs.readdirSync(path.join(other, 'blobs', path.basename(trash), 'swept'))).toEqual(['0']);
    expect(fs.readdirSync(path.join(other, 'blobs/sha256/cd'))).toEqual([]);
    remover.close();
    await emptyTrash(root, Date.now(), elsewhere);
    expect(fs.readdirSync(path.join(other, 'blobs'))).toEqual(['sha256']);
  });

  it('a mount it was not told of is met as EXDEV: what lies there is removed in place, and counted', async () => {
    const trash = trashFor(root);
    const remover = Remover.open(root, { trash }); // not told of blobs/
    expect(remover.sweep(path.join(root, 'docker/registry/v2/blobs/sha256/cd/cd01'))).toBe(true);
    expect(fs.readdirSync(path.join(other, 'blobs/sha256/cd'))).toEqual([]);
    remover.close();
    await emptyTrash(root);
  });

  it('a quarantine across filesystems is refused (exit 2) before anything is removed', () => {
    const elsewhere = otherFilesystems(root, ['plain', 'team/web']);
    const error = (() => {
      try {
        Remover.open(root, { trash: trashFor(root, 3_600_000), elsewhere });
      } catch (e) {
        return e as Error & { exitCode: number };
      }
      return undefined;
    })();
    expect(error?.exitCode).toBe(2);
    expect(error?.message).toMatch(/another filesystem.*without --quarantine/);
    expect(fs.readdirSync(root)).toEqual(['docker']);
  });
});
