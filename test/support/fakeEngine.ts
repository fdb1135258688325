/**
 * An in-memory Docker engine, to prove the Docker side of regsweep without a daemon.
 *
 * It keeps containers (state, env, args, mounts, image), swarm services (name →
 * task container ids), volumes, the files each container can be read for, and
 * the results of exec and runOnce. Every call is recorded in order in `calls`
 * as `method key [detail]`, e.g. `pause c1`, `readFile c1 /etc/docker/registry/config.yml`,
 * `exec c1 registry --version`, `restartService svc t1 t2`.
 *
 * - `failOn(method, key?)` makes that call throw (some times, or every time),
 *   without effect or, with `afterEffect`, after it.
 * - `at(method, key?, hook)` runs `hook` when that call arrives, before it takes
 *   effect: e.g. `process.emit('SIGINT', 'SIGINT')` half-way through a pause.
 * - pause, unpause, restart and restartService change the container state as
 *   Docker does, so a test can assert the final state (`pausedIds()`).
 * - a service has a spec (its task env as a list, swarm config files, the state
 *   of its last update); updateServiceEnv changes it as swarm would and replaces
 *   its tasks with containers of the new env. `notManager()` makes the engine a
 *   swarm worker (or no swarm): it then sees no service at all.
 *
 * - each container has a log (`appendLog`): lines with the engine's timestamps,
 *   read back by containerLogs from `since` on, as the engine does (at or
 *   after); `rotateLog` drops its oldest lines, as a log driver's rotation does.
 * - a service remembers every task container it had (serviceTaskContainers),
 *   until `removeContainer` takes one away.
 *
 * What is returned is a copy, as an inspect would be: holding a ContainerInfo
 * does not show later changes; ask `state(id)`.
 */
import type { ContainerInfo, Engine, ImageUse, RunOnceOptions, RunResult, ServiceInfo, VolumeInfo } from '../../src/docker/engine.js';
import { withEnv } from '../../src/docker/readOnly.js';
import { engineSince } from '../../src/docker/registryLog.js';
import { RegsweepError } from '../../src/errors.js';

export type EngineMethod = keyof Engine;

/** A service's spec as the fake keeps it. */
export interface FakeServiceSpec {
  /** The task env, `KEY=VALUE` in order (default: the first task's env). */
  env?: string[];
  image?: string;
  args?: string[];
  files?: Record<string, string>;
  updateState?: string;
}

type ServiceSpec = Required<Omit<FakeServiceSpec, 'updateState'>> & { updateState?: string; force: number };

export interface FakeContainerSpec extends Partial<ContainerInfo> {
  id: string;
  /** Files readable in the container (`docker cp`), path → text. */
  files?: Record<string, string>;
}

interface Failure {
  method: EngineMethod;
  key: string | undefined;
  error: Error;
  times: number;
  afterEffect: boolean;
}

interface Hook {
  method: EngineMethod;
  key: string | undefined;
  run: () => void | Promise<void>;
}

const NOT_FOUND: RunResult = { exitCode: 127, output: 'exec: "registry": executable file not found in $PATH\n' };

const copy = <T>(value: T): T => structuredClone(value);

/** A unix time with nine fractional digits (`1733270400.123456789`), as nanoseconds: what `since` compares. */
const nanos = (unix: string): bigint => BigInt(unix.replace('.', ''));

export class FakeEngine implements Engine {
  /** Every call in order, as `method key [detail]`; `note()` adds a test's own marks. */
  readonly calls: string[] = [];
  /** The options of every runOnce, in order. */
  readonly runOnceOptions: RunOnceOptions[] = [];

