/**
 * The Engine over dockerode. Every call that changes something is logged with
 * the short container id and rethrown with context; statuses that mean
 * "already so" (304 on pause/unpause/stop) are handled here, by code.
 */
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import Docker from 'dockerode';
import tar from 'tar-stream';
import { EngineError, UsageError } from '../errors.js';
import { type ContainerInfo, type Engine, type ImageUse, RUN_LABEL, type RunOnceOptions, type RunResult, type ServiceInfo, type VolumeInfo } from './engine.js';
import { readLogLines } from './logStream.js';
import { withEnv } from './readOnly.js';
import { type SelfEvidence, readSelfEvidence, selfContainer } from './self.js';

export const HELPER_LABEL = 'io.regsweep.helper';

const short = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number } | null)?.statusCode;
}

/** What the engine said, without dockerode's `(HTTP code N) reason - ` before it. */
function engineSaid(error: unknown): string {
  return (error as Error).message.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}

/** Splits Docker's multiplexed stdout/stderr framing (8-byte headers) into plain text. */
function demux(buffer: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const kind = buffer[offset];
    const size = buffer.readUInt32BE(offset + 4);
    if ((kind !== 0 && kind !== 1 && kind !== 2) || buffer[offset + 1] !== 0) return buffer.toString('utf8'); // not framed (TTY)
    parts.push(buffer.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return Buffer.concat(parts).toString('utf8');
}

/** `work` on every item, `limit` at a time: a host may run hundreds of containers, each inspected. */
async function inBatches<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += limit) await Promise.all(items.slice(i, i + limit).map(work));
}

function envMap(list: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of list) {
    const i = e.indexOf('=');
    if (i > 0) env[e.slice(0, i)] = e.slice(i + 1);
  }
  return env;
}

/** Task states after which a task runs no more (swarmkit's TaskState from COMPLETE on). */
const TASK_ENDED = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned']);
/** Update states that say an update went wrong: waiting on for convergence is in vain. */
const UPDATE_FAILED = new Set(['paused', 'rollback_started', 'rollback_paused', 'rollback_completed']);

/** An update's order, the update config it sent, and the service's own (undefined: none), to put back. */
interface UpdateConfigs {
  order: 'start-first' | 'stop-first';
  sent: object;
  updateConfig?: Docker.UpdateConfig;
}

interface TaskLike {
  DesiredState?: string;
  Status?: { State?: string };
  Spec?: { ForceUpdate?: number; ContainerSpec?: { Env?: string[] } };
}

const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

function containerSpecOf(spec: Docker.ServiceSpec | undefined): Docker.ContainerSpec {
  const template = spec?.TaskTemplate;
  return (template && 'ContainerSpec' in template ? template.ContainerSpec : undefined) ?? {};
}

