/**
 * The watchdog process (see watchdog.ts): `node watchdogMain.js ROOT TOKEN docker|local`.
 * Waits for its run to end; if the run died without saying "done", brings the
 * registry back, leaves a note for the next run to report, and releases the
 * dead run's lock.
 */
import { inspectLock, releaseLock, saveRecoveryNote } from '../storage/runLock.js';
import { recoverRun } from './recovery.js';

const [root, token, mode] = process.argv.slice(2) as [string, string, string];

// Signals meant for regsweep's terminal or session are not for the watchdog.
for (const signal of ['SIGINT', 'SIGHUP', 'SIGQUIT'] as const) process.on(signal, () => {});

async function recover(): Promise<void> {
  const state = inspectLock(root);
  if (state?.record.token !== token) return; // released, or taken over by a run that recovers itself
  const engine = mode === 'docker' ? new (await import('./dockerodeEngine.js')).DockerodeEngine() : undefined;
  const recovery = await recoverRun(state.record, engine, 'watchdog');
  saveRecoveryNote(root, recovery);
  releaseLock(root, token);
}

let said = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  said += chunk;
});
process.stdin.on('close', () => {
  if (said.includes('done')) process.exit(0);
  recover().then(
    () => process.exit(0),
    () => process.exit(1), // the lock stays: the next run recovers
  );
});
process.stdin.resume();
