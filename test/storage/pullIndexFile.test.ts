/**
 * The pull index on a filesystem (issue 25, point 2): `<root>/.regsweep-pulls`
 * beside docker/, written whole or not at all. A round trip gives back what
 * was written; a read-only bind mount is read, not written ('read-only',
 * nothing changed); a process killed (SIGKILL) halfway through its write
 * leaves the previous index readable, and the next write removes its temp; a
 * full disk fails the write ('failed', why) and leaves the previous index.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PullIndex } from '../../src/plan/pullIndex.js';
import { readPullIndexFile, writePullIndexFile } from '../../src/storage/fs/pullIndexFile.js';
import { PULL_INDEX_NAME } from '../../src/storage/pullIndexStore.js';
import { waitForFile } from '../support/cli.js';
import { bindMount, canMount, mountTmpfs, unmountAll } from '../support/smallDisk.js';
import { tempDir } from '../support/tmp.js';

const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/src');
const mountable = canMount();
const DIGEST = `sha256:${'a'.repeat(64)}`;

/** An index of `tags` tags of team/big pulled at known times, and one digest pull, with coverage from `since`. */
function indexOf(tags: number, since: number): PullIndex {
  const index = PullIndex.empty();
  for (let i = 0; i < tags; i++) index.record({ repository: 'team/big', tag: `t${i}`, at: since + i });
  index.record({ repository: 'team/web', digest: DIGEST as never, at: since + 5 });
  index.advance([{ kind: 'file', id: 'registry.log', first: since }], since + tags + 10);
  return index;
}

/** The same construction, for a child process run from dist/ (the CLI's code, as built). */
const WRITER = `
import { PullIndex } from '${DIST}/plan/pullIndex.js';
import { writePullIndexFile } from '${DIST}/storage/fs/pullIndexFile.js';
const [root, tags, since] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const index = PullIndex.empty();
for (let i = 0; i < tags; i++) index.record({ repository: 'team/big', tag: 't' + i, at: since + i });
index.record({ repository: 'team/web', digest: 'sha256:${'a'.repeat(64)}', at: since + 5 });
index.advance([{ kind: 'file', id: 'registry.log', first: since }], since + tags + 10);
console.log(JSON.stringify(await writePullIndexFile(root, index.serialize())));
`;

