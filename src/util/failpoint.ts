/**
 * Kill points for the crash tests (`npm run stress -- --crash N`): a run dies
 * by SIGKILL at the Nth step that changes something, as a crash, an OOM kill
 * or a power loss would end it there. Off unless the environment asks:
 *
 * - `REGSWEEP_CRASH_AT=N`: the Nth call of failpoint() kills this process.
 * - `REGSWEEP_CRASH_COUNT=FILE`: every call appends `<n> <name>` to FILE, so a
 *   harness learns a run's real points and picks N among them.
 *
 * Both are read once and taken out of the environment, so the processes this
 * one starts (its watchdog, garbage-collect, worker threads) never inherit
 * them: only the run under test dies. Off, a call costs one comparison.
 */
import fs from 'node:fs';

const crashAt = Number(process.env['REGSWEEP_CRASH_AT'] ?? 0);
const countFile = process.env['REGSWEEP_CRASH_COUNT'];
delete process.env['REGSWEEP_CRASH_AT'];
delete process.env['REGSWEEP_CRASH_COUNT'];
const armed = crashAt > 0 || countFile !== undefined;
let passed = 0;

/** A step that changes something: with the crash tests armed, counted, and the chosen one is where this process dies. */
export function failpoint(name: string): void {
  if (!armed) return;
  passed++;
  if (countFile !== undefined) fs.appendFileSync(countFile, `${passed} ${name}\n`);
  if (passed === crashAt) process.kill(process.pid, 'SIGKILL');
}