  private readonly containers = new Map<string, ContainerInfo>();
  private readonly files = new Map<string, Map<string, string>>();
  private readonly tasks = new Map<string, string[]>();
  /** Every task container a service has had, in order. */
  private readonly taskHistory = new Map<string, string[]>();
  private readonly logs = new Map<string, Array<{ ts: string; text: string }>>();
  private readonly specs = new Map<string, ServiceSpec>();
  private manager = true;
  private readonly volumes = new Map<string, VolumeInfo>();
  private readonly imageUses: ImageUse[] = [];
  private readonly execResults = new Map<string, RunResult>();
  private readonly runOnceResults = new Map<string, RunResult>();
  private readonly failures: Failure[] = [];
  private readonly hooks: Hook[] = [];
  private selfId: string | undefined;
  /** Helper containers still there, by id: the run id they are labelled with. */
  private readonly helpers = new Map<string, string>();
  private generation = 0;

  // -------------------------------------------------------------------------
  // Setting up

  /** Adds a container (running, not paused, registry:2 defaults unless given); returns a copy of it. */
  addContainer(spec: FakeContainerSpec): ContainerInfo {
    const { files, ...fields } = spec;
    const info: ContainerInfo = {
      name: spec.id,
      image: `sha256:image-of-${spec.id}`,
      imageName: 'registry:2',
      running: true,
      paused: false,
      created: Date.parse('2026-01-01T00:00:00Z'),
      env: {},
      args: ['/etc/docker/registry/config.yml'],
      mounts: [],
      labels: {},
      ...fields,
    };
    this.containers.set(info.id, info);
    for (const [file, text] of Object.entries(files ?? {})) this.setFile(info.id, file, text);
    return copy(info);
  }

  /** A swarm service whose running tasks are these containers (added beforehand; none: its tasks run on other hosts). */
  addService(name: string, taskIds: string[], spec: FakeServiceSpec = {}): void {
    this.tasks.set(name, [...taskIds]);
    this.taskHistory.set(name, [...taskIds]);
    const first = taskIds[0] === undefined ? undefined : this.mustFind(taskIds[0]);
    const env = spec.env ?? Object.entries(first?.env ?? {}).map(([k, v]) => `${k}=${v}`);
    this.specs.set(name, { env, image: spec.image ?? first?.imageName ?? 'registry:2', args: spec.args ?? first?.args ?? [], files: spec.files ?? {}, updateState: spec.updateState, force: 0 });
    // As swarm labels its task containers.
    for (const id of taskIds) this.mustFind(id).labels['com.docker.swarm.service.name'] = name;
  }

  /** Removes a container (and its log), as `docker rm` does. */
  removeContainer(id: string): void {
    this.containers.delete(id);
    this.logs.delete(id);
  }

  /** Lines the container logs, with the engine's timestamps (RFC 3339, nanoseconds), in order. */
  appendLog(id: string, lines: ReadonlyArray<{ ts: string; text: string }>): void {
    this.mustFind(id);
    let log = this.logs.get(id);
    if (!log) this.logs.set(id, (log = []));
    log.push(...lines);
  }

  /** Drops the oldest `count` lines of a container's log: a rotation took them. */
  rotateLog(id: string, count: number): void {
    this.logs.get(id)?.splice(0, count);
  }

  /** This engine is no swarm manager: it sees no service (a worker, or not in a swarm). */
  notManager(): void {
    this.manager = false;
  }

  addVolume(name: string, options: { mountpoint?: string; driver?: string } = {}): VolumeInfo {
    const volume = { name, mountpoint: options.mountpoint ?? `/var/lib/docker/volumes/${name}/_data`, driver: options.driver ?? 'local' };
    this.volumes.set(name, volume);
    return copy(volume);
  }

  /** An image reference some container or service runs (what `imagesInUse` answers), e.g. `('container web-1', 'localhost:5000/app@sha256:…')`. */
  addImageUse(user: string, reference: string): void {
    this.imageUses.push({ user, reference });
  }

  setFile(containerId: string, file: string, text: string): void {
    let files = this.files.get(containerId);
    if (!files) this.files.set(containerId, (files = new Map()));
    files.set(file, text);
  }

  /** What any exec in this container returns (default: exit 127, no such binary). */
  setExecResult(containerId: string, result: RunResult): void {
    this.execResults.set(containerId, result);
  }

