/**
 * The maintenance window against a fake engine: what is paused, what is brought
 * back, and that the registry is brought back once whatever happens (an error,
 * a failed pause, SIGINT/SIGTERM, a failing restart). Signals are sent with
 * `process.emit`, so no real signal reaches the test worker.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { registryWindow, unpausedWindow } from '../../src/docker/maintenanceWindow.js';
import { InterruptedError, RegsweepError } from '../../src/errors.js';
import { FakeEngine } from '../support/fakeEngine.js';
import { rejection } from '../support/rejection.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const signalListeners = (): { SIGINT: number; SIGTERM: number } => ({
  SIGINT: process.listenerCount('SIGINT'),
  SIGTERM: process.listenerCount('SIGTERM'),
});

/** Three registry containers c1, c2, c3 (named reg-a, reg-b, reg-c), all running. */
function threeRunning(): FakeEngine {
  const engine = new FakeEngine();
  engine.addContainer({ id: 'c1', name: 'reg-a' });
  engine.addContainer({ id: 'c2', name: 'reg-b' });
  engine.addContainer({ id: 'c3', name: 'reg-c' });
  return engine;
}

const containersOf = (engine: FakeEngine, ...ids: string[]) => ids.map((id) => engine.state(id));

/** The calls that change something or mark the work: inspections left out. */
const changes = (engine: FakeEngine): string[] => engine.calls.filter((c) => !c.startsWith('container '));

let baseline = signalListeners();
beforeEach(() => {
  baseline = signalListeners();
});
afterEach(() => {
  // A window that leaked its handlers would swallow every later Ctrl-C of the CLI.
  expect(signalListeners()).toEqual(baseline);
});

describe('registryWindow: pausing and bringing back', () => {
  it('pauses each running container (not a stopped one) before the work and restarts each after it', async () => {
    const engine = new FakeEngine();
    engine.addContainer({ id: 'c1', name: 'reg-a' });
    engine.addContainer({ id: 'c2', name: 'reg-stopped', running: false });
    engine.addContainer({ id: 'c3', name: 'reg-c' });
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2', 'c3'), { restart: true });
    expect(window.description).toMatch(/reg-a, reg-c paused .*then restarted/);
    expect(window.description).not.toMatch(/reg-stopped/);

    let pausedDuringWork: string[] = [];
    const result = await window.run(async () => {
      engine.note('work');
      pausedDuringWork = engine.pausedIds();
      return 'done';
    });

    expect(result.value).toBe('done');
    expect(pausedDuringWork.sort()).toEqual(['c1', 'c3']);
    expect(changes(engine).slice(0, 3)).toEqual(['pause c1', 'pause c3', 'work']);
    expect(changes(engine).slice(3).sort()).toEqual(['restart c1', 'restart c3']);
    expect(engine.pausedIds()).toEqual([]);
    expect(engine.state('c1').running).toBe(true);
    expect(engine.state('c3').running).toBe(true);
    // The user stopped it: the window must not start it.
    expect(engine.state('c2').running).toBe(false);
  });

  it('with --unpause-only unpauses the containers instead of restarting them', async () => {
    const engine = threeRunning();
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2', 'c3'), { restart: false });
    expect(window.description).toMatch(/then unpaused/);

    await window.run(async () => {
      engine.note('work');
      expect(engine.pausedIds().sort()).toEqual(['c1', 'c2', 'c3']);
    });

    expect(engine.callsOf('restart')).toEqual([]);
    expect(changes(engine).indexOf('work')).toBe(3);
    expect(changes(engine).slice(4).sort()).toEqual(['unpause c1', 'unpause c2', 'unpause c3']);
    expect(engine.pausedIds()).toEqual([]);
  });

  it('reports how long the registry was paused, at least as long as the work took', async () => {
    const engine = threeRunning();
    const window = registryWindow(engine, containersOf(engine, 'c1'), { restart: true });
    const started = Date.now();
    const { pausedMs } = await window.run(() => sleep(40));
    expect(pausedMs).toBeGreaterThanOrEqual(35);
    expect(pausedMs).toBeLessThanOrEqual(Date.now() - started);
  });

  it('pauses nothing, restarts nothing and reports 0 ms paused when no container is running', async () => {
    const engine = new FakeEngine();
    engine.addContainer({ id: 'c1', running: false });
    const window = registryWindow(engine, containersOf(engine, 'c1'), { restart: true });
    expect(window.description).toMatch(/nothing to pause/);

    const result = await window.run(async () => {
      await sleep(20);
      return 42;
    });

    expect(result).toEqual({ value: 42, pausedMs: 0 });
    expect(engine.calls).toEqual([]);
  });

  it('replaces the tasks of a swarm service with restartService instead of restarting its containers', async () => {
    const engine = new FakeEngine();
    engine.addContainer({ id: 't1', name: 'svc.1' });
    engine.addContainer({ id: 't2', name: 'svc.2' });
    engine.addService('svc', ['t1', 't2']);
    const window = registryWindow(engine, containersOf(engine, 't1', 't2'), { restart: true, service: 'svc' });

    await window.run(async () => {
      expect(engine.pausedIds().sort()).toEqual(['t1', 't2']);
    });

    expect(engine.callsOf('restartService')).toEqual(['restartService svc t1 t2']);
    expect(engine.callsOf('restart')).toEqual([]);
    expect(engine.pausedIds()).toEqual([]);
    const fresh = engine.serviceTasks('svc');
    expect(fresh).toHaveLength(2);
    expect(fresh).not.toContain('t1');
    for (const id of fresh) expect(engine.state(id)).toMatchObject({ running: true, paused: false });
  });
});

