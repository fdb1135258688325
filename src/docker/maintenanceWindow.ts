/**
 * The maintenance window: only the re-check, the apply and garbage-collect
 * run inside it. The registry containers are paused for it, so nothing is
 * pushed meanwhile, and restarted after it, so their blob cache forgets the
 * swept blobs. Bringing the registry back is a once-only rollback that runs
 * on success, on any error, and on SIGINT or SIGTERM.
 */
import { InterruptedError, RollbackError, UsageError } from '../errors.js';
import { blobDescriptorCache } from '../gc/registryConfig.js';
import { failpoint } from '../util/failpoint.js';
import type { ContainerInfo, Engine } from './engine.js';
import { SERVICE_LABEL, configPathCandidates } from './locator.js';
import { READ_ONLY_VARIABLE, type ReadOnlyHold, holdReadOnly, releaseReadOnly } from './readOnly.js';

/** How the registry came back after the window, and why that way. */
export interface BroughtBack {
  /** `restarted` to empty a blob cache in its memory, `unpaused` where it keeps none, `replaced`: a swarm service's tasks, by a forced update. */
  how: 'restarted' | 'unpaused' | 'replaced';
  /** A swarm service's update: `start-first` where a new task can serve beside the old one. */
  order?: 'start-first' | 'stop-first';
  why: string;
  /** The swarm services held read-only for the window (on a bucket), put back and so replaced. */
  readOnly?: string[];
}

/** What the window holds so far: the containers paused (or about to be), the services set read-only (or about to be). */
interface Held {
  paused: readonly ContainerInfo[];
  readOnly: readonly ReadOnlyHold[];
}

interface WindowResult<T> {
  value: T;
  pausedMs: number;
  /** Undefined where nothing was paused. */
  broughtBack?: BroughtBack;
}

export interface MaintenanceWindow {
  /** What the window does to the registry, for the confirmation and the report. */
  readonly description: string;
  /** `onHold` hears what this run holds (or is about to), before each pause and each service update. */
  run<T>(work: (signal: AbortSignal) => Promise<T>, onHold?: (held: Held) => void): Promise<WindowResult<T>>;
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}

/**
 * Runs `work` with an AbortSignal that fires on SIGINT or SIGTERM, then always
 * runs `rollback` before returning or throwing. A second signal during the
 * rollback is swallowed: leaving the registry paused is the one outcome to
 * avoid. The signal handlers go when the rollback has ended, however it ended.
 */
