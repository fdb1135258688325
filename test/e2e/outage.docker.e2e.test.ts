/**
 * Issue 23, point 8: four clients pull the kept tags whole in a loop while a
 * real run purges the registry container. Where the registry keeps no blob
 * descriptor cache in its memory the run only unpauses it, and not one request
 * fails; where it does (the image's default config), the run restarts it and
 * the failures are bounded by that restart. The figures go to BENCHMARKS.md
 * from `npm run bench:outage`; here only the behaviour is asserted.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type LoadResult, startPullLoad } from '../../scripts/pullLoad.js';
import { RegistryClient } from '../../scripts/registryClient.js';
import { runCli } from '../support/cli.js';
import { TEST_LABEL, dockerAvailable, freePort, removeContainers, removeVolume, runRegistryContainer, uniqueName } from '../support/docker.js';
import { STATE_CHANGES, containerEvents, expectServesWhole } from '../support/e2eRegistry.js';
import { pushMixedScenario } from '../support/scenario.js';

const enabled = dockerAvailable();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Outcome {
  exitCode: number | null;
  report: { gc: { mode: string; ran: boolean }; freed: unknown; predicted: { blobs: number }; broughtBack: unknown };
  stderr: string;
  load: LoadResult;
  changes: string[];
}

/** A registry:2 container with `env`, the mixed scenario in it, purged by a real run under four pulling clients. */
async function purgeUnderLoad(volumes: string[], env: string[]): Promise<Outcome & { port: number; scenario: Awaited<ReturnType<typeof pushMixedScenario>> }> {
  const name = uniqueName('reg-outage');
  const volume = uniqueName('vol');
  volumes.push(volume);
  const port = await freePort();
  await runRegistryContainer({ name, port, volume: { name: volume }, env });
  const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${port}`));
  const targets = scenario.tags.map(({ repository, tag }) => ({ repository, reference: tag }));
  const since = Date.now();
  const load = startPullLoad(`http://127.0.0.1:${port}`, targets, { clients: 4 });
  await sleep(500);
  const result = await runCli([name, '--yes', '--json', '--grace', '0s']);
  await sleep(1000); // clients keep pulling after the run: a registry still coming up counts
  const loaded = await load.stop();
  const changes = (await containerEvents(name, since, Date.now())).map((e) => e.action).filter((a) => STATE_CHANGES.includes(a));
  return { exitCode: result.code, report: JSON.parse(result.stdout || '{}'), stderr: result.stderr, load: loaded, changes, port, scenario };
}

describe.skipIf(!enabled)('no request fails during the window (issue 23, point 8)', () => {
  const volumes: string[] = [];
  afterEach(async () => {
    await removeContainers({ label: TEST_LABEL });
    for (const v of volumes.splice(0)) await removeVolume(v);
  });

  it('a registry with no blob descriptor cache is only unpaused: not one of the pulls around the run fails', async () => {
    // An empty value disables the cache in 2.8.2 and 3.0.0 alike ("unknown cache type …, caching disabled").
    const outcome = await purgeUnderLoad(volumes, ['REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR=']);
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    expect(outcome.report.gc).toMatchObject({ mode: 'builtin', ran: true });
    expect(outcome.report.predicted.blobs).toBeGreaterThan(0);
    expect(outcome.changes).toEqual(['pause', 'unpause']);
    expect(outcome.report.broughtBack).toEqual({ how: 'unpaused', why: 'no blob descriptor cache in its memory to empty' });
    expect(outcome.load.requests).toBeGreaterThan(50);
    expect(outcome.load, JSON.stringify(outcome.load)).toMatchObject({ failed: 0, reasons: {} });
    await expectServesWhole(outcome.port, outcome.scenario);
  });

  it('a registry with its in-memory cache is restarted while paused, and the requests it refuses fit in that restart', async () => {
    const outcome = await purgeUnderLoad(volumes, []);
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    // Restarted while paused: the engine signals it before it unpauses it, so its stale cache gets no gap to answer in.
    expect(outcome.changes.slice(0, 2)).toEqual(['pause', 'kill']);
    expect(outcome.changes).toContain('restart');
    expect(outcome.report.broughtBack).toEqual({ how: 'restarted', why: 'its blob descriptor cache is in its memory' });
    expect(outcome.load.requests).toBeGreaterThan(50);
    // Whatever failed, failed in one stretch no longer than a restart, and the registry then served every pull.
    expect(outcome.load.failingMs).toBeLessThan(5_000);
    expect(Object.keys(outcome.load.reasons).every((r) => /ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET|other side closed/.test(r)), JSON.stringify(outcome.load.reasons)).toBe(true);
    await expectServesWhole(outcome.port, outcome.scenario);
  });
});
