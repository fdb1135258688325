/**
 * Registries on the real Docker engine for the end-to-end tests, and what the
 * tests observe of them: a container's state, the garbage-collect helpers a
 * run started for it, its engine events, the run lock in its storage, and a
 * watch that samples all of it while a run works.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import type { HolderRecord } from '../../src/storage/lockRecord.js';
import { RegistryClient, pushImage } from '../../scripts/registryClient.js';
import { DockerLikeClient } from './dockerLikeClient.js';
import { docker, freePort, removeVolume, runRegistryContainer, streamToBuffer, uniqueName, waitForHttp } from './docker.js';
import { type Scenario, pushMixedScenario } from './scenario.js';
import { tempDir } from './tmp.js';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface ContainerState {
  running: boolean;
  paused: boolean;
  startedAt: string;
}

/** What `docker inspect` says of a container's state now. */
export async function containerState(name: string): Promise<ContainerState> {
  const info = await docker().getContainer(name).inspect();
  return { running: info.State.Running, paused: info.State.Paused, startedAt: info.State.StartedAt };
}

/** The garbage-collect helper containers (any state) that regsweep runs started for the registry container `name`. */
export async function gcHelpersOf(name: string): Promise<string[]> {
  const list = await docker().listContainers({ all: true, filters: { label: [`io.regsweep.for=${name}`] } });
  return list.map((c) => c.Id);
}

