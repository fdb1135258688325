/**
 * Kill points for the crash tests (`npm run stress -- --crash N`): a run dies
 * by SIGKILL at the Nth step that changes something, as a crash, an OOM kill
 * or a power loss would end it there. Off unless the environment asks:
 *
 * - `REGSWEEP_CRASH_AT=N`: the Nth call of failpoint() kills this process;
 *   `REGSWEEP_CRASH_AT=NAME`: the first call named NAME does.
 * - `REGSWEEP_CRASH_COUNT=FILE`: every call appends `<n> <name>` to FILE, so a
 *   harness learns a run's real points and picks N among them.
 * - `REGSWEEP_HOLD_AT=NAME:FILE`: the first point called NAME writes FILE and
 *   holds this process there (it blocks: no timer, no request) until FILE is
 *   removed, two minutes at most, so a test looks at the registry from
 *   inside the window: what its replicas serve while the run is there.
 *
 * They are read once and taken out of the environment, so the processes this
 * one starts (its watchdog, garbage-collect, worker threads) never inherit
 * them: only the run under test dies or waits. Off, a call costs one comparison.
 */
import fs from 'node:fs';

const crashSaid = process.env['REGSWEEP_CRASH_AT'] ?? '';
const crashAt = /^\d+$/.test(crashSaid) ? Number(crashSaid) : 0;
const crashName = crashAt === 0 && crashSaid !== '' ? crashSaid : undefined;
const countFile = process.env['REGSWEEP_CRASH_COUNT'];
const holdAt = /^([^:]+):(.+)$/.exec(process.env['REGSWEEP_HOLD_AT'] ?? '');
delete process.env['REGSWEEP_CRASH_AT'];
delete process.env['REGSWEEP_CRASH_COUNT'];
delete process.env['REGSWEEP_HOLD_AT'];
const armed = crashAt > 0 || crashName !== undefined || countFile !== undefined || holdAt !== null;
let passed = 0;
let held = false;

/** Writes `file` and blocks until it is gone (at most two minutes). */
function holdHere(name: string, file: string): void {
  held = true;
  fs.writeFileSync(file, `${process.pid} ${name}\n`);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (const until = Date.now() + 120_000; fs.existsSync(file) && Date.now() < until; ) Atomics.wait(nap, 0, 0, 50);
}

/** A step that changes something: with the crash tests armed, counted, and the chosen one is where this process dies (or waits). */
export function failpoint(name: string): void {
  if (!armed) return;
  passed++;
  if (countFile !== undefined) fs.appendFileSync(countFile, `${passed} ${name}\n`);
  if (passed === crashAt || name === crashName) process.kill(process.pid, 'SIGKILL');
  if (holdAt && !held && holdAt[1] === name) holdHere(name, holdAt[2] as string);
}
