/**
 * Bringing the registry back after a run died inside its maintenance window
 * (SIGKILL, OOM, a crash): stop the garbage-collect it started, remove its
 * helper containers, restart (or unpause) what it paused, and take the swarm
 * services it set read-only out of that mode, as a normal run would have.
 * Done by the run's watchdog at once, or by the next run that finds the dead
 * run's lock.
 */
import { type HolderRecord, runningHere } from '../storage/lockRecord.js';
import { undoSwaps } from '../storage/fs/swap.js';
import type { ContainerInfo, Engine } from './engine.js';
import { bringBack } from './maintenanceWindow.js';
import { releaseReadOnly } from './readOnly.js';

export interface Recovery {
  /** Who recovered: the dead run's watchdog, or the run that took its lock over. */
  by: 'watchdog' | 'takeover';
  at: string;
  holder: { pid: number; hostname: string; startedAt: string };
  /** Registry containers it found paused by the dead run and brought back. */
  containers: string[];
  /** Swarm services it found read-only by the dead run and put back (absent in notes of older runs). */
  services?: string[];
  /** Helper containers (garbage-collect) of the dead run it removed. */
  helpersRemoved: number;
  /** A garbage-collect process of the dead run it stopped. */
  gcStopped: boolean;
  /** Directories the dead run was swapping out when it died, put back whole (storage/fs/swap.ts). */
  swapsUndone: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Kills the dead run's garbage-collect if it still runs here (its whole
 * process group: it was started as a group leader), and waits until it is
 * gone (5 s at most).
 */
async function stopGarbageCollect(record: HolderRecord): Promise<boolean> {
  if (!runningHere(record.place, record.gc)) return false;
  const pid = record.gc?.pid as number;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    process.kill(pid, 'SIGKILL');
  }
  for (let i = 0; i < 50 && runningHere(record.place, record.gc); i++) await sleep(100);
  return true;
}

/** The containers the dead run paused that are still paused now. */
async function stillPaused(engine: Engine, record: HolderRecord): Promise<ContainerInfo[]> {
  const now = await Promise.all(record.paused.map((c) => engine.container(c.id)));
  return now.filter((c): c is ContainerInfo => c?.paused === true);
}

export async function recoverRun(record: HolderRecord, engine: Engine | undefined, by: Recovery['by']): Promise<Recovery> {
  const gcStopped = await stopGarbageCollect(record);
  // Before the registry serves again: kept entries of a half-done swap are not where it looks.
  let swapsUndone = 0;
  for (const trash of new Set([record.trash, ...(record.trashes ?? [])])) swapsUndone += undoSwaps(trash);
  const helpersRemoved = engine ? await engine.removeRunHelpers(record.token) : 0;
  const paused = engine ? await stillPaused(engine, record) : [];
  if (engine && paused.length > 0) await bringBack(engine, paused, record.bringBack);
  // Only where the variable still holds the dead run's value: a change made since stays.
  const services = engine && record.readOnly?.length ? (await releaseReadOnly(engine, record.readOnly)).services : [];
  return {
    by,
    at: new Date().toISOString(),
    holder: { pid: record.process.pid, hostname: record.place.hostname, startedAt: record.startedAt },
    containers: paused.map((c) => c.name),
    services,
    helpersRemoved,
    gcStopped,
    swapsUndone,
  };
}
