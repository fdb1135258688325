/**
 * A swarm service on a bucket, against a fake engine: the window holds it
 * read-only through a service update (recorded before it), runs the work only
 * once the update converged, and puts the variable back exactly; a
 * convergence that times out puts it back and runs nothing; a change someone
 * else made meanwhile stays. The locator finds every service on the bucket
 * tree (with a task here or not) and refuses, exit 2 and before any change,
 * what it cannot hold. A dead run's record puts the variable back.
 */
import { describe, expect, it } from 'vitest';
import { locateNamed } from '../../src/docker/locator.js';
import { registryWindow } from '../../src/docker/maintenanceWindow.js';
import { READ_ONLY_ON, READ_ONLY_VARIABLE, type ReadOnlyHold, withEnv } from '../../src/docker/readOnly.js';
import { recoverRun } from '../../src/docker/recovery.js';
import { EngineError, InterruptedError, RollbackError } from '../../src/errors.js';
import { type HolderRecord, placeHere, processRef } from '../../src/storage/lockRecord.js';
import { FakeEngine } from '../support/fakeEngine.js';
import { rejection } from '../support/rejection.js';

const CONFIG = '/etc/docker/registry/config.yml';
const s3 = (bucket: string, root = '/reg'): string => `storage:\n  s3:\n    bucket: ${bucket}\n    region: eu-west-1\n    rootdirectory: ${root}\n`;
const READ_ONLY = `${READ_ONLY_VARIABLE}=${READ_ONLY_ON}`;
const ENV = ['REGISTRY_HTTP_ADDR=127.0.0.1:500{{.Task.Slot}}', 'REGISTRY_STORAGE_DELETE_ENABLED=true'];

/** A service `svc` of two tasks here (t1, t2) serving bucket `images` under /reg. */
function swarm(): FakeEngine {
  const engine = new FakeEngine();
  for (const id of ['t1', 't2']) engine.addContainer({ id, name: `svc.${id}`, env: { REGISTRY_STORAGE_DELETE_ENABLED: 'true' }, files: { [CONFIG]: s3('images') } });
  engine.addService('svc', ['t1', 't2'], { env: [...ENV] });
  return engine;
}

const tasksOf = (engine: FakeEngine, service: string) => engine.serviceTasks(service).map((id) => engine.state(id));

describe('withEnv', () => {
  it('sets in place or at the end, removes every entry of a variable, and leaves the rest in order', () => {
    expect(withEnv(['A=1', 'B=2', 'C=3'], { B: 'x' })).toEqual(['A=1', 'B=x', 'C=3']);
    expect(withEnv(['A=1', 'B=2'], { D: '{"enabled":true}' })).toEqual(['A=1', 'B=2', 'D={"enabled":true}']);
    expect(withEnv(['A=1', 'D=on', 'B=2', 'D=again'], { D: null })).toEqual(['A=1', 'B=2']);
    expect(withEnv(['D=1', 'A=1', 'D=2'], { D: 'x' })).toEqual(['D=x', 'A=1']);
    // Put back as it was: the variable added and removed again gives the list it started from.
    expect(withEnv(withEnv(ENV, { [READ_ONLY_VARIABLE]: READ_ONLY_ON }), { [READ_ONLY_VARIABLE]: null })).toEqual(ENV);
  });
});

