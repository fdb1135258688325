/**
 * What regsweep asks of the Docker engine, as a small interface: one
 * implementation talks to the daemon (dockerodeEngine.ts), and tests drive
 * the rest of docker/ with a fake.
 */
export interface MountInfo {
  type: string;
  source: string;
  destination: string;
  name?: string;
}

export interface ContainerInfo {
  id: string;
  name: string;
  /** Image id (sha256:...), what a sibling container is created from. */
  image: string;
  /** The image as the container was created with it (e.g. registry:2). */
  imageName: string;
  running: boolean;
  paused: boolean;
  /** When it was created (ms since the epoch): a log whose first line comes soon after is whole. */
  created: number;
  env: Record<string, string>;
  /** Arguments after the entrypoint: for the registry image, Args[0] is the config path. */
  args: string[];
  mounts: MountInfo[];
  labels: Record<string, string>;
}

export interface VolumeInfo {
  name: string;
  mountpoint: string;
  driver: string;
}

/** An image reference something on the engine runs, and who: what an untagged purge must not take from under it. */
export interface ImageUse {
  /** `container NAME` or `service NAME`. */
  user: string;
  /** As the engine says it: `localhost:5000/app@sha256:…` (RepoDigests), `app:tag@sha256:…` (a service), `registry:2`. */
  reference: string;
}

/** A swarm service as its spec says, for finding the registries on a bucket and holding them read-only. */
export interface ServiceInfo {
  id: string;
  name: string;
  /** The task image, as the spec names it (`registry:2@sha256:…`). */
  image: string;
  /** The task env as the spec says it (templates such as `{{.Task.Slot}}` unexpanded). */
  env: Record<string, string>;
  /** The task's arguments after the entrypoint: for the registry image, Args[0] is the config path. */
  args: string[];
  /** Swarm configs the tasks get as files, by path in the task: their text (a manager reads them; secrets it cannot). */
  files: Record<string, string>;
  /** The state of its last update (`updating`, `paused`, `completed`, `rollback_started`, …), undefined when it never had one. */
  updateState?: string;
}

export interface RunResult {
  exitCode: number;
  output: string;
}

export interface RunOnceOptions {
  image: string;
  cmd: string[];
  env?: string[];
  volumesFrom?: string[];
  binds?: string[];
  labels?: Record<string, string>;
  /** Its network (default `none`): `container:<id>` joins the registry's, to reach the bucket as the registry does. */
  network?: string;
  signal?: AbortSignal;
  onOutput?: (text: string) => void;
}

export interface Engine {
  ping(): Promise<void>;
  container(idOrName: string): Promise<ContainerInfo | undefined>;
  containersUsingVolume(volume: string): Promise<ContainerInfo[]>;
  /** Every running container (paused ones included) of this engine. */
  runningContainers(): Promise<ContainerInfo[]>;
  /** The containers of a swarm service's running tasks, or undefined when there is no such service. */
  serviceContainers(name: string): Promise<ContainerInfo[] | undefined>;
  /**
   * Every container of a swarm service's tasks that still exists on this
   * engine, ended ones included (swarm keeps task history): their logs hold
   * requests served before the tasks were replaced. None where there is no
   * such service or this engine is no manager.
   */
  serviceTaskContainers(name: string): Promise<ContainerInfo[]>;
  volume(name: string): Promise<VolumeInfo | undefined>;
  /**
   * What every container (any state) and swarm service runs: a container's own
   * image reference and its image's RepoDigests, a service's task image.
   */
  imagesInUse(): Promise<ImageUse[]>;
  readFile(containerId: string, file: string): Promise<string | undefined>;
  /**
   * The container's log (stdout and stderr) as the engine keeps it, line by
   * line in the engine's order, streamed (a big log is never held whole):
   * `ts` is the engine's RFC 3339 timestamp with nanoseconds, `text` the line
   * without it and without its newline. `since` (a unix time with fractional
   * nanoseconds, `1733270400.123456789`) gives the lines at or after it. A
   * log driver the engine cannot read back (`none`, a remote one with its
   * cache disabled) throws an EngineError saying so.
   */
  containerLogs(id: string, options: { since?: string; onLine: (ts: string, text: string) => void }): Promise<void>;
  exec(containerId: string, cmd: string[]): Promise<RunResult>;
  /** Creates, runs and always removes a helper container; its output is returned. */
  runOnce(options: RunOnceOptions): Promise<RunResult>;
  /** Kills and removes the helper containers a run labelled with its id (RUN_LABEL); returns how many. */
  removeRunHelpers(runId: string): Promise<number>;
  pause(containerId: string): Promise<void>;
  unpause(containerId: string): Promise<void>;
  restart(containerId: string): Promise<void>;
  /**
   * Replaces a swarm service's tasks with fresh containers and waits until they run.
   * `docker restart` on a task container makes swarm fail the task and start a rival one.
   * Returns the update's order: `start-first` where a new task can serve beside the old one.
   */
  restartService(name: string, previous: string[]): Promise<'start-first' | 'stop-first'>;
  /** Every swarm service, or undefined where this engine is no swarm manager (it can neither see nor update services). */
  services(): Promise<ServiceInfo[] | undefined>;
  /** One swarm service by name, or undefined when there is none (or this engine is no manager). */
  service(name: string): Promise<ServiceInfo | undefined>;
  /**
   * Sets (a string) or removes (null) variables of a service's task env,
   * keeping the rest of its spec as it is now (`force`: its tasks are replaced
   * even where the env does not change), then waits until the update has
   * converged: no task of the spec before runs anywhere, and the tasks of the
   * new one run. A timeout, a failed update or `signal` throws, leaving the
   * spec changed (the caller puts it back). Returns the update's order, as restartService.
   */
  updateServiceEnv(name: string, change: Record<string, string | null>, options?: { force?: boolean; timeoutMs?: number; signal?: AbortSignal }): Promise<'start-first' | 'stop-first'>;
  /** The container this process runs in, when it runs in one. */
  self(): Promise<ContainerInfo | undefined>;
}

/** The label of every helper container a run starts, with the run's id: what a watchdog removes when the run dies. */
export const RUN_LABEL = 'io.regsweep.run';
