/**
 * The run lock on a real filesystem, with real processes: one holder at a
 * time, a live holder refused with exit 75 (or waited for), a dead one taken
 * over by exactly one of the runs that find it dead.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type HolderRecord, STALE_MS, busyMessage, holderAlive, placeHere, processRef, processStart } from '../../src/storage/lockRecord.js';
import { RunLock, inspectLock } from '../../src/storage/fs/lock.js';
import { rejection } from '../support/rejection.js';
import { tempDir } from '../support/tmp.js';

const LOCK = '.regsweep.lock';
let root: string;

beforeEach(async () => {
  root = await tempDir();
  await fs.mkdir(path.join(root, 'docker/registry/v2'), { recursive: true });
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const acquire = (options: Partial<Parameters<typeof RunLock.acquire>[1]> = {}) =>
  RunLock.acquire(root, { target: { kind: 'path', name: root }, bringBack: { restart: true }, ...options });

/** The ref of a process that ran and has exited: a pid nothing runs under any more. */
async function deadProcess(): Promise<{ pid: number; startTicks: number }> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 200)']);
  const ref = { pid: child.pid as number, startTicks: processStart(child.pid as number) as number };
  await new Promise((resolve) => child.on('exit', resolve));
  return ref;
}

function record(overrides: Partial<HolderRecord> = {}): HolderRecord {
  return {
    regsweep: 'lock',
    token: 'dead-token',
    startedAt: '2026-12-01T00:00:00.000Z',
    place: placeHere(),
    process: { pid: 1, startTicks: -1 },
    target: { kind: 'path', name: 'x' },
    paused: [],
    bringBack: { restart: true },
    ...overrides,
  };
}

async function writeLock(r: HolderRecord, ageMs = 0): Promise<void> {
  const file = path.join(root, LOCK);
  await fs.writeFile(file, JSON.stringify(r));
  const when = new Date(Date.now() - ageMs);
  await fs.utimes(file, when, when);
}