  /** What a helper container from this image returns (default: exit 127). */
  setRunOnceResult(image: string, result: RunResult): void {
    this.runOnceResults.set(image, result);
  }

  /** A helper container a run left behind (labelled with its run id), as after a SIGKILL. */
  addHelper(id: string, runId: string): void {
    this.helpers.set(id, runId);
  }

  /** Ids of the helper containers still there. */
  helperIds(): string[] {
    return [...this.helpers.keys()];
  }

  /** This process runs inside that container (default: not in a container). */
  setSelf(containerId: string | undefined): void {
    this.selfId = containerId;
  }

  /**
   * Makes `method` fail for `key` (its first argument: a container id, a name, an
   * image; any key when omitted), `times` times (default: always). The failed call
   * has no effect, unless `afterEffect`: then it takes effect and the error comes
   * back anyway, as when the engine answers late (a timeout).
   */
  failOn(method: EngineMethod, key?: string, options: { error?: Error; times?: number; afterEffect?: boolean } = {}): void {
    const error = options.error ?? new RegsweepError(`cannot ${method}${key ? ` ${key}` : ''}: injected failure`);
    this.failures.push({ method, key, error, times: options.times ?? Number.POSITIVE_INFINITY, afterEffect: options.afterEffect ?? false });
  }

  /** Runs `hook` each time `method` is called for `key` (any key when undefined), before the call takes effect. */
  at(method: EngineMethod, key: string | undefined, hook: () => void | Promise<void>): void {
    this.hooks.push({ method, key, run: hook });
  }

  /** Adds a mark of the test's own to `calls` (e.g. where its work ran). */
  note(text: string): void {
    this.calls.push(text);
  }

  // -------------------------------------------------------------------------
  // Looking at the outcome

  /** The current state of a container (a copy). */
  state(id: string): ContainerInfo {
    const c = this.containers.get(id);
    if (!c) throw new Error(`fake engine: no container ${id}`);
    return copy(c);
  }

  /** Ids of the containers that are paused now. */
  pausedIds(): string[] {
    return [...this.containers.values()].filter((c) => c.paused).map((c) => c.id);
  }

  /** The task container ids of a service now. */
  serviceTasks(name: string): string[] {
    return [...(this.tasks.get(name) ?? [])];
  }

  /** A service's task env now, as its spec says (a copy). */
  serviceEnv(name: string): string[] {
    const spec = this.specs.get(name);
    if (!spec) throw new Error(`fake engine: no service ${name}`);
    return [...spec.env];
  }

  /** The calls of one method, e.g. `callsOf('restart')` → ['restart c1', ...]. */
  callsOf(method: EngineMethod): string[] {
    return this.calls.filter((c) => c === method || c.startsWith(`${method} `));
  }

  // -------------------------------------------------------------------------
  // The Engine

  async ping(): Promise<void> {
    await this.call('ping', undefined, undefined, () => {});
  }

  async container(idOrName: string): Promise<ContainerInfo | undefined> {
    return this.call('container', idOrName, undefined, () => {
      const found = this.find(idOrName);
      return found && copy(found);
    });
  }

  async containersUsingVolume(volume: string): Promise<ContainerInfo[]> {
    return this.call('containersUsingVolume', volume, undefined, () =>
      [...this.containers.values()].filter((c) => c.mounts.some((m) => m.type === 'volume' && m.name === volume)).map(copy),
    );
  }

  async runningContainers(): Promise<ContainerInfo[]> {
    return this.call('runningContainers', undefined, undefined, () => [...this.containers.values()].filter((c) => c.running).map(copy));
  }

  async serviceContainers(name: string): Promise<ContainerInfo[] | undefined> {
    return this.call('serviceContainers', name, undefined, () =>
      // No swarm manager: no services (Docker answers 503).
      !this.manager ? undefined : this.tasks.get(name)?.map((id) => this.mustFind(id)).map(copy),
    );
  }

