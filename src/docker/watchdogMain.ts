/**
 * The watchdog process (see watchdog.ts): `node watchdogMain.js ROOT TOKEN docker|local`.
 * Waits for its run to end; if the run died without saying "done", brings the
 * registry back, leaves a note for the next run to report, and releases the
 * dead run's lock.
 */
import type { HolderRecord } from '../storage/lockRecord.js';
import { inspectLock, releaseLock, saveRecoveryNote } from '../storage/fs/lock.js';
import { recoverRun } from './recovery.js';

const [root, token, mode] = process.argv.slice(2) as [string, string, string];

// Signals meant for regsweep's terminal or session are not for the watchdog.
for (const signal of ['SIGINT', 'SIGHUP', 'SIGQUIT'] as const) process.on(signal, () => {});

/** What the run said on the pipe: the last record it told, and whether it said it is done. */
function heard(said: string): { record?: HolderRecord; done: boolean } {
  let record: HolderRecord | undefined;
  let done = false;
  for (const line of said.split('\n')) {
    if (line === 'done') done = true;
    else if (line.startsWith('record ')) {
      try {
        record = JSON.parse(line.slice('record '.length)) as HolderRecord;
      } catch {
        // Cut short as the run died: the one before it stands.
      }
    }
  }
  return { record, done };
}

/**
 * A lock in a bucket (`s3://…`): this process has no way into it. The registry
 * is brought back by the record the run told; the lock stays until its
 * heartbeat is stale, and the next run takes it over and reports it.
 */
async function recoverFromBucket(told: HolderRecord | undefined): Promise<void> {
  if (!told) return;
  const engine = mode === 'docker' ? new (await import('./dockerodeEngine.js')).DockerodeEngine() : undefined;
  await recoverRun(told, engine, 'watchdog');
}

async function recover(told: HolderRecord | undefined): Promise<void> {
  if (root.startsWith('s3://')) return recoverFromBucket(told);
  const state = inspectLock(root);
  // Released, or taken over by a run that recovers itself; no file at all: the run took its lock on a full disk.
  if (state ? state.record.token !== token : told === undefined) return;
  const record = told ?? (state as NonNullable<typeof state>).record;
  const engine = mode === 'docker' ? new (await import('./dockerodeEngine.js')).DockerodeEngine() : undefined;
  const recovery = await recoverRun(record, engine, 'watchdog');
  saveRecoveryNote(root, recovery);
  releaseLock(root, token);
}

let said = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  said += chunk;
});
process.stdin.on('close', () => {
  const { record, done } = heard(said);
  if (done) process.exit(0);
  recover(record?.token === token ? record : undefined).then(
    () => process.exit(0),
    () => process.exit(1), // the lock stays: the next run recovers
  );
});
process.stdin.resume();
