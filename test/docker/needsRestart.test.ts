/**
 * Which registries a run restarts after its window (the rest it only
 * unpauses, failing no request): those whose config keeps blob descriptors in
 * memory, and those whose config it cannot read. Fake engine: the decision
 * only; the real registry's reading of each config is test/gc/blobDescriptorCache.test.ts,
 * the real restart under load test/e2e/outage.docker.e2e.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { needsRestart, registryWindow } from '../../src/docker/maintenanceWindow.js';
import { FakeEngine } from '../support/fakeEngine.js';

const CONFIG = '/etc/docker/registry/config.yml';
const config = (cache: string): string => `version: 0.1\nstorage:\n${cache}  filesystem:\n    rootdirectory: /var/lib/registry\n`;

describe('needsRestart', () => {
  it('restarts for an in-memory cache, on any of the containers', async () => {
    const engine = new FakeEngine();
    const a = engine.addContainer({ id: 'a', files: { [CONFIG]: config('') } });
    const b = engine.addContainer({ id: 'b', files: { [CONFIG]: config('  cache:\n    blobdescriptor: inmemory\n') } });
    expect(await needsRestart(engine, [a])).toBe(false);
    expect(await needsRestart(engine, [a, b])).toBe(true);
  });

  it('unpauses where the environment turns the cache off, or Redis holds it (regsweep empties that itself)', async () => {
    const engine = new FakeEngine();
    const off = engine.addContainer({ id: 'off', env: { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: '' }, files: { [CONFIG]: config('  cache:\n    blobdescriptor: inmemory\n') } });
    const redis = engine.addContainer({ id: 'redis', files: { [CONFIG]: `${config('  cache:\n    blobdescriptor: redis\n')}redis:\n  addr: 127.0.0.1:6379\n` } });
    expect(await needsRestart(engine, [off, redis])).toBe(false);
  });

  it('restarts when the config cannot be found, read or parsed: the safe choice', async () => {
    const engine = new FakeEngine();
    const none = engine.addContainer({ id: 'none' });
    const bad = engine.addContainer({ id: 'bad', files: { [CONFIG]: 'storage: [' } });
    expect(await needsRestart(engine, [none])).toBe(true);
    expect(await needsRestart(engine, [bad])).toBe(true);
  });

  it('the window says it unpauses, and why, and then unpauses', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'r', files: { [CONFIG]: config('') } });
    const window = registryWindow(engine, [c], { restart: false, because: 'no blob descriptor cache in its memory to empty' });
    expect(window.description).toBe('r paused during the purge and garbage-collect, then unpaused (no blob descriptor cache in its memory to empty)');
    await window.run(async () => {});
    expect((await engine.container('r'))?.paused).toBe(false);
  });
});