  async serviceTaskContainers(name: string): Promise<ContainerInfo[]> {
    return this.call('serviceTaskContainers', name, undefined, () =>
      !this.manager ? [] : (this.taskHistory.get(name) ?? []).map((id) => this.containers.get(id)).filter((c): c is ContainerInfo => c !== undefined).map(copy),
    );
  }

  async containerLogs(id: string, options: { since?: string; onLine: (ts: string, text: string) => void }): Promise<void> {
    const lines = await this.call('containerLogs', id, options.since, () => {
      this.mustFind(id);
      const since = options.since === undefined ? undefined : nanos(options.since);
      return (this.logs.get(id) ?? []).filter((l) => since === undefined || nanos(engineSince(l.ts)) >= since).map(copy);
    });
    for (const line of lines) options.onLine(line.ts, line.text);
  }

  async volume(name: string): Promise<VolumeInfo | undefined> {
    return this.call('volume', name, undefined, () => {
      const v = this.volumes.get(name);
      return v && copy(v);
    });
  }

  async imagesInUse(): Promise<ImageUse[]> {
    return this.call('imagesInUse', undefined, undefined, () => copy(this.imageUses));
  }

  async readFile(containerId: string, file: string): Promise<string | undefined> {
    return this.call('readFile', containerId, file, () => {
      this.mustFind(containerId);
      return this.files.get(containerId)?.get(file);
    });
  }

  async exec(containerId: string, cmd: string[]): Promise<RunResult> {
    return this.call('exec', containerId, cmd.join(' '), () => {
      const c = this.mustFind(containerId);
      // As Docker answers (409): exec needs a running, unpaused container.
      if (c.paused) throw new RegsweepError(`container ${c.id} is paused, unpause the container before exec`);
      if (!c.running) throw new RegsweepError(`container ${c.id} is not running`);
      return copy(this.execResults.get(c.id) ?? NOT_FOUND);
    });
  }

  async runOnce(options: RunOnceOptions): Promise<RunResult> {
    this.runOnceOptions.push(options);
    return this.call('runOnce', options.image, options.cmd.join(' '), () => copy(this.runOnceResults.get(options.image) ?? NOT_FOUND));
  }

  async removeRunHelpers(runId: string): Promise<number> {
    return this.call('removeRunHelpers', runId, undefined, () => {
      const mine = [...this.helpers].filter(([, run]) => run === runId).map(([id]) => id);
      for (const id of mine) this.helpers.delete(id);
      return mine.length;
    });
  }

  async pause(containerId: string): Promise<void> {
    return this.call('pause', containerId, undefined, () => {
      const c = this.mustFind(containerId);
      if (!c.running) throw new RegsweepError(`cannot pause container ${c.id}: it is not running`);
      c.paused = true; // already paused: Docker's 304/409, which the real engine treats as done
    });
  }

  async unpause(containerId: string): Promise<void> {
    return this.call('unpause', containerId, undefined, () => {
      this.mustFind(containerId).paused = false;
    });
  }

  async restart(containerId: string): Promise<void> {
    return this.call('restart', containerId, undefined, () => {
      // Docker can restart a paused container: it comes back running, unpaused.
      const c = this.mustFind(containerId);
      c.running = true;
      c.paused = false;
    });
  }

  /** Swarm replaces every task with a fresh container; the old ones are shut down (stop-first, as on the host's network). */
  async restartService(name: string, previous: string[]): Promise<'start-first' | 'stop-first'> {
    return this.call('restartService', name, previous.join(' '), () => {
      const ids = this.tasks.get(name);
      if (!ids) throw new RegsweepError(`cannot restart service ${name}: no such service`);
      this.generation++;
      const fresh = ids.map((id) => {
        const old = this.mustFind(id);
        old.running = false;
        old.paused = false;
        const task: ContainerInfo = { ...copy(old), id: `${id}-g${this.generation}`, name: `${old.name}-g${this.generation}`, running: true, paused: false };
        this.containers.set(task.id, task);
        const files = this.files.get(id);
        if (files) this.files.set(task.id, new Map(files));
        return task.id;
      });
      this.tasks.set(name, fresh);
      this.taskHistory.get(name)?.push(...fresh);
      return 'stop-first' as const;
    });
  }

