/**
 * The watchdog recovers by the record its run told it, which on a full disk
 * may be in no lock file: a real run process (built, from dist/) starts it,
 * tells it a record naming a trash with a half-done swap, and dies by
 * SIGKILL; the watchdog puts the swapped directory back and leaves its note.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { type HolderRecord, placeHere, processRef } from '../../src/storage/lockRecord.js';
import { tempDir } from '../support/tmp.js';

const WATCHDOG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/src/docker/watchdog.js');

let root: string;
beforeEach(async () => {
  root = await tempDir();
  fs.mkdirSync(path.join(root, 'docker/registry/v2'), { recursive: true });
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

/** Runs a process that starts a watchdog for `record`, tells it the record, and is killed (SIGKILL) right after. */
async function dieAfterTelling(record: HolderRecord): Promise<void> {
  const script = `
    const { startWatchdog } = await import(${JSON.stringify(WATCHDOG)});
    const watchdog = startWatchdog(${JSON.stringify(root)}, ${JSON.stringify(record.token)}, false);
    watchdog.tell(${JSON.stringify(record)});
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), 100);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
  await new Promise((resolve) => child.on('exit', resolve));
}

async function waitFor(file: string, ms: number): Promise<void> {
  for (const until = Date.now() + ms; Date.now() < until; ) {
    if (fs.existsSync(file)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${file} did not appear within ${ms} ms`);
}

it('recovers by the record it was told when no lock file holds one (a lock taken on a full disk)', async () => {
  // A swap the run announced and began: the directory is aside in the trash, not yet back.
  const trash = path.join(root, '.regsweep-trash-1-1');
  const prefix = path.join(root, 'docker/registry/v2/prefix');
  const aside = path.join(trash, 'swept/0');
  fs.mkdirSync(path.join(aside, 'kept'), { recursive: true });
  fs.writeFileSync(path.join(trash, 'swaps.jsonl'), `${JSON.stringify(['swap', aside, prefix])}\n`);
  const record: HolderRecord = {
    regsweep: 'lock',
    token: 'told-token',
    startedAt: new Date().toISOString(),
    place: placeHere(),
    process: processRef(process.pid),
    target: { kind: 'path', name: root },
    paused: [],
    bringBack: { restart: false },
    trash,
    trashes: [trash],
  };
  await dieAfterTelling(record);
  const note = path.join(root, '.regsweep.recovered.json');
  await waitFor(note, 10_000);
  expect(fs.readdirSync(prefix)).toEqual(['kept']);
  expect(JSON.parse(fs.readFileSync(note, 'utf8'))).toMatchObject({ by: 'watchdog', swapsUndone: 1 });
  expect(fs.existsSync(path.join(root, '.regsweep.lock'))).toBe(false);
});

it('leaves a lock file that another run holds alone, whatever it was told', async () => {
  const other = { regsweep: 'lock', token: 'someone-else', startedAt: new Date().toISOString(), place: placeHere(), process: processRef(process.pid), target: { kind: 'path', name: root }, paused: [], bringBack: { restart: false } };
  fs.writeFileSync(path.join(root, '.regsweep.lock'), JSON.stringify(other));
  const trash = path.join(root, '.regsweep-trash-1-1');
  const prefix = path.join(root, 'docker/registry/v2/prefix');
  fs.mkdirSync(path.join(trash, 'swept/0/kept'), { recursive: true });
  fs.writeFileSync(path.join(trash, 'swaps.jsonl'), `${JSON.stringify(['swap', path.join(trash, 'swept/0'), prefix])}\n`);
  await dieAfterTelling({ ...(other as HolderRecord), token: 'told-token', trash });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  expect(fs.existsSync(prefix)).toBe(false);
  expect(JSON.parse(fs.readFileSync(path.join(root, '.regsweep.lock'), 'utf8')).token).toBe('someone-else');
});
