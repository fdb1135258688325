/**
 * Which registries a run restarts after its window (the rest it only
 * unpauses, failing no request): those whose config keeps blob descriptors in
 * memory, and those whose config it cannot read. Fake engine: the decision
 * only; the real registry's reading of each config is test/gc/blobDescriptorCache.test.ts,
 * the real restart under load test/e2e/outage.docker.e2e.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { registryWindow, whyRestart } from '../../src/docker/maintenanceWindow.js';
import { FakeEngine } from '../support/fakeEngine.js';

const CONFIG = '/etc/docker/registry/config.yml';
const config = (cache: string): string => `version: 0.1\nstorage:\n${cache}  filesystem:\n    rootdirectory: /var/lib/registry\n`;

describe('whyRestart', () => {
  it('restarts for an in-memory cache, on any of the containers', async () => {
    const engine = new FakeEngine();
    const a = engine.addContainer({ id: 'a', files: { [CONFIG]: config('') } });
    const b = engine.addContainer({ id: 'b', files: { [CONFIG]: config('  cache:\n    blobdescriptor: inmemory\n') } });
    expect(await whyRestart(engine, [a])).toBeUndefined();
    expect(await whyRestart(engine, [a, b])).toBe('its blob descriptor cache is in its memory');
  });

  it('unpauses where the environment turns the cache off, or Redis holds it (regsweep empties that itself)', async () => {
    const engine = new FakeEngine();
    const off = engine.addContainer({ id: 'off', env: { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: '' }, files: { [CONFIG]: config('  cache:\n    blobdescriptor: inmemory\n') } });
    const redis = engine.addContainer({ id: 'redis', files: { [CONFIG]: `${config('  cache:\n    blobdescriptor: redis\n')}redis:\n  addr: 127.0.0.1:6379\n` } });
    expect(await whyRestart(engine, [off, redis])).toBeUndefined();
  });

  it('restarts when the config cannot be found, read or parsed: the safe choice', async () => {
    const engine = new FakeEngine();
    const none = engine.addContainer({ id: 'none' });
    const bad = engine.addContainer({ id: 'bad', files: { [CONFIG]: 'storage: [' } });
    expect(await whyRestart(engine, [none])).toMatch(/config could not be read/);
    expect(await whyRestart(engine, [bad])).toMatch(/config could not be read/);
  });

  it('the window says it unpauses, and why, and then unpauses', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'r', files: { [CONFIG]: config('') } });
    const window = registryWindow(engine, [c], { restart: false, because: 'no blob descriptor cache in its memory to empty' });
    expect(window.description).toBe('r paused during the purge and garbage-collect, then unpaused (no blob descriptor cache in its memory to empty)');
    const { broughtBack } = await window.run(async () => {});
    expect((await engine.container('r'))?.paused).toBe(false);
    expect(broughtBack).toEqual({ how: 'unpaused', why: 'no blob descriptor cache in its memory to empty' });
    expect(engine.callsOf('restart')).toEqual([]);
  });

  it('the window restarts where a cache is in memory, and says so; a swarm service is replaced, with the update order', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'r', files: { [CONFIG]: config('  cache:\n    blobdescriptor: inmemory\n') } });
    const because = await whyRestart(engine, [c]);
    const { broughtBack } = await registryWindow(engine, [c], { restart: true, because }).run(async () => {});
    expect(broughtBack).toEqual({ how: 'restarted', why: 'its blob descriptor cache is in its memory' });
    expect(engine.callsOf('restart')).toEqual(['restart r']);
    const t1 = engine.addContainer({ id: 't1' });
    engine.addService('svc', ['t1']);
    const replaced = await registryWindow(engine, [t1], { restart: true, service: 'svc', because }).run(async () => {});
    expect(replaced.broughtBack).toEqual({ how: 'replaced', order: 'stop-first', why: 'its blob descriptor cache is in its memory' });
  });

  it('nothing running: nothing paused, nothing brought back', async () => {
    const engine = new FakeEngine();
    const c = engine.addContainer({ id: 'r', running: false });
    const { broughtBack, pausedMs } = await registryWindow(engine, [c], { restart: true }).run(async () => {});
    expect(broughtBack).toBeUndefined();
    expect(pausedMs).toBe(0);
    expect(engine.calls.filter((call) => /^(pause|restart)/.test(call))).toEqual([]);
  });
});