describe('RunLock', () => {
  it('holds the storage root for one run: the lock file names this process, and goes on release', async () => {
    const lock = await acquire();
    const state = inspectLock(root);
    expect(state?.alive).toBe(true);
    expect(state?.record).toMatchObject({ token: lock.token, process: processRef(process.pid), target: { kind: 'path' } });
    lock.release();
    expect(inspectLock(root)).toBeUndefined();
  });

  it('refuses a second run while the first holds it: exit 75, naming the holder, its lock untouched', async () => {
    const first = await acquire();
    const before = await fs.readFile(path.join(root, LOCK), 'utf8');
    const error = await rejection(acquire());
    expect(error.exitCode).toBe(75);
    expect(error.message).toBe(busyMessage(first.current));
    expect(error.message).toMatch(new RegExp(`^busy: another regsweep run, pid ${process.pid} on ${os.hostname()}, started \\d{4}-.*, holds this registry$`));
    expect(await fs.readFile(path.join(root, LOCK), 'utf8')).toBe(before);
    first.release();
  });

  it('with --wait, waits for the holder to finish and then takes the lock', async () => {
    const first = await acquire();
    setTimeout(() => first.release(), 1200);
    const started = Date.now();
    const second = await acquire({ waitMs: 10_000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(second.previous).toBeUndefined();
    second.release();
  });

  it('takes over the lock of a dead run here (its process and watchdog gone) and hands back its record', async () => {
    const dead = record({ process: await deadProcess(), watchdog: await deadProcess(), paused: [{ id: 'c1', name: 'reg' }] });
    await writeLock(dead);
    const lock = await acquire();
    expect(lock.previous).toEqual(dead);
    expect(inspectLock(root)?.record.token).toBe(lock.token);
    lock.release();
  });

  it('counts a run as alive while its watchdog still works, even when its own process is gone', async () => {
    await writeLock(record({ process: await deadProcess(), watchdog: processRef(process.pid) }));
    expect((await rejection(acquire())).exitCode).toBe(75);
  });

  it('judges a holder in another pid namespace by its heartbeat: fresh is busy, older than 30 s is dead', async () => {
    const elsewhere = record({ place: { hostname: 'other', bootId: 'b', pidNamespace: 'pid:[1]' } });
    await writeLock(elsewhere, 1000);
    expect((await rejection(acquire())).exitCode).toBe(75);
    await writeLock(elsewhere, STALE_MS + 1000);
    const lock = await acquire();
    expect(lock.previous?.place.hostname).toBe('other');
    lock.release();
  });

  it('lets exactly one of two runs that find the same dead holder take it over', async () => {
    await writeLock(record({ process: await deadProcess() }));
    const module = path.resolve('dist/src/storage/fs/lock.js');
    const script = `
      import { RunLock } from ${JSON.stringify(module)};
      try {
        const lock = await RunLock.acquire(process.argv[1], { target: { kind: 'path', name: 'x' }, bringBack: { restart: true } });
        console.log(lock.previous ? 'took over' : 'took');
        await new Promise((r) => setTimeout(r, 2500)); // still alive while the other one looks
        lock.release();
      } catch (error) {
        console.log('exit ' + error.exitCode);
      }`;
    const run = () => promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, root]).then((r) => r.stdout.trim());
    const outcomes = (await Promise.all([run(), run()])).sort();
    expect(outcomes).toEqual(['exit 75', 'took over']);
    expect(inspectLock(root)).toBeUndefined();
  }, 20_000);

  it('clears a takeover claim left by a run that died while taking over, then takes over', async () => {
    await writeLock(record({ process: await deadProcess() }));
    const claim = path.join(root, `${LOCK}.takeover-dead-token`);
    await fs.mkdir(claim);
    const old = new Date(Date.now() - 61_000);
    await fs.utimes(claim, old, old);
    const lock = await acquire();
    expect(lock.previous?.token).toBe('dead-token');
    await expect(fs.stat(claim)).rejects.toThrow();
    lock.release();
  });

  it('records what the run does, and stops a run whose lock another run took over', async () => {
    const lock = await acquire();
    lock.update({ paused: [{ id: 'c1', name: 'reg' }], journal: '/j' });
    expect(inspectLock(root)?.record).toMatchObject({ paused: [{ id: 'c1', name: 'reg' }], journal: '/j' });
    await writeLock(record({ token: 'someone-else', process: processRef(process.pid) }));
    expect(() => lock.update({ paused: [] })).toThrow(/taken over by another run/);
    lock.release(); // not ours any more: left alone
    expect(inspectLock(root)?.record.token).toBe('someone-else');
  });

  it('refuses a lock file it does not recognise rather than overwrite it', async () => {
    await fs.writeFile(path.join(root, LOCK), 'something else');
    expect(() => inspectLock(root)).toThrow(/not a regsweep lock/);
    expect(await fs.readFile(path.join(root, LOCK), 'utf8')).toBe('something else');
  });
});

describe('holderAlive', () => {
  const here = placeHere();
  it('here: alive while its process or its watchdog runs with the recorded start time', async () => {
    const dead = await deadProcess();
    expect(holderAlive(record({ process: processRef(process.pid) }), 0, here)).toBe(true);
    expect(holderAlive(record({ process: dead }), Date.now(), here)).toBe(false);
    expect(holderAlive(record({ process: { pid: process.pid, startTicks: 1 } }), Date.now(), here)).toBe(false); // a reused pid
    expect(holderAlive(record({ process: dead, watchdog: processRef(process.pid) }), 0, here)).toBe(true);
  });
  it('elsewhere: alive while its heartbeat is fresh', () => {
    const other = record({ place: { ...here, pidNamespace: 'pid:[2]' } });
    const now = Date.now();
    expect(holderAlive(other, now - STALE_MS + 1000, here, now)).toBe(true);
    expect(holderAlive(other, now - STALE_MS - 1, here, now)).toBe(false);
  });
});