describe('registryWindow: failures never leave the registry paused', () => {
  it.each([
    ['restart', true],
    ['unpause', false],
  ] as const)('a pause that fails on the 2nd of 3 containers: the work never runs, the tried ones get %s, the error propagates', async (verb, restart) => {
    const engine = threeRunning();
    const pauseError = new RegsweepError('cannot pause container c2: conflict');
    engine.failOn('pause', 'c2', { error: pauseError });
    const work = vi.fn(async () => 'never');
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2', 'c3'), { restart });

    const error = await rejection(window.run(work));

    expect(error).toBe(pauseError);
    expect(work).not.toHaveBeenCalled();
    expect(engine.callsOf('pause')).toEqual(['pause c1', 'pause c2']); // c3 was never tried
    // c2 is brought back too: its pause may have taken effect before the error came back.
    expect(engine.callsOf(verb).sort()).toEqual([`${verb} c1`, `${verb} c2`]);
    expect(engine.pausedIds()).toEqual([]);
  });

  it('a pause whose error comes back after it took effect (a timeout) is still undone', async () => {
    const engine = threeRunning();
    engine.failOn('pause', 'c2', { afterEffect: true });
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2', 'c3'), { restart: false });

    const error = await rejection(window.run(async () => 'never'));

    expect(error.message).toMatch(/cannot pause c2/);
    expect(engine.callsOf('unpause').sort()).toEqual(['unpause c1', 'unpause c2']);
    expect(engine.pausedIds()).toEqual([]);
  });

  it('the work throws: the registry is restarted after it and the original error propagates', async () => {
    const engine = threeRunning();
    const boom = new Error('apply failed half-way');
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2'), { restart: true });

    const error = await rejection(
      window.run(async () => {
        engine.note('work');
        throw boom;
      }),
    );

    expect(error).toBe(boom);
    expect(changes(engine).slice(0, 3)).toEqual(['pause c1', 'pause c2', 'work']);
    expect(changes(engine).slice(3).sort()).toEqual(['restart c1', 'restart c2']);
    expect(engine.pausedIds()).toEqual([]);
  });

  it('a swarm service whose restartService fails: its paused tasks are unpaused and the run fails saying the registry could not be brought back', async () => {
    const engine = new FakeEngine();
    engine.addContainer({ id: 't1', name: 'svc.1' });
    engine.addContainer({ id: 't2', name: 'svc.2' });
    engine.addService('svc', ['t1', 't2']);
    engine.failOn('restartService', 'svc', { error: new RegsweepError('cannot restart service svc: rpc error') });
    const window = registryWindow(engine, containersOf(engine, 't1', 't2'), { restart: true, service: 'svc' });

    const error = await rejection(window.run(async () => 'purged'));

    expect(error.message).toMatch(/could not bring the registry back/);
    expect(error.message).toMatch(/rpc error/);
    expect(error.exitCode).toBe(1);
    const afterRestart = engine.calls.slice(engine.calls.indexOf('restartService svc t1 t2') + 1);
    expect(afterRestart.sort()).toEqual(['unpause t1', 'unpause t2']);
    expect(engine.pausedIds()).toEqual([]);
    expect(engine.serviceTasks('svc')).toEqual(['t1', 't2']);
  });

  it('a container whose restart fails: the others are still restarted and the error names it', async () => {
    const engine = threeRunning();
    engine.failOn('restart', 'c2');
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2', 'c3'), { restart: true });

    const error = await rejection(window.run(async () => 'purged'));

    expect(error.message).toMatch(/could not bring the registry back/);
    expect(error.message).toMatch(/reg-b/);
    expect(error.message).not.toMatch(/reg-a|reg-c/);
    expect(error.exitCode).toBe(1);
    expect(engine.callsOf('restart').sort()).toEqual(['restart c1', 'restart c2', 'restart c3']);
    expect(engine.state('c1')).toMatchObject({ running: true, paused: false });
    expect(engine.state('c3')).toMatchObject({ running: true, paused: false });
  });

  it('a container whose restart fails is at least unpaused, as swarm tasks are', async () => {
    const engine = threeRunning();
    engine.failOn('restart', 'c2');
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2', 'c3'), { restart: true });

    await rejection(window.run(async () => 'purged'));

    expect(engine.pausedIds()).toEqual([]);
  });

  it('when the rollback fails after the work failed, the error still tells why the work failed', async () => {
    const engine = threeRunning();
    engine.failOn('restart', 'c1');
    const window = registryWindow(engine, containersOf(engine, 'c1'), { restart: true });

    const error = await rejection(
      window.run(async () => {
        throw new Error('apply failed: disk full');
      }),
    );

    expect(error.message).toMatch(/could not bring the registry back/);
    const chain: string[] = [];
    for (let e: unknown = error; e instanceof Error; e = e.cause) {
      chain.push(e.message, ...(e instanceof AggregateError ? e.errors.map((x: Error) => x.message) : []));
    }
    expect(chain.join('\n')).toMatch(/disk full/);
  });

  it('removes its SIGINT/SIGTERM listeners even when bringing the registry back fails', async () => {
    const engine = threeRunning();
    engine.failOn('restart', 'c1');
    const before = signalListeners();
    const window = registryWindow(engine, containersOf(engine, 'c1'), { restart: true });
    await rejection(window.run(async () => 'purged'));
    expect(signalListeners()).toEqual(before);
  });
});