function toInfo(c: Docker.ContainerInspectInfo): ContainerInfo {
  const env = envMap(c.Config.Env ?? []);
  return {
    id: c.Id,
    name: c.Name.replace(/^\//, ''),
    image: c.Image,
    imageName: c.Config.Image,
    running: c.State.Running,
    paused: c.State.Paused,
    created: Date.parse(c.Created),
    env,
    args: c.Args ?? [],
    mounts: (c.Mounts ?? []).map((m) => ({ type: m.Type, source: m.Source, destination: m.Destination, ...(m.Name ? { name: m.Name } : {}) })),
    labels: c.Config.Labels ?? {},
  };
}

export class DockerodeEngine implements Engine {
  private readonly docker: Docker;

  constructor(
    private readonly log: (message: string) => void = () => {},
    docker?: Docker,
  ) {
    this.docker = docker ?? new Docker();
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (error) {
      const where = process.env.DOCKER_HOST ?? '/var/run/docker.sock';
      throw new UsageError(`cannot reach the Docker engine at ${where}: ${(error as Error).message}`);
    }
  }

  async container(idOrName: string): Promise<ContainerInfo | undefined> {
    try {
      return toInfo(await this.docker.getContainer(idOrName).inspect());
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw new EngineError(`cannot inspect container ${idOrName}: ${(error as Error).message}`, { cause: error });
    }
  }

  async containersUsingVolume(volume: string): Promise<ContainerInfo[]> {
    const list = await this.docker.listContainers({ all: true, filters: { volume: [volume] } });
    const infos = await Promise.all(list.map((c) => this.container(c.Id)));
    return infos.filter((c): c is ContainerInfo => c !== undefined);
  }

  async runningContainers(): Promise<ContainerInfo[]> {
    const list = await this.docker.listContainers({ filters: { status: ['running', 'paused'] } });
    const infos = await Promise.all(list.map((c) => this.container(c.Id)));
    return infos.filter((c): c is ContainerInfo => c !== undefined);
  }

  async serviceContainers(name: string): Promise<ContainerInfo[] | undefined> {
    try {
      await this.docker.getService(name).inspect();
    } catch (error) {
      // 404: no such service; 503: this engine is not a swarm manager, so no services at all.
      if (statusOf(error) === 404 || statusOf(error) === 503) return undefined;
      throw new EngineError(`cannot inspect service ${name}: ${(error as Error).message}`, { cause: error });
    }
    const tasks: Array<{ Status?: { State?: string; ContainerStatus?: { ContainerID?: string } }; DesiredState?: string }> =
      await this.docker.listTasks({ filters: { service: [name], 'desired-state': ['running'] } });
    const ids = tasks.map((t) => t.Status?.ContainerStatus?.ContainerID).filter((id): id is string => Boolean(id));
    const infos = await Promise.all(ids.map((id) => this.container(id)));
    return infos.filter((c): c is ContainerInfo => c !== undefined);
  }

  async serviceTaskContainers(name: string): Promise<ContainerInfo[]> {
    let tasks: Array<{ Status?: { ContainerStatus?: { ContainerID?: string } } }>;
    try {
      tasks = await this.docker.listTasks({ filters: { service: [name] } });
    } catch (error) {
      // 404: no such service; 503: this engine is not a swarm manager.
      if (statusOf(error) === 404 || statusOf(error) === 503) return [];
      throw new EngineError(`cannot list the tasks of service ${name}: ${(error as Error).message}`, { cause: error });
    }
    const ids = [...new Set(tasks.map((t) => t.Status?.ContainerStatus?.ContainerID).filter((id): id is string => Boolean(id)))];
    // A task of another node, or one whose container is gone, is no container of this engine.
    const infos = await Promise.all(ids.map((id) => this.container(id)));
    return infos.filter((c): c is ContainerInfo => c !== undefined);
  }

  async containerLogs(id: string, options: { since?: string; onLine: (ts: string, text: string) => void }): Promise<void> {
    const what = `the log of container ${short(id)}`;
    let tty: boolean;
    let stream: NodeJS.ReadableStream;
    try {
      const info = await this.docker.getContainer(id).inspect();
      tty = info.Config.Tty;
      stream = await this.logStream(id, options.since);
    } catch (error) {
      if (statusOf(error) === 501) {
        throw new EngineError(`cannot read ${what}: its log driver keeps no log the engine can read back (the engine says: ${engineSaid(error)})`, { cause: error });
      }
      throw new EngineError(`cannot read ${what}: ${(error as Error).message.trim()}`, { cause: error });
    }
    try {
      await readLogLines(stream as AsyncIterable<Buffer>, tty, options.onLine);
    } catch (error) {
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      throw new EngineError(`cannot read ${what}: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * The log as a stream, not follow: dockerode's `logs()` holds a whole log
   * in memory unless it follows, so the request is made through its modem.
   */
  private logStream(id: string, since: string | undefined): Promise<NodeJS.ReadableStream> {
    const options = { stdout: true, stderr: true, timestamps: true, follow: false, ...(since !== undefined ? { since } : {}) };
    return new Promise((resolve, reject) => {
      this.docker.modem.dial(
        { path: `/containers/${encodeURIComponent(id)}/logs?`, method: 'GET', isStream: true, statusCodes: { 200: true, 404: 'no such container', 501: 'not implemented', 500: 'server error' }, options },
        (error: unknown, stream: unknown) => (error ? reject(error) : resolve(stream as NodeJS.ReadableStream)),
      );
    });
  }

  async volume(name: string): Promise<VolumeInfo | undefined> {
    try {
      const v = await this.docker.getVolume(name).inspect();
      return { name: v.Name, mountpoint: v.Mountpoint, driver: v.Driver };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw new EngineError(`cannot inspect volume ${name}: ${(error as Error).message}`, { cause: error });
    }
  }

  async imagesInUse(): Promise<ImageUse[]> {
    try {
      const [containers, services] = await Promise.all([this.containerImageUses(), this.serviceImageUses()]);
      return [...containers, ...services];
    } catch (error) {
      throw new EngineError(`cannot list the images in use: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Each container's own reference (`Config.Image`: `app@sha256:…` when created
   * by digest) and its image's RepoDigests (the digest it was pulled or pushed
   * as), whatever the container's state. Each image is inspected once.
   */
  private async containerImageUses(): Promise<ImageUse[]> {
    const list = await this.docker.listContainers({ all: true });
    const repoDigests = new Map<string, Promise<string[]>>();
    const digestsOf = (imageId: string): Promise<string[]> => {
      let found = repoDigests.get(imageId);
      if (!found) {
        found = this.docker.getImage(imageId).inspect().then(
          (image) => image.RepoDigests ?? [],
          (error: unknown) => (statusOf(error) === 404 ? [] : Promise.reject(error)),
        );
        repoDigests.set(imageId, found);
      }
      return found;
    };
    const uses: ImageUse[] = [];
    await inBatches(list, 16, async ({ Id }) => {
      const c = await this.container(Id);
      if (!c) return; // removed since the list
      const user = `container ${c.name}`;
      uses.push({ user, reference: c.imageName }, ...(await digestsOf(c.image)).map((reference) => ({ user, reference })));
    });
    return uses;
  }

  /** Each swarm service's task image: `docker service create` pins it as `app:tag@sha256:…`. */
  private async serviceImageUses(): Promise<ImageUse[]> {
    let services: Docker.Service[];
    try {
      services = await this.docker.listServices();
    } catch (error) {
      // 503 (406 on old engines): this engine is not a swarm manager, so it has no services.
      if (statusOf(error) === 503 || statusOf(error) === 406) return [];
      throw error;
    }
    return services.flatMap((s) => {
      const image = s.Spec?.TaskTemplate && 'ContainerSpec' in s.Spec.TaskTemplate ? s.Spec.TaskTemplate.ContainerSpec?.Image : undefined;
      return image && s.Spec?.Name ? [{ user: `service ${s.Spec.Name}`, reference: image }] : [];
    });
  }

  async readFile(containerId: string, file: string, depth = 0): Promise<string | undefined> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.getContainer(containerId).getArchive({ path: file });
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw new EngineError(`cannot read ${file} from container ${short(containerId)}: ${(error as Error).message}`, { cause: error });
    }
    const entry = await firstTarEntry(stream);
    if (entry?.type === 'symlink' && entry.linkname && depth < 8) {
      return this.readFile(containerId, path.posix.resolve(path.posix.dirname(file), entry.linkname), depth + 1);
    }
    return entry?.type === 'file' ? entry.content.toString('utf8') : undefined;
  }

  async exec(containerId: string, cmd: string[]): Promise<RunResult> {
    const container = this.docker.getContainer(containerId);
    const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    const info = await exec.inspect();
    return { exitCode: info.ExitCode ?? -1, output: demux(Buffer.concat(chunks)) };
  }

  async runOnce(options: RunOnceOptions): Promise<RunResult> {
    const container = await this.docker.createContainer({
      Image: options.image,
      Cmd: options.cmd,
      Env: options.env,
      Labels: { [HELPER_LABEL]: 'true', ...options.labels },
      HostConfig: { VolumesFrom: options.volumesFrom, Binds: options.binds, NetworkMode: options.network ?? 'none', AutoRemove: false },
    });
    this.log(`created helper container ${short(container.id)} from ${short(options.image)}: ${options.cmd.join(' ')}`);
    const onAbort = (): void => {
      container.kill().catch(() => {});
    };
    try {
      options.signal?.addEventListener('abort', onAbort, { once: true });
      // Attached before the start, so not a line of output is missed.
      const stream = await container.attach({ stream: true, stdout: true, stderr: true });
      const chunks: Buffer[] = [];
      const sink = new PassThrough();
      sink.on('data', (c: Buffer) => {
        chunks.push(c);
        options.onOutput?.(c.toString('utf8'));
      });
      this.docker.modem.demuxStream(stream, sink, sink);
      const ended = new Promise<void>((resolve) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
      });
      await container.start();
      const waited = (await container.wait()) as { StatusCode: number };
      await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))]);
      return { exitCode: waited.StatusCode, output: Buffer.concat(chunks).toString('utf8') };
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      await container.remove({ force: true }).then(
        () => this.log(`removed helper container ${short(container.id)}`),
        (error: unknown) => {
          if (statusOf(error) !== 404) throw new EngineError(`cannot remove helper container ${short(container.id)}: ${(error as Error).message}`);
        },
      );
    }
  }

  async removeRunHelpers(runId: string): Promise<number> {
    const list = await this.docker.listContainers({ all: true, filters: { label: [`${RUN_LABEL}=${runId}`] } });
    for (const c of list) {
      await this.docker.getContainer(c.Id).remove({ force: true }).catch((error: unknown) => {
        if (statusOf(error) !== 404) throw new EngineError(`cannot remove helper container ${short(c.Id)}: ${(error as Error).message}`, { cause: error });
      });
      this.log(`removed helper container ${short(c.Id)} of run ${runId}`);
    }
    return list.length;
  }

  private async change(verb: 'pause' | 'unpause' | 'restart', containerId: string): Promise<void> {
    try {
      await this.docker.getContainer(containerId)[verb]();
      this.log(`${verb}d ${short(containerId)}`);
    } catch (error) {
      // 304 Not Modified: already in that state. 409 on pause/unpause likewise means "already".
      if (statusOf(error) === 304 || (verb !== 'restart' && statusOf(error) === 409 && /is (not )?paused/.test((error as Error).message))) return;
      throw new EngineError(`cannot ${verb} container ${short(containerId)}: ${(error as Error).message}`, { cause: error });
    }
  }

  pause(containerId: string): Promise<void> {
    return this.change('pause', containerId);
  }

  unpause(containerId: string): Promise<void> {
    return this.change('unpause', containerId);
  }

  restart(containerId: string): Promise<void> {
    return this.change('restart', containerId);
  }

  /**
   * A forced update replaces the tasks. Start-first (the new task serves before
   * the old one stops: no request refused) where two tasks can serve at once,
   * stop-first where they cannot (see updateOrder). The service's own
   * UpdateConfig is put back afterwards: the order is this update's, not the user's.
   */
  async restartService(name: string, previous: string[], timeoutMs = 120_000): Promise<'start-first' | 'stop-first'> {
    const service = this.docker.getService(name);
    let updated: UpdateConfigs;
    try {
      updated = await this.updateService(service, async (spec) => {
        // The user's parallelism, or none said (all at once): the tasks are paused, so no more of them stop serving.
        const config = await this.updateConfigFor(spec, {});
        const taskTemplate = { ...spec.TaskTemplate, ForceUpdate: (spec.TaskTemplate?.ForceUpdate ?? 0) + 1 };
        return { spec: { ...spec, TaskTemplate: taskTemplate, UpdateConfig: config.sent }, result: config };
      });
    } catch (error) {
      throw new EngineError(`cannot restart service ${name}: ${(error as Error).message}`, { cause: error });
    }
    this.log(`forced a ${updated.order} update of service ${name} so its tasks start afresh`);
    await this.untilReplaced(name, previous, timeoutMs);
    await this.putBackUpdateConfig(service, name, updated);
    return updated.order;
  }

  async services(): Promise<ServiceInfo[] | undefined> {
    let list: Docker.Service[];
    try {
      list = await this.docker.listServices();
    } catch (error) {
      // 503 (406 on old engines): this engine is not a swarm manager.
      if (statusOf(error) === 503 || statusOf(error) === 406) return undefined;
      throw new EngineError(`cannot list the swarm services: ${(error as Error).message}`, { cause: error });
    }
    return Promise.all(list.map((s) => this.serviceInfo(s)));
  }

  async service(name: string): Promise<ServiceInfo | undefined> {
    try {
      return await this.serviceInfo(await this.docker.getService(name).inspect());
    } catch (error) {
      if (statusOf(error) === 404 || statusOf(error) === 503) return undefined;
      throw new EngineError(`cannot inspect service ${name}: ${(error as Error).message}`, { cause: error });
    }
  }

  private async serviceInfo(s: Docker.Service): Promise<ServiceInfo> {
    const spec = containerSpecOf(s.Spec);
    const files: Record<string, string> = {};
    for (const ref of spec.Configs ?? []) {
      if (!ref.File?.Name || !ref.ConfigID) continue;
      const config = (await this.docker.getConfig(ref.ConfigID).inspect().catch(() => undefined)) as Docker.ConfigInfo | undefined;
      if (config?.Spec?.Data !== undefined) files[ref.File.Name] = Buffer.from(config.Spec.Data, 'base64').toString('utf8');
    }
    return { id: s.ID, name: s.Spec?.Name ?? s.ID, image: spec.Image ?? '', env: envMap(spec.Env ?? []), args: spec.Args ?? [], files, ...(s.UpdateStatus?.State ? { updateState: s.UpdateStatus.State } : {}) };
  }

  async updateServiceEnv(name: string, change: Record<string, string | null>, options: { force?: boolean; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<'start-first' | 'stop-first'> {
    const service = this.docker.getService(name);
    const what = Object.entries(change).map(([k, v]) => (v === null ? `without ${k}` : `with ${k}=${v}`)).join(', ');
    let updated: UpdateConfigs & { env: string[]; force: number; lastUpdate?: string };
    try {
      updated = await this.updateService(service, async (spec, info) => {
        const containerSpec = containerSpecOf(spec);
        const env = withEnv(containerSpec.Env ?? [], change);
        const force = (spec.TaskTemplate?.ForceUpdate ?? 0) + (options.force ? 1 : 0);
        // One task at a time unless the user said otherwise: the others serve meanwhile.
        const config = await this.updateConfigFor(spec, { Parallelism: 1 });
        const taskTemplate = { ...spec.TaskTemplate, ContainerSpec: { ...containerSpec, Env: env }, ForceUpdate: force };
        return { spec: { ...spec, TaskTemplate: taskTemplate, UpdateConfig: config.sent }, result: { ...config, env, force, lastUpdate: info.UpdateStatus?.StartedAt } };
      });
    } catch (error) {
      throw new EngineError(`cannot update service ${name} (${what}): ${(error as Error).message}`, { cause: error });
    }
    this.log(`updated service ${name} (${what}), ${updated.order}`);
    await this.untilConverged(name, updated, options.timeoutMs ?? 120_000, options.signal);
    await this.putBackUpdateConfig(service, name, updated);
    return updated.order;
  }

  /**
   * One update of the service as it is now: `edit` makes the spec to send from
   * the spec just read. Where another update came between the read and the write
   * (the engine says "update out of sequence"), the spec is read again and
   * edited anew, so that update is kept, not overwritten.
   */
  private async updateService<T>(service: Docker.Service, edit: (spec: Docker.ServiceSpec, info: Docker.Service) => Promise<{ spec: object; result: T }>): Promise<T> {
    for (let tries = 0; ; tries++) {
      const info = await service.inspect();
      const { spec, result } = await edit(info.Spec as Docker.ServiceSpec, info);
      try {
        await service.update({ version: info.Version.Index, ...spec });
        return result;
      } catch (error) {
        if (tries < 3 && /out of sequence/.test((error as Error).message)) continue;
        throw error;
      }
    }
  }

  /** The update config an update sends (`defaults`, then the user's own, with an order that works here: see updateOrder), and the user's own to put back. */
  private async updateConfigFor(spec: Docker.ServiceSpec, defaults: { Parallelism?: number }): Promise<UpdateConfigs> {
    const order = updateOrder(spec, await this.hostNetworks(spec));
    return { order, sent: { ...defaults, ...spec.UpdateConfig, Order: order }, updateConfig: spec.UpdateConfig };
  }

  /**
   * The service's own UpdateConfig back, where this update sent another: the
   * order was the update's, not the user's. Changing only UpdateConfig starts no
   * task, so a failure leaves a working service with another update order: said, not thrown.
   */
  private async putBackUpdateConfig(service: Docker.Service, name: string, updated: UpdateConfigs): Promise<void> {
    if (isDeepStrictEqual(updated.sent, updated.updateConfig)) return;
    await this.updateService(service, async (spec) => ({ spec: { ...spec, UpdateConfig: updated.updateConfig }, result: undefined })).catch((error: unknown) =>
      this.log(`could not put back the update order of service ${name}: ${(error as Error).message}`),
    );
  }

  /**
   * Until every task that still runs, or is on its way to, is of the spec
   * with this env and force count, and as many of them run as the service
   * wants (a global service: every one of them). An update that failed (paused,
   * rolled back) ends the wait at once.
   */
  private async untilConverged(name: string, spec: { env: string[]; force: number; lastUpdate?: string }, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const isNew = (t: TaskLike): boolean => sameList(t.Spec?.ContainerSpec?.Env ?? [], spec.env) && (t.Spec?.ForceUpdate ?? 0) === spec.force;
    while (Date.now() < deadline) {
      signal?.throwIfAborted();
      const info = await this.docker.getService(name).inspect();
      const status: Docker.UpdateStatus | undefined = info.UpdateStatus;
      if (status?.StartedAt !== spec.lastUpdate && UPDATE_FAILED.has(status?.State ?? '')) {
        throw new EngineError(`the update of service ${name} ${status?.State?.replace('_', ' ')}${status?.Message ? `: ${status.Message}` : ''}`);
      }
      const tasks = (await this.docker.listTasks({ filters: { service: [name] } })) as TaskLike[];
      const live = tasks.filter((t) => !TASK_ENDED.has(t.Status?.State ?? ''));
      const running = live.filter((t) => isNew(t) && t.Status?.State === 'running' && t.DesiredState === 'running');
      const wanted: number | undefined = info.Spec?.Mode?.Replicated ? (info.Spec.Mode.Replicated.Replicas ?? 1) : undefined;
      if (live.every(isNew) && running.length === (wanted ?? live.length) && live.length === running.length) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new EngineError(`service ${name} did not converge within ${timeoutMs / 1000} s: a task of its spec before still runs, or a new one does not`);
  }

  /** The service's networks that are the host's (swarm names it by an id of its own); one that cannot be inspected counts as one. */
  private async hostNetworks(spec: ServiceSpecLike): Promise<Set<string>> {
    const targets = networksOf(spec).map((n) => n.Target ?? '');
    const drivers = await Promise.all(targets.map((t) => this.docker.getNetwork(t).inspect().then((n: { Driver?: string }) => n.Driver, () => 'unknown')));
    return new Set(targets.filter((_, i) => drivers[i] === 'host' || drivers[i] === 'unknown'));
  }

  private async untilReplaced(name: string, previous: string[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const old = new Set(previous);
    while (Date.now() < deadline) {
      const running = await this.serviceContainers(name);
      if (running && running.length > 0 && running.every((c) => c.running && !c.paused && !old.has(c.id))) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new EngineError(`service ${name} did not come back within ${timeoutMs / 1000} s`);
  }

  /** The container this process runs in, found by its mounts or cgroups (see self.ts), not by its hostname. */
  async self(evidence: SelfEvidence = readSelfEvidence()): Promise<ContainerInfo | undefined> {
    const found = selfContainer(evidence);
    if (!found) return undefined;
    // Undefined too when this engine does not know the container: regsweep then runs in a container of another engine.
    const info = await this.container(found.ref);
    // Said outright, it is no guess: a name this engine does not know is a mistake to report, not to ignore.
    if (!info && found.how === 'override') throw new UsageError(`REGSWEEP_SELF_CONTAINER names no container of this Docker engine: ${found.ref}; name the container regsweep runs in, or unset it`);
    // A hostname is only a guess: it must begin the id, not name another container.
    return info && (found.how !== 'hostname' || info.id.startsWith(found.ref)) ? info : undefined;
  }
}

interface TarEntry {
  type: string;
  linkname?: string;
  content: Buffer;
}

function firstTarEntry(stream: NodeJS.ReadableStream): Promise<TarEntry | undefined> {
  return new Promise((resolve, reject) => {
    const extract = tar.extract();
    let first: TarEntry | undefined;
    extract.on('entry', (header, body, next) => {
      const chunks: Buffer[] = [];
      body.on('data', (c: unknown) => chunks.push(c as Buffer));
      body.on('end', () => {
        first ??= { type: header.type ?? 'file', linkname: header.linkname ?? undefined, content: Buffer.concat(chunks) };
        next();
      });
      body.resume();
    });
    extract.on('finish', () => resolve(first));
    extract.on('error', reject);
    stream.pipe(extract);
  });
}

interface ServiceSpecLike {
  TaskTemplate?: { Networks?: Array<{ Target?: string }> } | object;
  EndpointSpec?: { Ports?: Array<{ PublishMode?: string }> };
}

/**
 * Start-first only where a new task can serve beside the old one: not on the
 * host's network (both would bind the same port; the registry sets no
 * SO_REUSEPORT, so the new task would fail), and no port published in host
 * mode (likewise). Ingress-published ports, or none, can: the routing mesh
 * sends each connection to one running task.
 */
const networksOf = (spec: ServiceSpecLike): Array<{ Target?: string }> => (spec.TaskTemplate && 'Networks' in spec.TaskTemplate ? (spec.TaskTemplate.Networks ?? []) : []);

export function updateOrder(spec: ServiceSpecLike, hostNetworks: ReadonlySet<string>): 'start-first' | 'stop-first' {
  const onHost = networksOf(spec).some((n) => n.Target === 'host' || hostNetworks.has(n.Target ?? ''));
  const hostPorts = (spec.EndpointSpec?.Ports ?? []).some((p) => p.PublishMode === 'host');
  return onHost || hostPorts ? 'stop-first' : 'start-first';
}
