/**
 * `REGSWEEP_SELF_CONTAINER` that names no container of the engine, with a real
 * Docker engine: a refusal (one line, exit 2) before anything is planned,
 * locked or changed, where it used to be ignored and the run went on as if
 * regsweep ran on the host.
 */
import fs from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { TreeWriter } from '../../scripts/sampleTree.js';
import { runCli } from '../support/cli.js';
import { TEST_LABEL, dockerAvailable, docker, removeVolume, uniqueName } from '../support/docker.js';
import { snapshot } from '../support/tmp.js';

let volume: string | undefined;
afterEach(async () => {
  if (volume) await removeVolume(volume);
  volume = undefined;
});

describe.skipIf(!dockerAvailable() || process.getuid?.() !== 0)('REGSWEEP_SELF_CONTAINER, real engine', () => {
  it('naming no container refuses a real run of a volume: one line, exit 2, the volume untouched', async () => {
    volume = uniqueName('regsweep-self');
    await docker().createVolume({ Name: volume, Labels: { [TEST_LABEL]: '1' } });
    const root = (await docker().getVolume(volume).inspect()).Mountpoint;
    const w = await new TreeWriter(root).init();
    await w.image('app', { seed: 'one', tag: 'v1' });
    await w.image('app', { seed: 'two', tag: 'v1' });
    const before = await snapshot(root);

    const run = await runCli(['-v', volume, '--yes', '--json'], { env: { REGSWEEP_SELF_CONTAINER: 'no-such-regsweep-container' } });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe('regsweep: REGSWEEP_SELF_CONTAINER names no container of this Docker engine: no-such-regsweep-container; name the container regsweep runs in, or unset it\n');
    expect(await snapshot(root)).toEqual(before);
    expect(await fs.readdir(root)).toEqual(['docker']);

    // The same run without it goes ahead (regsweep runs on the host): the refusal was the variable's.
    const plain = await runCli(['-v', volume, '--dry-run', '--json']);
    expect(plain.code).toBe(0);
    expect(JSON.parse(plain.stdout).plan.manifests).toHaveLength(1);
  });
});