describe('registryWindow: SIGINT and SIGTERM', () => {
  it('SIGINT during the work aborts its signal, brings the registry back, and throws exit 130', async () => {
    const engine = threeRunning();
    const before = signalListeners();
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2'), { restart: true });
    let during = before;
    let reasonSeen: unknown;

    const error = await rejection(
      window.run(async (signal) => {
        during = signalListeners();
        expect(signal.aborted).toBe(false);
        process.emit('SIGINT', 'SIGINT');
        expect(signal.aborted).toBe(true);
        reasonSeen = signal.reason;
        engine.note('work saw the abort');
        signal.throwIfAborted();
      }),
    );

    expect(error.exitCode).toBe(130);
    expect(error).toBeInstanceOf(InterruptedError);
    expect(error.message).toMatch(/SIGINT/);
    expect((reasonSeen as { exitCode?: number }).exitCode).toBe(130);
    expect(engine.calls.slice(engine.calls.indexOf('work saw the abort') + 1).sort()).toEqual(['restart c1', 'restart c2']);
    expect(engine.pausedIds()).toEqual([]);
    expect(during).toEqual({ SIGINT: before.SIGINT + 1, SIGTERM: before.SIGTERM + 1 });
    expect(signalListeners()).toEqual(before);
  });

  it('a work that finishes despite SIGINT still ends in exit 130 after the registry is back', async () => {
    const engine = threeRunning();
    const window = registryWindow(engine, containersOf(engine, 'c1'), { restart: true });

    const error = await rejection(
      window.run(async () => {
        process.emit('SIGINT', 'SIGINT');
        return 'finished anyway';
      }),
    );

    expect(error.exitCode).toBe(130);
    expect(engine.callsOf('restart')).toEqual(['restart c1']);
    expect(engine.pausedIds()).toEqual([]);
  });

  it('SIGTERM while pausing: no further container is paused, the work never runs, the paused ones come back', async () => {
    const engine = threeRunning();
    engine.at('pause', 'c2', () => {
      process.emit('SIGTERM', 'SIGTERM');
    });
    const work = vi.fn(async () => 'never');
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2', 'c3'), { restart: true });

    const error = await rejection(window.run(work));

    expect(error.exitCode).toBe(130);
    expect(error.message).toMatch(/SIGTERM/);
    expect(work).not.toHaveBeenCalled();
    expect(engine.callsOf('pause')).toEqual(['pause c1', 'pause c2']);
    expect(engine.callsOf('restart').sort()).toEqual(['restart c1', 'restart c2']);
    expect(engine.pausedIds()).toEqual([]);
  });

  it('a second SIGINT during the rollback does not interrupt it: every container still comes back', async () => {
    const engine = threeRunning();
    const before = signalListeners();
    let caughtDuringRollback: number | undefined;
    engine.at('restart', 'c1', () => {
      // Still caught here: a real second Ctrl-C must not kill the process mid-rollback.
      caughtDuringRollback = process.listenerCount('SIGINT');
      process.emit('SIGINT', 'SIGINT');
    });
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2', 'c3'), { restart: true });

    const error = await rejection(
      window.run(async (signal) => {
        process.emit('SIGINT', 'SIGINT');
        signal.throwIfAborted();
      }),
    );

    expect(error.exitCode).toBe(130);
    expect(caughtDuringRollback).toBeGreaterThan(before.SIGINT);
    expect(engine.callsOf('restart').sort()).toEqual(['restart c1', 'restart c2', 'restart c3']);
    expect(engine.pausedIds()).toEqual([]);
  });

  it('runs the rollback once when the work fails and signals arrive too', async () => {
    const engine = threeRunning();
    const boom = new Error('apply failed');
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2'), { restart: true });

    const error = await rejection(
      window.run(async () => {
        process.emit('SIGINT', 'SIGINT');
        process.emit('SIGTERM', 'SIGTERM');
        throw boom;
      }),
    );

    expect(error.exitCode).toBe(130);
    // The first signal is the one reported.
    expect(error.message).toMatch(/SIGINT/);
    expect(error.message).not.toMatch(/SIGTERM/);
    expect(error.cause).toBe(boom);
    expect(engine.callsOf('restart').sort()).toEqual(['restart c1', 'restart c2']);
    expect(engine.pausedIds()).toEqual([]);
  });
});