async function guarded<T>(work: (signal: AbortSignal) => Promise<T>, rollback: () => Promise<void>): Promise<T> {
  const controller = new AbortController();
  let interruptedBy: string | undefined;
  const onSignal = (name: NodeJS.Signals): void => {
    interruptedBy ??= name;
    controller.abort(new InterruptedError(`interrupted by ${name}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let outcome: { value: T } | { error: unknown };
  try {
    outcome = { value: await work(controller.signal) };
  } catch (error) {
    outcome = { error };
  }
  try {
    await rollback();
  } catch (error) {
    // A registry left down is what the user must act on first; why the work stopped stays as the cause.
    if ('error' in outcome && error instanceof RollbackError) throw new RollbackError(error.message, { cause: outcome.error });
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (interruptedBy) throw new InterruptedError(`interrupted by ${interruptedBy}; the registry was brought back`, 'error' in outcome ? { cause: outcome.error } : undefined);
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}

/** No registry to pause (a storage path, or a volume nobody serves): only the signal handling. */
export function unpausedWindow(description = 'the registry is not paused: stop it or make it read-only first'): MaintenanceWindow {
  return {
    description,
    async run(work) {
      const value = await guarded(work, async () => {});
      return { value, pausedMs: 0 };
    },
  };
}

export interface RegistryWindowOptions {
  /** Restart after the window, or only unpause (`--unpause-only`, or no cache in the registry's memory to empty). */
  restart: boolean;
  /** Why, for the description and the report: `no blob descriptor cache in its memory to empty`. */
  because?: string;
  /** The containers are the tasks of this swarm service: restarting means replacing the tasks. */
  service?: string;
  /** Swarm services on a bucket: held read-only for the window instead of paused (their task containers are not paused). */
  readOnly?: string[];
}

/**
 * Why the registry must be restarted after the window to forget the blobs
 * swept, or undefined where it need not: only a blob descriptor cache in its
 * own memory (`inmemory`) needs it. regsweep empties a Redis one itself, and
 * with none the registry keeps nothing to forget, so unpausing it fails no
 * request. A container whose config cannot be read or parsed counts as
 * holding one: a restart is safe, an unpause might serve swept blobs from the
 * cache.
 */
export async function whyRestart(engine: Engine, containers: readonly ContainerInfo[]): Promise<string | undefined> {
  const cacheOf = async (c: ContainerInfo): Promise<string> => {
    for (const candidate of configPathCandidates(c)) {
      const text = await engine.readFile(c.id, candidate);
      if (text !== undefined) return blobDescriptorCache(text, c.env);
    }
    return 'unknown'; // The registry does not start without a config file: it is somewhere this run cannot see.
  };
  const caches = await Promise.all(containers.map((c) => cacheOf(c).catch(() => 'unknown')));
  if (caches.includes('inmemory')) return 'its blob descriptor cache is in its memory';
  if (caches.includes('unknown')) return 'its config could not be read, so it may keep a blob cache in its memory';
  return undefined;
}

/**
 * Restarts (or only unpauses) the containers the window paused. A swarm
 * service's tasks are replaced instead. Whatever cannot be restarted is at
 * least unpaused, so it serves again, and the run fails saying so.
 */
export async function bringBack(engine: Engine, paused: readonly ContainerInfo[], options: RegistryWindowOptions): Promise<BroughtBack> {
  const failures: string[] = [];
  const why = options.because ?? (options.restart ? 'to empty its blob cache' : 'not restarted');
  let brought: BroughtBack = { how: options.restart ? 'restarted' : 'unpaused', why };
  if (options.restart && options.service) {
    try {
      brought = { how: 'replaced', order: await engine.restartService(options.service, paused.map((c) => c.id)), why };
    } catch (error) {
      failures.push((error as Error).message);
      await Promise.all(paused.map((c) => engine.unpause(c.id).catch(() => {})));
    }
  } else {
    await Promise.all(
      paused.map(async (c) => {
        try {
          await (options.restart ? engine.restart(c.id) : engine.unpause(c.id));
        } catch (error) {
          failures.push(`${c.name}: ${(error as Error).message}`);
          // Not restarted: at least let it serve again, as for swarm tasks.
          if (options.restart) await engine.unpause(c.id).catch(() => {});
        }
      }),
    );
  }
  if (failures.length > 0) throw new RollbackError(`could not bring the registry back: ${failures.join('; ')}`);
  return brought;
}

/**
 * A registry container found paused is not this run's to touch: whoever
 * paused it (an admin, another tool) unpauses it. regsweep refuses rather
 * than pause, unpause or restart it. (A container a dead regsweep run left
 * paused was brought back before this, by the recovery that took its lock.)
 */
export async function refusePausedByOthers(engine: Engine, containers: readonly ContainerInfo[]): Promise<void> {
  const now = await Promise.all(containers.map((c) => engine.container(c.id)));
  const paused = now.filter((c): c is ContainerInfo => c?.paused === true).map((c) => c.name);
  if (paused.length > 0) {
    throw new UsageError(`${paused.join(', ')} ${paused.length > 1 ? 'are' : 'is'} paused, not by regsweep: unpause ${paused.length > 1 ? 'them' : 'it'} first (nothing changed)`);
  }
}

/** What the window says it does: pauses containers, holds services read-only, and how they come back. */
function describeWindow(running: readonly ContainerInfo[], options: RegistryWindowOptions): string {
  const after = `${options.restart ? 'restarted' : 'unpaused'}${options.because ? ` (${options.because})` : ''}`;
  const parts: string[] = [];
  const services = options.readOnly ?? [];
  if (services.length > 0) {
    const which = `service${services.length > 1 ? 's' : ''} ${services.join(', ')}`;
    parts.push(`${which} set read-only (${READ_ONLY_VARIABLE}) on every replica during the purge and sweep, then put back (its tasks replaced, their blob caches empty)`);
  }
  if (running.length > 0) parts.push(`${running.map((c) => c.name).join(', ')} paused during the purge and garbage-collect, then ${after}`);
  return parts.length > 0 ? parts.join('; ') : 'no registry container is running: nothing to pause';
}

/** The services put back and the paused containers brought back, as one BroughtBack. */
function together(services: { services: string[]; order?: 'start-first' | 'stop-first' } | undefined, containers: BroughtBack | undefined, held: readonly string[]): BroughtBack | undefined {
  if (!services) return containers;
  const why = services.services.length > 0 ? `read-only mode off, so the tasks of ${services.services.join(', ')} started afresh with empty blob caches` : 'read-only mode changed by someone else meanwhile: left as they set it';
  const also = containers ? `; the paused containers ${containers.how} (${containers.why})` : '';
  return { how: 'replaced', ...(services.order ? { order: services.order } : {}), why: `${why}${also}`, readOnly: [...held] };
}

/** The containers a window pauses: the running ones that are no task of a service it holds read-only. */
export function containersToPause(containers: readonly ContainerInfo[], readOnly: readonly string[] = []): ContainerInfo[] {
  return containers.filter((c) => c.running && !readOnly.includes(c.labels[SERVICE_LABEL] ?? ''));
}

/**
 * Holds the registry for the window: swarm services on a bucket set
 * read-only (every replica, wherever it runs), then every other running
 * container of the registry paused; all brought back after it.
 */
export function registryWindow(engine: Engine, containers: ContainerInfo[], options: RegistryWindowOptions): MaintenanceWindow {
  const services = options.readOnly ?? [];
  const running = containersToPause(containers, services);
  return {
    description: describeWindow(running, options),
    async run(work, onHold) {
      await refusePausedByOthers(engine, running);
      const paused: ContainerInfo[] = [];
      const readOnly: ReadOnlyHold[] = [];
      let pausedAt = 0;
      let resumedAt = 0;
      let broughtBack: BroughtBack | undefined;
      const resume = once(async () => {
        try {
          // Side by side: the containers serve again while the services' updates converge, and neither waits on the other's failure.
          const [released, back] = await Promise.all([
            readOnly.length > 0 ? releaseReadOnly(engine, readOnly).catch((error: unknown) => error as Error) : undefined,
            paused.length > 0 ? bringBack(engine, paused, options).catch((error: unknown) => error as Error) : undefined,
          ]);
          const failed = [released, back].filter((r): r is Error => r instanceof Error);
          if (failed.length > 1) throw new RollbackError(failed.map((e) => e.message).join('; '));
          if (failed[0]) throw failed[0];
          broughtBack = together(released as Exclude<typeof released, Error>, back as Exclude<typeof back, Error>, readOnly.map((h) => h.service));
          failpoint('window.broughtBack');
        } finally {
          resumedAt = Date.now();
        }
      });
      const value = await guarded(async (signal) => {
        pausedAt = Date.now();
        for (const service of services) {
          // Recorded before the update: one that fails half-way is still put back.
          await holdReadOnly(engine, service, signal, (hold) => {
            readOnly.push(hold);
            onHold?.({ paused, readOnly });
          });
          signal.throwIfAborted();
        }
        for (const c of running) {
          paused.push(c); // recorded before the call: a pause that fails half-way is still undone
          onHold?.({ paused, readOnly });
          await engine.pause(c.id);
          failpoint('window.paused');
          signal.throwIfAborted();
        }
        return work(signal);
      }, resume);
      return { value, pausedMs: running.length + services.length > 0 ? resumedAt - pausedAt : 0, broughtBack };
    },
  };
}