describe('the window holds a service on a bucket read-only', () => {
  it('records the hold, sets the variable, works while every task runs with it (none paused), then puts the env back exactly', async () => {
    const engine = swarm();
    const before = engine.serviceTasks('svc');
    const window = registryWindow(engine, tasksOf(engine, 'svc'), { restart: true, readOnly: ['svc'] });
    expect(window.description).toMatch(/^service svc set read-only \(REGISTRY_STORAGE_MAINTENANCE_READONLY\) on every replica/);
    const heard: string[] = [];
    let during: { env: string[]; tasks: string[]; readOnly: boolean[] } | undefined;

    const result = await window.run(
      async () => {
        engine.note('work');
        during = { env: engine.serviceEnv('svc'), tasks: engine.serviceTasks('svc'), readOnly: tasksOf(engine, 'svc').map((t) => t.env[READ_ONLY_VARIABLE] === READ_ONLY_ON) };
        return 'swept';
      },
      ({ readOnly }) => heard.push(`${JSON.stringify(readOnly)} with env ${engine.serviceEnv('svc').join(' ')}`),
    );

    expect(result.value).toBe('swept');
    // Heard before the update: the env did not have it yet.
    expect(heard).toEqual([`[{"service":"svc","previous":null}] with env ${ENV.join(' ')}`]);
    expect(during?.env).toEqual([...ENV, READ_ONLY]);
    expect(during?.readOnly).toEqual([true, true]);
    expect(during?.tasks.some((t) => before.includes(t))).toBe(false);
    expect(engine.callsOf('pause')).toEqual([]);
    expect(engine.calls.filter((c) => c.startsWith('updateServiceEnv') || c === 'work')).toEqual([`updateServiceEnv svc ${READ_ONLY}`, 'work', `updateServiceEnv svc -${READ_ONLY_VARIABLE}`]);
    expect(engine.serviceEnv('svc')).toEqual(ENV);
    // Replaced again by the update that put it back: caches empty, no task of the window left.
    expect(engine.serviceTasks('svc').some((t) => during?.tasks.includes(t))).toBe(false);
    expect(result.broughtBack).toMatchObject({ how: 'replaced', order: 'stop-first', readOnly: ['svc'] });
    expect(result.pausedMs).toBeGreaterThanOrEqual(0);
  });

  it('a convergence that times out puts the variable back and runs no work', async () => {
    const engine = swarm();
    // As a real timeout: the spec was changed, then the wait gave up.
    engine.failOn('updateServiceEnv', 'svc', { times: 1, afterEffect: true, error: new EngineError('service svc did not converge within 120 s') });
    let worked = false;
    const window = registryWindow(engine, tasksOf(engine, 'svc'), { restart: true, readOnly: ['svc'] });

    const error = await rejection(
      window.run(async () => {
        worked = true;
      }),
    );

    expect(error).toBeInstanceOf(EngineError);
    expect(error.message).toMatch(/did not converge/);
    expect(worked).toBe(false);
    expect(engine.serviceEnv('svc')).toEqual(ENV);
    expect(engine.callsOf('updateServiceEnv')).toEqual([`updateServiceEnv svc ${READ_ONLY}`, `updateServiceEnv svc -${READ_ONLY_VARIABLE}`]);
  });

  it('SIGINT while the hold converges: the variable is put back, no work runs, the run ends interrupted', async () => {
    const engine = swarm();
    engine.at('updateServiceEnv', 'svc', () => {
      if (engine.callsOf('updateServiceEnv').length === 1) process.emit('SIGINT', 'SIGINT');
    });
    let worked = false;
    const window = registryWindow(engine, tasksOf(engine, 'svc'), { restart: true, readOnly: ['svc'] });

    const error = await rejection(
      window.run(async () => {
        worked = true;
      }),
    );

    expect(error).toBeInstanceOf(InterruptedError);
    expect(worked).toBe(false);
    expect(engine.serviceEnv('svc')).toEqual(ENV);
  });

  it('a variable someone set before the run is put back to their value, and their other changes meanwhile stay', async () => {
    const engine = swarm();
    await engine.updateServiceEnv('svc', { [READ_ONLY_VARIABLE]: '{"enabled":false}' });
    const window = registryWindow(engine, tasksOf(engine, 'svc'), { restart: true, readOnly: ['svc'] });

    await window.run(async () => {
      // An operator scales something up meanwhile: another variable of the same service.
      await engine.updateServiceEnv('svc', { EXTRA: '1' });
    });

    expect(engine.serviceEnv('svc')).toEqual([...ENV, `${READ_ONLY_VARIABLE}={"enabled":false}`, 'EXTRA=1']);
  });

  it('a variable someone else changed meanwhile is theirs: left as they set it', async () => {
    const engine = swarm();
    const window = registryWindow(engine, tasksOf(engine, 'svc'), { restart: true, readOnly: ['svc'] });

    const result = await window.run(async () => {
      await engine.updateServiceEnv('svc', { [READ_ONLY_VARIABLE]: '{"enabled":true,"by":"ops"}' });
    });

    expect(engine.serviceEnv('svc')).toEqual([...ENV, `${READ_ONLY_VARIABLE}={"enabled":true,"by":"ops"}`]);
    expect(engine.callsOf('updateServiceEnv')).toHaveLength(2);
    expect(result.broughtBack).toMatchObject({ how: 'replaced', readOnly: ['svc'] });
  });

  it('a service that was read-only before the run stays so, its tasks replaced all the same (their caches emptied)', async () => {
    const engine = swarm();
    await engine.updateServiceEnv('svc', { [READ_ONLY_VARIABLE]: READ_ONLY_ON });
    const window = registryWindow(engine, tasksOf(engine, 'svc'), { restart: true, readOnly: ['svc'] });
    let during: string[] = [];

    await window.run(async () => {
      during = engine.serviceTasks('svc');
    });

    expect(engine.serviceEnv('svc')).toEqual([...ENV, READ_ONLY]);
    expect(engine.callsOf('updateServiceEnv').at(-1)).toBe(`updateServiceEnv svc ${READ_ONLY} force`);
    expect(engine.serviceTasks('svc').some((t) => during.includes(t))).toBe(false);
  });

  it('a hold that fails pauses nothing: the other containers on the bucket are paused only after it converged', async () => {
    const engine = swarm();
    engine.addContainer({ id: 'c1', name: 'compose-replica', files: { [CONFIG]: s3('images') } });
    engine.failOn('updateServiceEnv', 'svc', { times: 1, afterEffect: true, error: new EngineError('the update of service svc paused: task failed') });
    const window = registryWindow(engine, [...tasksOf(engine, 'svc'), engine.state('c1')], { restart: false, readOnly: ['svc'] });

    const error = await rejection(window.run(async () => 'swept'));

    expect(error.message).toMatch(/update of service svc paused/);
    expect(engine.callsOf('pause')).toEqual([]);
    expect(engine.serviceEnv('svc')).toEqual(ENV);
  });

  it('pauses the containers after the hold and brings them back with the services', async () => {
    const engine = swarm();
    engine.addContainer({ id: 'c1', name: 'compose-replica', files: { [CONFIG]: s3('images') } });
    const window = registryWindow(engine, [...tasksOf(engine, 'svc'), engine.state('c1')], { restart: false, readOnly: ['svc'] });
    expect(window.description).toMatch(/; compose-replica paused during the purge/);
    let pausedDuring: string[] = [];

    const result = await window.run(async () => {
      pausedDuring = engine.pausedIds();
    });

    expect(pausedDuring).toEqual(['c1']);
    expect(engine.pausedIds()).toEqual([]);
    expect(engine.serviceEnv('svc')).toEqual(ENV);
    expect(result.broughtBack?.why).toMatch(/paused containers unpaused/);
  });

  it('a put-back that fails is a RollbackError naming the service, and the paused containers serve again', async () => {
    const engine = swarm();
    engine.addContainer({ id: 'c1', name: 'compose-replica', files: { [CONFIG]: s3('images') } });
    const window = registryWindow(engine, [...tasksOf(engine, 'svc'), engine.state('c1')], { restart: true, readOnly: ['svc'] });

    const error = await rejection(
      window.run(async () => {
        engine.failOn('updateServiceEnv', 'svc', { error: new EngineError('swarm unreachable') });
      }),
    );

    expect(error).toBeInstanceOf(RollbackError);
    expect(error.message).toMatch(/could not take the registry out of read-only mode: service svc: swarm unreachable/);
    expect(engine.pausedIds()).toEqual([]);
  });
});