describe('unpausedWindow', () => {
  it('runs the work with nothing paused and reports 0 ms', async () => {
    const window = unpausedWindow();
    expect(window.description).toMatch(/not paused/);
    expect(await window.run(async (signal) => (signal.aborted ? 'aborted' : 'ran'))).toEqual({ value: 'ran', pausedMs: 0 });
  });

  it('SIGTERM during the work aborts its signal and throws exit 130, leaving no listener behind', async () => {
    const before = signalListeners();
    const window = unpausedWindow();
    let aborted = false;

    const error = await rejection(
      window.run(async (signal) => {
        process.emit('SIGTERM', 'SIGTERM');
        aborted = signal.aborted;
        signal.throwIfAborted();
      }),
    );

    expect(aborted).toBe(true);
    expect(error.exitCode).toBe(130);
    expect(error.message).toMatch(/SIGTERM/);
    expect(signalListeners()).toEqual(before);
  });

  it('an error of the work propagates unchanged', async () => {
    const boom = new Error('scan failed');
    expect(await rejection(unpausedWindow().run(async () => Promise.reject(boom)))).toBe(boom);
  });
});

describe('registryWindow: only what this run paused', () => {
  it('refuses a container someone else paused: exit 2, the work never runs, nothing paused, unpaused or restarted', async () => {
    const engine = threeRunning();
    await engine.pause('c2');
    engine.calls.length = 0;
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2', 'c3'), { restart: true });
    let worked = false;

    const error = await rejection(
      window.run(async () => {
        worked = true;
      }),
    );

    expect(error.exitCode).toBe(2);
    expect(error.message).toMatch(/reg-b is paused, not by regsweep: unpause it first \(nothing changed\)/);
    expect(worked).toBe(false);
    expect(changes(engine)).toEqual([]);
    expect(engine.pausedIds()).toEqual(['c2']);
  });

  it('tells the caller of each container before it pauses it, so a record never misses one', async () => {
    const engine = threeRunning();
    const window = registryWindow(engine, containersOf(engine, 'c1', 'c2'), { restart: true });
    const heard: string[] = [];

    await window.run(
      async () => 'done',
      ({ paused }) => {
        heard.push(`${paused.map((c) => c.id).join(',')} while paused: ${engine.pausedIds().join(',')}`);
      },
    );

    expect(heard).toEqual(['c1 while paused: ', 'c1,c2 while paused: c1']);
  });
});