/** An image FROM registry:2 whose `registry` binary first runs `caseLine` for a matching first argument. */
export async function buildVariant(tag: string, caseLine: string): Promise<void> {
  const dir = await tempDir();
  try {
    await fs.writeFile(path.join(dir, 'registry'), `#!/bin/sh\ncase "$1" in\n  ${caseLine}\nesac\nexec /bin/registry.real "$@"\n`);
    await fs.writeFile(path.join(dir, 'Dockerfile'), 'FROM registry:2\nRUN cp /bin/registry /bin/registry.real\nCOPY registry /bin/registry\nRUN chmod +x /bin/registry\n');
    await run('docker', ['build', '-q', '-t', tag, dir], { env: { ...process.env, DOCKER_BUILDKIT: '0' } });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

export interface Deployed {
  name: string;
  volume: string;
  port: number;
  /** The volume's directory on this host: the storage root regsweep works on. */
  root: string;
  scenario: Scenario;
}

/** A registry container with a fresh named volume at /var/lib/registry, the mixed scenario pushed into it. */
export async function deployWithVolume(prefix: string, volumes: string[], image?: string): Promise<Deployed> {
  const name = uniqueName(prefix);
  const volume = uniqueName('vol');
  volumes.push(volume);
  const port = await freePort();
  await runRegistryContainer({ name, port, volume: { name: volume }, image });
  const scenario = await pushMixedScenario(new RegistryClient(`http://127.0.0.1:${port}`));
  const root = ((await docker().getVolume(volume).inspect()) as { Mountpoint: string }).Mountpoint;
  return { name, volume, port, root, scenario };
}

/**
 * Every kept tag and digest pulls whole, removed ones are gone, and a purged
 * image pushed again pulls whole (a stale blob cache would claim its swept layers).
 */
export async function expectServesWhole(port: number, scenario: Scenario): Promise<void> {
  await waitForHttp(`http://127.0.0.1:${port}/v2/`, 30_000);
  const client = new DockerLikeClient(`http://127.0.0.1:${port}`);
  for (const { repository, tag } of scenario.tags) await client.pullWhole(repository, tag);
  for (const { repository, digest } of scenario.kept) await client.pullWhole(repository, digest);
  for (const { repository, digest } of scenario.removed) expect((await client.getManifest(repository, digest)).status).toBe(404);
  await pushImage(client, 'team/web', { tag: 'again', seed: 'web-a' });
  await client.pullWhole('team/web', 'again');
}

export interface EngineEvent {
  action: string;
  /** Milliseconds since the epoch. */
  at: number;
}

/** The engine's events for one container between two instants (ms since the epoch), oldest first. */
export async function containerEvents(container: string, sinceMs: number, untilMs: number): Promise<EngineEvent[]> {
  const id = (await docker().getContainer(container).inspect()).Id;
  const stream = (await docker().getEvents({
    since: Math.floor(sinceMs / 1000),
    until: Math.ceil(untilMs / 1000) + 1,
    filters: { type: ['container'], container: [id] },
  })) as unknown as NodeJS.ReadableStream;
  const text = (await streamToBuffer(stream)).toString('utf8');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { Action: string; timeNano: number })
    .map((e) => ({ action: e.Action, at: e.timeNano / 1e6 }))
    .filter((e) => e.at >= sinceMs && e.at <= untilMs);
}

/** The actions that change whether a registry container serves: what a run that "changed nothing" never causes. */
export const STATE_CHANGES = ['pause', 'unpause', 'restart', 'start', 'stop', 'die', 'kill'];

/** The run lock in a storage root, as regsweep wrote it, or undefined when no run holds it. */
export async function readLock(root: string): Promise<HolderRecord | undefined> {
  try {
    return JSON.parse(await fs.readFile(path.join(root, '.regsweep.lock'), 'utf8')) as HolderRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Polls `probe` until it returns a value other than undefined; fails naming `what` and the last probe after `timeoutMs`. */
export async function pollUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
      last = 'undefined';
    } catch (error) {
      last = error instanceof Error ? error.message : error;
    }
    if (Date.now() >= deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last probe: ${String(last)})`);
    await sleep(intervalMs);
  }
}

export interface Sample extends ContainerState {
  at: number;
  /** Garbage-collect helpers that existed both just before and just after the container was inspected. */
  helpers: string[];
}

/**
 * Samples a registry container and its garbage-collect helpers until stopped.
 * A helper listed both before and after the inspection existed throughout it
 * (a container id never comes back), so a sample with helpers and a running,
 * unpaused registry is a real violation, never a race of the probes.
 */
export class RegistryWatch {
  readonly samples: Sample[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(private readonly name: string, intervalMs = 100) {
    this.loop = (async () => {
      while (!this.stopped) {
        const before = await gcHelpersOf(this.name);
        const state = await containerState(this.name);
        const after = await gcHelpersOf(this.name);
        this.samples.push({ at: Date.now(), ...state, helpers: before.filter((id) => after.includes(id)) });
        await sleep(intervalMs);
      }
    })();
  }

  async stop(): Promise<Sample[]> {
    this.stopped = true;
    await this.loop;
    return this.samples;
  }
}

/** The samples where a garbage-collect helper existed while the registry ran unpaused: always none. */
export function servingWithHelper(samples: readonly Sample[]): Sample[] {
  return samples.filter((s) => s.helpers.length > 0 && s.running && !s.paused);
}

export interface SwarmRegistry {
  service: string;
  volume: string;
  port: number;
  /** Removes the service and its volume, and leaves the swarm. */
  stop(): Promise<void>;
}

/** A registry deployed as a swarm service (the engine joins a swarm of its own for it), storing on a named volume. */
export async function startSwarmRegistry(prefix: string): Promise<SwarmRegistry> {
  const service = uniqueName(prefix);
  const volume = uniqueName('svcvol');
  await docker().swarmInit({ ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1' });
  const port = await freePort();
  await docker().createService({
    Name: service,
    TaskTemplate: {
      ContainerSpec: {
        Image: 'registry:2',
        Env: [`REGISTRY_HTTP_ADDR=127.0.0.1:${port}`, 'REGISTRY_STORAGE_DELETE_ENABLED=true'],
        Mounts: [{ Type: 'volume', Source: volume, Target: '/var/lib/registry' }],
      },
      Networks: [{ Target: 'host' }],
    },
  });
  await waitForHttp(`http://127.0.0.1:${port}/v2/`, 60_000);
  return {
    service,
    volume,
    port,
    async stop() {
      await docker().getService(service).remove().catch(() => {});
      await docker().swarmLeave({ force: true }).catch(() => {});
      await new Promise((r) => setTimeout(r, 2000));
      await removeVolume(volume);
    },
  };
}
