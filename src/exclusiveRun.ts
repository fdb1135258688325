/**
 * One real run per registry, and what it finds of earlier ones: the run lock
 * is taken before the scan and given up after the cleanup; a dead holder's
 * lock is taken over and its registry brought back first; a registry
 * container paused by someone else is refused. A dry run takes no lock and
 * only reports what it finds.
 */
import type { ContainerInfo, Engine } from './docker/engine.js';
import { type Recovery, recoverRun } from './docker/recovery.js';
import { refusePausedByOthers } from './docker/maintenanceWindow.js';
import { RollbackError } from './errors.js';
import type { Problem } from './model.js';
import type { AcquireOptions, LockState } from './storage/lockRecord.js';
import { RunLock, inspectLock, readRecoveryNote } from './storage/fs/lock.js';
import { requireRegistryRoot } from './storage/fs/scan.js';
import type { BucketClient } from './storage/s3/client.js';
import { BucketLock } from './storage/s3/lock.js';

export interface ExclusiveOptions extends AcquireOptions {
  root: string;
  /** The engine behind the registry containers, when there is one. */
  engine?: Engine;
  /** The registry containers this run will pause. */
  containers: readonly ContainerInfo[];
  /** `--restore`: what a dead run's watchdog recovered is reported without consuming its note, which the next real run reports. */
  keepRecoveryNote?: boolean;
}

/**
 * Runs `body` holding the lock, after recovering what a dead run left (by
 * taking its lock over, or from its watchdog's note). The lock is released
 * when `body` ends, unless the registry could not be brought back: then the
 * record stays for the watchdog or the next run to retry.
 */
export async function exclusively<T>(options: ExclusiveOptions, body: (lock: RunLock, recovered: Recovery | undefined) => Promise<T>): Promise<T> {
  requireRegistryRoot(options.root);
  const lock = await RunLock.acquire(options.root, options);
  // Interrupted before or after the window (the window handles its own signals): give the lock up, then end as the signal says.
  const onSignal = (signal: NodeJS.Signals): void => {
    if (lock.inWindow) return;
    lock.release();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.kill(process.pid, signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const recover = async (): Promise<Recovery | undefined> =>
    lock.previous ? recoverRun(lock.previous, options.engine, 'takeover') : (readRecoveryNote(options.root, !options.keepRecoveryNote) as Recovery | undefined);
  return holding(options, recover, (recovered) => body(lock, recovered), (keep) => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (keep) lock.abandon();
    else lock.release();
  });
}

/**
 * `exclusively` for a registry on a bucket: its lock is an object beside
 * docker/ (storage/s3/lock.ts), a dead holder's taken over after its
 * heartbeat stopped and what it paused brought back first. There is no trash
 * and no journal to recover: a bucket's removals are deletes.
 */
export async function exclusivelyOnBucket<T>(client: BucketClient, options: Omit<ExclusiveOptions, 'root' | 'keepRecoveryNote'>, body: (lock: BucketLock, recovered: Recovery | undefined) => Promise<T>): Promise<T> {
  const lock = await BucketLock.acquire(client, options);
  const recover = async (): Promise<Recovery | undefined> => (lock.previous ? recoverRun(lock.previous.record, options.engine, 'takeover') : undefined);
  return holding(options, recover, (recovered) => body(lock, recovered), async (keep) => {
    if (keep) lock.abandon();
    else await lock.release();
  });
}

/**
 * Holding a lock: recovers what a dead run left, refuses registry containers
 * paused by someone else, runs `body`, then `end` (keep: the registry could
 * not be brought back, so the lock's record stays for whoever comes next).
 */
async function holding<T>(
  options: { engine?: Engine; containers: readonly ContainerInfo[] },
  recover: () => Promise<Recovery | undefined>,
  body: (recovered: Recovery | undefined) => Promise<T>,
  end: (keep: boolean) => Promise<void> | void,
): Promise<T> {
  let keep = false;
  try {
    const recovered = await recover();
    if (options.engine) await refusePausedByOthers(options.engine, options.containers.filter((c) => c.running));
    return await body(recovered);
  } catch (error) {
    keep = error instanceof RollbackError;
    throw error;
  } finally {
    await end(keep);
  }
}

export interface Findings {
  lockState?: LockState;
  recovered?: Recovery;
  /** A dead run's lock, registry containers found paused: problems the report lists. */
  notices: Problem[];
}

/** What a dry run reports of other runs, changing nothing: the lock, a watchdog's note, paused registry containers. */
export function findings(root: string, containers: readonly ContainerInfo[]): Findings {
  const lockState = inspectLock(root);
  const notices: Problem[] = [];
  if (lockState && !lockState.alive) {
    const { process: p, place, startedAt } = lockState.record;
    notices.push({ message: `a regsweep run (pid ${p.pid} on ${place.hostname}, started ${startedAt}) died holding this registry; the next real run brings back what it paused` });
  }
  for (const c of containers) if (c.paused) notices.push({ message: `registry container ${c.name} is paused` });
  return { lockState, recovered: readRecoveryNote(root, false) as Recovery | undefined, notices };
}
