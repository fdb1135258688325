/**
 * A real run's lock, with the fake engine: what a dead run left is brought
 * back before the run's own work, a registry paused by someone else is
 * refused, and a dry run reports all of it without changing anything.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RollbackError } from '../src/errors.js';
import { exclusively, findings } from '../src/exclusiveRun.js';
import { type HolderRecord, placeHere, processRef } from '../src/storage/lockRecord.js';
import { inspectLock, saveRecoveryNote } from '../src/storage/fs/lock.js';
import { FakeEngine } from './support/fakeEngine.js';
import { rejection } from './support/rejection.js';
import { tempDir } from './support/tmp.js';

let root: string;
let engine: FakeEngine;

beforeEach(async () => {
  root = await tempDir();
  await fs.mkdir(path.join(root, 'docker/registry/v2'), { recursive: true });
  engine = new FakeEngine();
  engine.addContainer({ id: 'c1', name: 'reg-a' });
  engine.addContainer({ id: 'c2', name: 'reg-b' });
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const options = () => ({
  root,
  engine,
  containers: [engine.state('c1'), engine.state('c2')],
  target: { kind: 'container', name: 'reg' },
  bringBack: { restart: true },
});

/** The lock of a run that died in its window (its pid is this test's parent's, recorded with a wrong start). */
async function deadRun(overrides: Partial<HolderRecord> = {}): Promise<HolderRecord> {
  const dead: HolderRecord = {
    regsweep: 'lock',
    token: 'dead-run',
    startedAt: '2026-12-01T10:00:00.000Z',
    place: placeHere(),
    process: { pid: process.ppid, startTicks: -1 },
    target: { kind: 'container', name: 'reg' },
    paused: [{ id: 'c1', name: 'reg-a' }],
    bringBack: { restart: true },
    ...overrides,
  };
  await fs.writeFile(path.join(root, '.regsweep.lock'), JSON.stringify(dead));
  return dead;
}

describe('exclusively', () => {
  it('takes over a dead run: removes its helper, restarts what it paused, then runs the work, and releases the lock', async () => {
    await deadRun();
    await engine.pause('c1');
    engine.addHelper('h1', 'dead-run');
    engine.addHelper('h2', 'another-run');
    let inside: { paused: string[]; token?: string } | undefined;

    const recovered = await exclusively(options(), async (lock, recovery) => {
      inside = { paused: engine.pausedIds(), token: inspectLock(root)?.record.token };
      expect(lock.token).not.toBe('dead-run');
      return recovery;
    });

    expect(recovered).toMatchObject({ by: 'takeover', containers: ['reg-a'], helpersRemoved: 1, gcStopped: false, holder: { pid: process.ppid } });
    expect(inside?.paused).toEqual([]);
    expect(inside?.token).not.toBe('dead-run');
    expect(engine.callsOf('restart')).toEqual(['restart c1']);
    expect(engine.helperIds()).toEqual(['h2']);
    expect(inspectLock(root)).toBeUndefined();
  });

  it('leaves alone what the dead run paused that is no longer paused', async () => {
    await deadRun();
    const recovered = await exclusively(options(), async (_lock, recovery) => recovery);
    expect(recovered?.containers).toEqual([]);
    expect(engine.callsOf('restart')).toEqual([]);
  });

  it("reports once what a dead run's watchdog brought back", async () => {
    const note = { by: 'watchdog', at: 'now', holder: { pid: 7, hostname: 'h', startedAt: 's' }, containers: ['reg-a'], helpersRemoved: 1, gcStopped: true };
    saveRecoveryNote(root, note);
    expect(await exclusively(options(), async (_lock, recovery) => recovery)).toEqual(note);
    expect(await exclusively(options(), async (_lock, recovery) => recovery)).toBeUndefined();
  });

  it("keeps the watchdog's note through a restore (keepRecoveryNote), for the next real run to report", async () => {
    const note = { by: 'watchdog', at: 'now', holder: { pid: 7, hostname: 'h', startedAt: 's' }, containers: ['reg-a'], helpersRemoved: 0, gcStopped: false };
    saveRecoveryNote(root, note);
    expect(await exclusively({ ...options(), keepRecoveryNote: true }, async (_lock, recovery) => recovery)).toEqual(note);
    expect(await exclusively({ ...options(), keepRecoveryNote: true }, async (_lock, recovery) => recovery)).toEqual(note);
    expect(await exclusively(options(), async (_lock, recovery) => recovery)).toEqual(note);
    expect(await exclusively(options(), async (_lock, recovery) => recovery)).toBeUndefined();
  });

  it('refuses a registry someone else paused: exit 2, the work never runs, the container stays paused, the lock is released', async () => {
    await engine.pause('c2');
    engine.calls.length = 0;
    let worked = false;
    const error = await rejection(
      exclusively(options(), async () => {
        worked = true;
      }),
    );
    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/reg-b is paused, not by regsweep/);
    expect(worked).toBe(false);
    expect(engine.pausedIds()).toEqual(['c2']);
    expect(engine.calls.filter((c) => !c.startsWith('container '))).toEqual([]);
    expect(inspectLock(root)).toBeUndefined();
  });

  it('keeps the lock when the registry could not be brought back, so the watchdog or the next run retries', async () => {
    const error = await rejection(
      exclusively(options(), async (lock) => {
        lock.update({ paused: [{ id: 'c1', name: 'reg-a' }] });
        throw new RollbackError('could not bring the registry back: reg-a: boom');
      }),
    );
    expect(error).toBeInstanceOf(RollbackError);
    expect(inspectLock(root)?.record.paused).toEqual([{ id: 'c1', name: 'reg-a' }]);
  });
});

describe('findings (a dry run)', () => {
  it('reports a live holder without a problem, and changes nothing', async () => {
    await deadRun({ process: processRef(process.pid), paused: [] });
    const before = await fs.readFile(path.join(root, '.regsweep.lock'), 'utf8');
    const found = findings(root, [engine.state('c1')]);
    expect(found.lockState?.alive).toBe(true);
    expect(found.notices).toEqual([]);
    expect(await fs.readFile(path.join(root, '.regsweep.lock'), 'utf8')).toBe(before);
  });

  it("reports a dead run's lock, a paused container and a watchdog's note, and keeps them", async () => {
    await deadRun();
    await engine.pause('c1');
    saveRecoveryNote(root, { by: 'watchdog' });
    const found = findings(root, [engine.state('c1'), engine.state('c2')]);
    expect(found.lockState?.alive).toBe(false);
    expect(found.notices.map((p) => p.message)).toEqual([
      expect.stringMatching(/^a regsweep run \(pid \d+ on .*, started 2026-12-01T10:00:00.000Z\) died holding this registry/),
      'registry container reg-a is paused',
    ]);
    expect(found.recovered).toEqual({ by: 'watchdog' });
    expect(inspectLock(root)?.record.token).toBe('dead-run');
    expect(engine.pausedIds()).toEqual(['c1']);
    expect(findings(root, []).recovered).toEqual({ by: 'watchdog' });
  });
});
