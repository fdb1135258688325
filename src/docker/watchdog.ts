/**
 * The watchdog: a small process that outlives regsweep. It is started, in a
 * session of its own, before the registry is paused, and holds the read end
 * of a pipe whose write end only regsweep holds. When regsweep ends normally
 * it says "done" and the watchdog exits quietly; when regsweep dies in any way
 * (SIGKILL, OOM, a crash), the kernel closes the pipe and the watchdog brings
 * the registry back at once (watchdogMain.ts), by the lock record the run last
 * told it through the same pipe. If the watchdog dies too, the
 * next run finds the dead run's lock and recovers instead.
 */
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type HolderRecord, type ProcessRef, processRef } from '../storage/lockRecord.js';

export interface Watchdog {
  readonly process: ProcessRef;
  /** The run's lock record as it is now: the watchdog recovers by the last one it was told (the lock file may not hold it yet). */
  tell(record: Readonly<HolderRecord>): void;
  /** The run brought the registry back itself: the watchdog may go. */
  done(): void;
}

/** Starts the watchdog of the run holding `token` on the storage at `root`; `docker` when it must ask the engine. */
export function startWatchdog(root: string, token: string, docker: boolean): Watchdog {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./watchdogMain.js', import.meta.url)), root, token, docker ? 'docker' : 'local'], {
    detached: true, // its own session: a Ctrl-C or SIGHUP for regsweep's process group does not reach it
    stdio: ['pipe', 'ignore', 'ignore'],
    env: process.env,
  });
  child.unref();
  (child.stdin as unknown as Socket).unref();
  return {
    process: processRef(child.pid as number),
    tell(record) {
      child.stdin?.write(`record ${JSON.stringify(record)}\n`);
    },
    done() {
      child.stdin?.end('done\n');
    },
  };
}