function startWriter(root: string, tags: number, since: number, env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', WRITER, root, String(tags), String(since)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

const temps = (root: string): string[] => fs.readdirSync(root).filter((n) => n.startsWith(`${PULL_INDEX_NAME}.tmp-`));


const scratch: string[] = [];
afterEach(() => {
  unmountAll();
  for (const dir of scratch.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

async function registryRoot(): Promise<string> {
  const root = await tempDir('regsweep-pull-index-');
  scratch.push(root);
  fs.mkdirSync(path.join(root, 'docker/registry/v2/repositories'), { recursive: true });
  return root;
}

describe('the pull index file beside docker/', () => {
  beforeAll(() => {
    if (!fs.existsSync(path.join(DIST, 'storage/fs/pullIndexFile.js'))) execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  }, 120_000);

  it('reads none before the first write, then gives back exactly what was written, at ROOT/.regsweep-pulls, no temp left', async () => {
    const root = await registryRoot();
    expect(await readPullIndexFile(root)).toBeUndefined();
    const first = indexOf(3, 1_700_000_000_000).serialize();
    expect(await writePullIndexFile(root, first)).toEqual({ state: 'written' });
    expect(fs.readFileSync(path.join(root, '.regsweep-pulls'), 'utf8')).toBe(first);
    expect(await readPullIndexFile(root)).toBe(first);
    const back = PullIndex.parse((await readPullIndexFile(root)) as string);
    expect(back.lastPull('team/big', 't2', undefined)).toBe(1_700_000_000_002);
    expect(back.lastPull('team/web', 'any', DIGEST as never)).toBe(1_700_000_000_005);
    const second = indexOf(5, 1_800_000_000_000).serialize();
    expect(await writePullIndexFile(root, second)).toEqual({ state: 'written' });
    expect(await readPullIndexFile(root)).toBe(second);
    expect(fs.readdirSync(root).sort()).toEqual(['.regsweep-pulls', 'docker']);
  });

  it('throws, naming the file, when an index is there but cannot be read (a directory in its place)', async () => {
    const root = await registryRoot();
    fs.mkdirSync(path.join(root, PULL_INDEX_NAME));
    await expect(readPullIndexFile(root)).rejects.toThrow(`cannot read the pull index ${path.join(root, PULL_INDEX_NAME)}: EISDIR`);
  });

  it.skipIf(!mountable)('on a read-only bind mount of the root: read, not written (read-only), nothing changed', async () => {
    const root = await registryRoot();
    const before = indexOf(2, 1_700_000_000_000).serialize();
    await writePullIndexFile(root, before);
    const view = await tempDir('regsweep-ro-view-');
    scratch.push(view);
    bindMount(root, view);
    execFileSync('mount', ['-o', 'remount,bind,ro', view], { stdio: 'pipe' });
    expect(await readPullIndexFile(view)).toBe(before);
    expect(await writePullIndexFile(view, indexOf(9, 1_900_000_000_000).serialize())).toEqual({ state: 'read-only' });
    expect(fs.readFileSync(path.join(root, PULL_INDEX_NAME), 'utf8')).toBe(before);
    expect(fs.readdirSync(root).sort()).toEqual(['.regsweep-pulls', 'docker']);
  });

  it.skipIf(process.getuid?.() !== 0)('as a user who may not write the root (nobody, EACCES): read, not written (read-only), nothing changed', async () => {
    const root = await registryRoot();
    fs.chmodSync(root, 0o755);
    const before = indexOf(2, 1_700_000_000_000).serialize();
    await writePullIndexFile(root, before);
    const script = `
import { readPullIndexFile, writePullIndexFile } from '${DIST}/storage/fs/pullIndexFile.js';
const read = await readPullIndexFile(process.argv[1]);
console.log(JSON.stringify({ read, write: await writePullIndexFile(process.argv[1], 'other') }));
`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script, root], { uid: 65534, gid: 65534, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ read: before, write: { state: 'read-only' } });
    expect(fs.readFileSync(path.join(root, PULL_INDEX_NAME), 'utf8')).toBe(before);
    expect(fs.readdirSync(root).sort()).toEqual(['.regsweep-pulls', 'docker']);
  });

  it('a writer killed (SIGKILL) halfway through its temp leaves the previous index, readable and whole; the next write removes the temp', async () => {
    const root = await registryRoot();
    const previous = indexOf(10, 1_700_000_000_000).serialize();
    await writePullIndexFile(root, previous);
    // The writer from dist/ works when nothing stops it.
    const control = await registryRoot();
    const whole = await startWriter(control, 20_000, 1_750_000_000_000).done;
    expect(JSON.parse(whole.stdout)).toEqual({ state: 'written' });
    expect(PullIndex.parse((await readPullIndexFile(control)) as string).size()).toBe(20_001);

    const hold = path.join(root, '..', `hold-${path.basename(root)}`);
    scratch.push(hold);
    const writer = startWriter(root, 20_000, 1_750_000_000_000, { REGSWEEP_HOLD_AT: `pull-index-write:${hold}` });
    await waitForFile(hold, 30_000);
    const [temp] = temps(root);
    expect(temp).toBeDefined();
    const full = Buffer.byteLength(indexOf(20_000, 1_750_000_000_000).serialize());
    expect(fs.statSync(path.join(root, temp as string)).size).toBe(full >> 1);
    writer.child.kill('SIGKILL');
    expect((await writer.done).signal).toBe('SIGKILL');

    expect(await readPullIndexFile(root)).toBe(previous);
    const read = PullIndex.parse((await readPullIndexFile(root)) as string);
    expect(read.lastPull('team/big', 't9', undefined)).toBe(1_700_000_000_009);
    expect(temps(root)).toEqual([temp]);

    const next = indexOf(11, 1_800_000_000_000).serialize();
    expect(await writePullIndexFile(root, next)).toEqual({ state: 'written' });
    expect(temps(root)).toEqual([]);
    expect(await readPullIndexFile(root)).toBe(next);
  });

  it("removes a dead writer's temp and an old one, and leaves a live writer's recent temp alone", async () => {
    const root = await registryRoot();
    const gone = spawn(process.execPath, ['-e', '0']);
    const deadPid = gone.pid as number;
    await new Promise((r) => gone.on('close', r));
    const dead = `${PULL_INDEX_NAME}.tmp-${deadPid}-0000dead`;
    const live = `${PULL_INDEX_NAME}.tmp-${process.pid}-0000beef`;
    const old = `${PULL_INDEX_NAME}.tmp-${process.pid}-00000old`;
    for (const name of [dead, live, old]) fs.writeFileSync(path.join(root, name), 'half');
    const hourAgo = new Date(Date.now() - 3_600_000);
    fs.utimesSync(path.join(root, old), hourAgo, hourAgo);
    expect(await writePullIndexFile(root, indexOf(1, 1_700_000_000_000).serialize())).toEqual({ state: 'written' });
    expect(temps(root)).toEqual([live]);
  });

  it.skipIf(!mountable)('on a full disk the write fails (ENOSPC, said), the previous index stands and no temp is left', async () => {
    const disk = mountTmpfs(256, 64);
    const root = path.join(disk, 'root');
    fs.mkdirSync(path.join(root, 'docker'), { recursive: true });
    const previous = indexOf(10, 1_700_000_000_000).serialize();
    expect(await writePullIndexFile(root, previous)).toEqual({ state: 'written' });
    // Every byte left taken, beside the root.
    const filler = fs.openSync(path.join(disk, 'filler'), 'w');
    try {
      for (const block = Buffer.alloc(4096, 1); ; ) fs.writeSync(filler, block);
    } catch (error) {
      expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
    } finally {
      fs.closeSync(filler);
    }
    const result = await writePullIndexFile(root, indexOf(5_000, 1_800_000_000_000).serialize());
    expect(result.state).toBe('failed');
    expect(result.state === 'failed' && result.problem).toMatch(new RegExp(`cannot write the pull index ${root}/\\.regsweep-pulls: ENOSPC`));
    expect(await readPullIndexFile(root)).toBe(previous);
    expect(temps(root)).toEqual([]);
  });
});