describe('finding what holds a bucket', () => {
  it('a service: held read-only, with every other service on the same tree (a task here or only a swarm config), and the plain containers on it paused', async () => {
    const engine = swarm();
    // A service with no task here: its config is a swarm config the manager can read.
    engine.addService('far', [], { files: { [CONFIG]: s3('images', 'reg/') } });
    // Its env alone names the tree.
    engine.addService('by-env', [], { env: ['REGISTRY_STORAGE=s3', 'REGISTRY_STORAGE_S3_BUCKET=images', 'REGISTRY_STORAGE_S3_REGION=eu-west-1', 'REGISTRY_STORAGE_S3_ROOTDIRECTORY=/reg'] });
    engine.addService('other-bucket', [], { files: { [CONFIG]: s3('other') } });
    engine.addService('web', [], { image: 'nginx:1', env: [] });
    engine.addContainer({ id: 'c1', name: 'compose-replica', files: { [CONFIG]: s3('images') } });
    engine.addContainer({ id: 'c2', name: 'other-root', files: { [CONFIG]: s3('images', '/elsewhere') } });

    const target = await locateNamed(engine, 'svc');

    expect(target.services).toEqual(['by-env', 'far', 'svc']);
    expect(target.containers.map((c) => c.id).sort()).toEqual(['c1', 't1', 't2']);
  });

  it('a container that is a swarm task: its service is held, on a manager', async () => {
    const engine = swarm();
    const target = await locateNamed(engine, 'svc.t1');
    expect(target).toMatchObject({ kind: 'container', services: ['svc'] });
  });

  it.each([
    ['a task container, on an engine that is no swarm manager', (e: FakeEngine) => e.notManager(), 'svc.t1', /^swarm service svc serves s3:\/\/images, and this engine is not a swarm manager: regsweep cannot hold its replicas \(on any host\) read-only; run it on a manager node \(nothing changed\)$/],
    ['a service mid-update', (e: FakeEngine) => e.addService('far', [], { files: { [CONFIG]: s3('images') }, updateState: 'updating' }), 'svc', /^service far is in the middle of an update \(updating\)/],
    ['a registry service whose storage this engine cannot see', (e: FakeEngine) => e.addService('hidden', [], { image: 'registry:2@sha256:abc', env: [] }), 'svc', /^service hidden \(registry:2@sha256:abc\) runs no task on this engine and its spec does not say where it stores/],
  ])('cannot hold %s: says why (a real run is refused with it; a dry run goes on), changing nothing', async (_what, setUp, name, message) => {
    const engine = swarm();
    setUp(engine);
    const target = await locateNamed(engine, name);
    expect(target.unholdable).toMatch(message);
    expect(engine.calls.filter((c) => /^(updateServiceEnv|pause|unpause|restart)/.test(c))).toEqual([]);
  });

  it('a task whose config is a swarm config: read from the service, not from the container (which shows the image\'s file beneath it)', async () => {
    const engine = new FakeEngine();
    const fsConfig = 'storage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n';
    engine.addContainer({ id: 't1', name: 'svc.1', files: { [CONFIG]: fsConfig } });
    engine.addService('svc', ['t1'], { files: { [CONFIG]: s3('images') } });
    const target = await locateNamed(engine, 'svc');
    expect(target).toMatchObject({ kind: 'service', root: 's3://images', swarmConfig: true, services: ['svc'] });
    expect(target.unholdable).toBeUndefined();
  });

  it('a plain container on a bucket, on an engine that is no manager: paused as before, nothing refused', async () => {
    const engine = new FakeEngine();
    engine.addContainer({ id: 'c1', name: 'registry', files: { [CONFIG]: s3('images') } });
    engine.notManager();
    const target = await locateNamed(engine, 'registry');
    expect(target.services).toBeUndefined();
    expect(target.containers.map((c) => c.id)).toEqual(['c1']);
  });
});

