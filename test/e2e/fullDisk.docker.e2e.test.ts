/**
 * Issue 22, point 1, on a real Docker engine: a registry container whose
 * storage is a small tmpfs of this host mounted at /var/lib/registry, its
 * storage root a directory in it (`/var/lib/registry/store`), the mixed
 * scenario pushed through it. While it runs, files beside the root take the
 * disk's last byte, last inode, or both (written from this host), and a probe
 * proves that not one more file with one byte fits in the root. On that disk `regsweep <container> --yes`, with its own sweep
 * and with the default (the registry's garbage-collect in a helper
 * container), exits 0, frees exactly what it predicted, reports no problem,
 * leaves the root holding only `docker/` and the fillers whole, and the
 * registry runs unpaused and serves every kept tag and digest whole.
 *
 * Not a Docker volume of the local driver with `type=tmpfs`: the engine
 * unmounts such a volume when its last container stops and mounts a fresh,
 * empty tmpfs at the next start (measured here with `docker restart`), so the
 * restart that ends every real run would lose the whole registry.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { TEST_LABEL, dockerAvailable, freePort, removeContainers, runRegistryContainer, uniqueName } from '../support/docker.js';
import { containerState, expectServesWhole } from '../support/e2eRegistry.js';
import { pushMixedScenario } from '../support/scenario.js';
import { FILLS, type Fill, canMount, expectSweptExactly, fillDisk, mountTmpfs, unmountAll } from '../support/smallDisk.js';
import { blobBytes } from '../support/tmp.js';

const enabled = dockerAvailable() && canMount();
/** Where the registry stores, on its disk: the fillers sit beside it, outside the storage root. */
const STORE = 'store';
const MODES = [
  ['the default sweep (builtin)', ['--grace', '0s']],
  ["the registry's garbage-collect (--gc registry)", ['--gc', 'registry']],
] as const;

describe.skipIf(!enabled)('a full disk, a registry container on a small tmpfs', () => {
  afterEach(async () => {
    await removeContainers({ label: TEST_LABEL }); // before the unmount: the registry holds the disk
    unmountAll();
  });

  /** The registry on a fresh small tmpfs, the scenario pushed, then the disk filled by `fill` while the registry runs. */
  async function deployOnFullDisk(fill: Fill) {
    const disk = mountTmpfs(4096, 1024);
    const name = uniqueName('reg-full');
    const port = await freePort();
    await runRegistryContainer({ name, port, bind: { host: disk, container: '/var/lib/registry' }, env: [`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry/${STORE}`] });
    const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${port}`));
    const root = path.join(disk, STORE);
    const fillers = fillDisk(disk, fill, root);
    return { name, port, disk, root, scenario, fillers };
  }

  describe.each(FILLS)('%s', (_, fill) => {
    it.each(MODES)('%s frees exactly what it predicted, leaves only docker/ in the root, and the registry serves every kept tag whole', async (_mode, args) => {
      const { name, port, disk, root, scenario, fillers } = await deployOnFullDisk(fill);
      const before = await blobBytes(root);
      const run = await runCli([name, '--yes', '--json', ...args]);
      await expectSweptExactly(run, { root, disk, store: STORE, fillers, before });
      expect(await containerState(name)).toMatchObject({ running: true, paused: false });

      for (const p of fillers.paths) fs.rmSync(p, { recursive: true });
      await expectServesWhole(port, scenario);
    }, 120_000);
  });
});
