/**
 * The engine's service updates on a real swarm when somebody else updates the
 * service between regsweep's read of its spec and regsweep's write: the engine
 * answers "update out of sequence". The forced restart that brings a service
 * back after the window, the read-only variable's update, and the put-back of
 * the user's update order each read the spec again and update anew, so the
 * service comes back and the other update is kept, not overwritten.
 *
 * The other update is a real one on the same engine, made on the first write
 * of each pair (the first attempt of each update regsweep makes: the retry
 * goes through). It changes only a service label, which starts no task.
 */
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerodeEngine } from '../../src/docker/dockerodeEngine.js';
import { docker, dockerAvailable, waitForHttp } from '../support/docker.js';
import { startSwarmRegistry } from '../support/e2eRegistry.js';

const enabled = dockerAvailable();

/** The user's own update config, which regsweep's updates (their own order) must leave as it was. */
const USER_UPDATE_CONFIG = { Parallelism: 1, FailureAction: 'pause', Monitor: 5_000_000_000, MaxFailureRatio: 0, Order: 'start-first' };

/**
 * A client on the same engine whose services' first, third, fifth … update is
 * preceded by another real update of that service (a label `between.N`), so it
 * is out of sequence; the labels made are listed in `between`.
 */
function racingClient(): { client: Dockerode; between: string[] } {
  const between: string[] = [];
  const real = docker();
  let calls = 0;
  const client = new Proxy(real, {
    get(target, property, receiver) {
      if (property !== 'getService') return Reflect.get(target, property, receiver);
      return (name: string) => {
        const service = target.getService(name);
        const update = service.update.bind(service);
        service.update = (async (options: { version: number }) => {
          if (calls++ % 2 === 0) {
            const now = await target.getService(name).inspect();
            const label = `between.${between.length + 1}`;
            await target.getService(name).update({ version: now.Version.Index, ...now.Spec, Labels: { ...now.Spec.Labels, [label]: '1' } });
            between.push(label);
          }
          return update(options);
        }) as typeof service.update;
        return service;
      };
    },
  });
  return { client, between };
}

describe.skipIf(!enabled)('service updates on a real swarm when another update comes between the read and the write', () => {
  let service: string;
  let port: number;
  let stop: () => Promise<void>;
  beforeAll(async () => {
    ({ service, port, stop } = await startSwarmRegistry('regsvc-race'));
    const info = await docker().getService(service).inspect();
    await docker().getService(service).update({ version: info.Version.Index, ...info.Spec, UpdateConfig: USER_UPDATE_CONFIG });
  }, 120_000);
  afterAll(() => stop(), 120_000);

  const spec = async () => (await docker().getService(service).inspect()).Spec;
  const tasks = async () => (await new DockerodeEngine().serviceContainers(service)) ?? [];

  it('restartService: the forced update and the put-back of the update order are each retried; the tasks are replaced, both other updates kept, the order the user had', async () => {
    const { client, between } = racingClient();
    const said: string[] = [];
    const before = (await tasks()).map((c) => c.id);
    expect(before.length).toBe(1);

    // On the host's network two tasks cannot bind one port: stop-first, for this update only.
    expect(await new DockerodeEngine((m) => said.push(m), client).restartService(service, before)).toBe('stop-first');

    expect(between).toEqual(['between.1', 'between.2']);
    const after = await spec();
    expect(after.Labels).toMatchObject({ 'between.1': '1', 'between.2': '1' });
    expect(after.UpdateConfig).toEqual(USER_UPDATE_CONFIG);
    expect(said.filter((m) => /could not put back/.test(m))).toEqual([]);
    const now = await tasks();
    expect(now.length).toBe(1);
    expect(now[0]).toMatchObject({ running: true, paused: false });
    expect(before).not.toContain(now[0]?.id);
    await waitForHttp(`http://127.0.0.1:${port}/v2/`, 60_000);
  }, 180_000);

  it('updateServiceEnv: the variable is set and taken away again through an update out of sequence each time; both other updates kept, the order the user had', async () => {
    const { client, between } = racingClient();
    const said: string[] = [];
    const engine = new DockerodeEngine((m) => said.push(m), client);
    const env = async () => (await spec()).TaskTemplate?.ContainerSpec?.Env ?? [];
    const envBefore = await env();

    await engine.updateServiceEnv(service, { REGSWEEP_RACE: 'on' });
    expect(await env()).toEqual([...envBefore, 'REGSWEEP_RACE=on']);
    expect((await tasks()).map((c) => c.env.REGSWEEP_RACE)).toEqual(['on']);
    expect((await spec()).UpdateConfig).toEqual(USER_UPDATE_CONFIG);

    await engine.updateServiceEnv(service, { REGSWEEP_RACE: null });
    expect(await env()).toEqual(envBefore);
    expect((await tasks()).map((c) => c.env.REGSWEEP_RACE)).toEqual([undefined]);

    // Each of the two updates and each put-back of the order met another update first.
    expect(between).toEqual(['between.1', 'between.2', 'between.3', 'between.4']);
    const after = await spec();
    expect(after.Labels).toMatchObject({ 'between.1': '1', 'between.2': '1', 'between.3': '1', 'between.4': '1' });
    expect(after.UpdateConfig).toEqual(USER_UPDATE_CONFIG);
    expect(said.filter((m) => /could not put back/.test(m))).toEqual([]);
    await waitForHttp(`http://127.0.0.1:${port}/v2/`, 60_000);
  }, 240_000);
});