  async services(): Promise<ServiceInfo[] | undefined> {
    return this.call('services', undefined, undefined, () => (this.manager ? [...this.specs.keys()].map((name) => this.serviceInfo(name)) : undefined));
  }

  async service(name: string): Promise<ServiceInfo | undefined> {
    return this.call('service', name, undefined, () => (this.manager && this.specs.has(name) ? this.serviceInfo(name) : undefined));
  }

  /** The spec changes, then its tasks are replaced by containers with the new env (all at once: convergence is immediate here). */
  async updateServiceEnv(name: string, change: Record<string, string | null>, options: { force?: boolean; signal?: AbortSignal } = {}): Promise<'start-first' | 'stop-first'> {
    const detail = [...Object.entries(change).map(([k, v]) => (v === null ? `-${k}` : `${k}=${v}`)), ...(options.force ? ['force'] : [])].join(' ');
    return this.call('updateServiceEnv', name, detail, () => {
      const spec = this.specs.get(name);
      if (!this.manager || !spec) throw new RegsweepError(`cannot update service ${name}: no such service`);
      const env = withEnv(spec.env, change);
      const force = spec.force + (options.force ? 1 : 0);
      if (env.join('\n') === spec.env.join('\n') && force === spec.force) return 'stop-first' as const;
      this.specs.set(name, { ...spec, env, force });
      this.generation++;
      const fresh = (this.tasks.get(name) ?? []).map((id) => {
        const old = this.mustFind(id);
        old.running = false;
        old.paused = false;
        const task: ContainerInfo = { ...copy(old), id: `${id}-g${this.generation}`, name: `${old.name}-g${this.generation}`, running: true, paused: false, env: Object.fromEntries(env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])) };
        this.containers.set(task.id, task);
        const files = this.files.get(id);
        if (files) this.files.set(task.id, new Map(files));
        return task.id;
      });
      this.tasks.set(name, fresh);
      this.taskHistory.get(name)?.push(...fresh);
      // As the real wait for convergence notices it: the spec is changed, the wait ends.
      options.signal?.throwIfAborted();
      return 'stop-first' as const;
    });
  }

  private serviceInfo(name: string): ServiceInfo {
    const spec = this.specs.get(name) as ServiceSpec;
    const env = Object.fromEntries(spec.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    return copy({ id: `id-${name}`, name, image: spec.image, env, args: spec.args, files: spec.files, ...(spec.updateState ? { updateState: spec.updateState } : {}) });
  }

  async self(): Promise<ContainerInfo | undefined> {
    return this.call('self', undefined, undefined, () => (this.selfId === undefined ? undefined : copy(this.mustFind(this.selfId))));
  }

  // -------------------------------------------------------------------------

  /**
   * Records the call and runs its hooks; then, if it is made to fail, throws
   * before its effect (or after it, with `afterEffect`); else applies `effect`.
   */
  private async call<T>(method: EngineMethod, key: string | undefined, detail: string | undefined, effect: () => T): Promise<T> {
    this.calls.push([method, key, detail].filter((p) => p !== undefined && p !== '').join(' '));
    const matches = (rule: { method: EngineMethod; key: string | undefined }): boolean =>
      rule.method === method && (rule.key === undefined || rule.key === key);
    for (const hook of this.hooks.filter(matches)) await hook.run();
    const failure = this.failures.find((f) => f.times > 0 && matches(f));
    if (failure) failure.times--;
    if (failure && !failure.afterEffect) throw failure.error;
    const result = effect();
    if (failure) throw failure.error;
    return result;
  }

  private find(idOrName: string): ContainerInfo | undefined {
    return this.containers.get(idOrName) ?? [...this.containers.values()].find((c) => c.name === idOrName);
  }

  private mustFind(idOrName: string): ContainerInfo {
    const c = this.find(idOrName);
    if (!c) throw new RegsweepError(`no such container: ${idOrName}`);
    return c;
  }
}