describe('a dead run that held a service read-only', () => {
  const record = (readOnly: ReadOnlyHold[]): HolderRecord => ({
    regsweep: 'lock',
    token: 't',
    startedAt: new Date().toISOString(),
    place: placeHere(),
    process: processRef(process.pid),
    target: { kind: 'service', name: 'svc' },
    paused: [],
    readOnly,
    bringBack: { restart: true },
  });

  it('is put back by its record: the variable removed, another change made meanwhile kept', async () => {
    const engine = swarm();
    await engine.updateServiceEnv('svc', { [READ_ONLY_VARIABLE]: READ_ONLY_ON });
    await engine.updateServiceEnv('svc', { EXTRA: '1' });

    const recovery = await recoverRun(record([{ service: 'svc', previous: null }]), engine, 'watchdog');

    expect(recovery.services).toEqual(['svc']);
    expect(engine.serviceEnv('svc')).toEqual([...ENV, 'EXTRA=1']);
  });

  it('recorded but never updated (it died before the update): nothing to put back', async () => {
    const engine = swarm();
    const recovery = await recoverRun(record([{ service: 'svc', previous: null }]), engine, 'takeover');
    expect(recovery.services).toEqual([]);
    expect(engine.callsOf('updateServiceEnv')).toEqual([]);
  });
});
