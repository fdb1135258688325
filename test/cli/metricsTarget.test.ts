/**
 * `--metrics-file`'s `target` label is what the command line named, on a
 * refusal as on a run of the same target: the word a run takes for TARGET,
 * wherever it stands among the options, also when commander refused the line
 * before reading that far (a bad value after it), and when the run reached a
 * container named by its id.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { docker, dockerAvailable, freePort, removeContainers, removeVolume, runRegistryContainer, uniqueName } from '../support/docker.js';
import { tempDir } from '../support/tmp.js';

const NO_POLICY = '/nonexistent/regsweep-policy.yml';

const labels = async (file: string): Promise<string[]> => [...new Set([...(await fs.readFile(file, 'utf8')).matchAll(/\{target="([^"]*)"\}/g)].map((m) => m[1] as string))];

describe('the metrics target label of a command line refused', () => {
  let dir: string;
  beforeAll(async () => (dir = await tempDir()));
  afterAll(() => fs.rm(dir, { recursive: true, force: true }));

  it.each([
    ['TARGET after a flag', ['--dry-run', 'registry', '--keep', 'ten']],
    ['TARGET after an option and its value', ['--top', '5', 'registry', '--keep', 'ten']],
    ['TARGET after --opt=value and a value that is a dash', ['--grace=2h', '--keep-digests', '-', 'registry', '--older-than', 'soon']],
    ['TARGET first', ['registry', '--dry-run', '--keep', 'ten']],
  ])('%s: the TARGET a run of it takes', async (_name, args) => {
    const file = path.join(dir, 'refused.prom');
    const run = await runCli([...args, '--metrics-file', file]);
    expect(run.code).toBe(2);
    expect(await labels(file)).toEqual(['registry']);
  });

  it('-x REF... takes what follows it, as commander does: no TARGET after it', async () => {
    const file = path.join(dir, 'after-x.prom');
    expect((await runCli(['--dry-run', '-x', 'app:v1', 'registry', '--keep', 'ten', '--metrics-file', file])).code).toBe(2);
    expect(await labels(file)).toEqual(['']);
  });
});

describe.skipIf(!dockerAvailable())('the metrics target label, a real registry container', () => {
  const name = uniqueName('regsweep-metrics');
  let dir: string;
  let id: string;
  beforeAll(async () => {
    dir = await tempDir();
    const container = await runRegistryContainer({ name, port: await freePort(), volume: { name } });
    id = (await container.inspect()).Id.slice(0, 12);
    // A tree in its volume, so a run reaches it (a registry that was never pushed to has no docker/ yet).
    await new TreeWriter((await docker().getVolume(name).inspect()).Mountpoint).init();
  }, 60_000);
  afterAll(async () => {
    await removeContainers(name);
    await removeVolume(name);
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('is the id the command line gave, on a refusal and on a run alike', async () => {
    const refusedFile = path.join(dir, 'refused.prom');
    // Refused by commander before it reached the container (a bad value), and by regsweep before the engine was asked.
    const refused = await runCli(['--dry-run', id, '--keep', 'ten', '--metrics-file', refusedFile]);
    expect(refused.code).toBe(2);
    const noPolicyFile = path.join(dir, 'no-policy.prom');
    expect((await runCli(['--dry-run', id, '--policy', NO_POLICY, '--metrics-file', noPolicyFile])).code).toBe(2);
    const ranFile = path.join(dir, 'ran.prom');
    const ran = await runCli(['--dry-run', id, '--json', '--metrics-file', ranFile]);
    expect(ran.code).toBe(0);
    // The run did reach the container.
    expect(JSON.parse(ran.stdout).target.kind).toBe('container');
    expect(await labels(refusedFile)).toEqual([id]);
    expect(await labels(noPolicyFile)).toEqual([id]);
    expect(await labels(ranFile)).toEqual([id]);
  });

  it('is the name the command line gave, on a refusal and on a run alike', async () => {
    const refusedFile = path.join(dir, 'refused-by-name.prom');
    expect((await runCli(['--quiet', name, '--policy', NO_POLICY, '--metrics-file', refusedFile])).code).toBe(2);
    const ranFile = path.join(dir, 'ran-by-name.prom');
    expect((await runCli(['--quiet', name, '--dry-run', '--metrics-file', ranFile])).code).toBe(0);
    expect(await labels(refusedFile)).toEqual([name]);
    expect(await labels(ranFile)).toEqual([name]);
  });
});
