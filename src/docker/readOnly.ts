/**
 * A swarm service on a bucket is held read-only for the window, not paused:
 * its replicas may run on other hosts, where no pause of this engine reaches
 * them, but a service update reaches every one. The update adds the
 * registry's read-only mode to the task env (`REGISTRY_STORAGE_MAINTENANCE_READONLY`,
 * the whole map: the `_ENABLED` form panics), and the window opens only once
 * no task of the spec before runs; afterwards the variable is put back as it
 * was, which replaces the tasks again (their blob caches start empty).
 *
 * The lock record says which services a run set read-only and what the
 * variable was before (recorded before each update), so whoever finds the run
 * dead (its watchdog, the next run) puts it back: only where it still holds
 * this run's value, and only that variable.
 */
import { EngineError, RollbackError } from '../errors.js';
import { failpoint } from '../util/failpoint.js';
import type { Engine } from './engine.js';

export const READ_ONLY_VARIABLE = 'REGISTRY_STORAGE_MAINTENANCE_READONLY';
export const READ_ONLY_ON = '{"enabled":true}';

/** A service this run set read-only, and the variable's value before (null: it was not set). */
export interface ReadOnlyHold {
  service: string;
  previous: string | null;
}

/**
 * An env list (`KEY=VALUE` entries, in order) with these variables set (a
 * string: in place where the variable is, else at the end) or removed (null),
 * everything else as it was. Swarm takes the last of duplicate entries, so
 * a set replaces every one of them.
 */
export function withEnv(env: readonly string[], change: Readonly<Record<string, string | null>>): string[] {
  const keyOf = (entry: string): string => (entry.includes('=') ? entry.slice(0, entry.indexOf('=')) : entry);
  const out: string[] = [];
  const placed = new Set<string>();
  for (const entry of env) {
    const key = keyOf(entry);
    if (!(key in change)) out.push(entry);
    else if (change[key] !== null && !placed.has(key)) {
      out.push(`${key}=${change[key]}`);
      placed.add(key);
    }
  }
  for (const [key, value] of Object.entries(change)) if (value !== null && !placed.has(key)) out.push(`${key}=${value}`);
  return out;
}

/**
 * Sets the service read-only and waits until every running task is of that
 * spec. `record` hears the hold before the update starts: from then on, a
 * run that dies leaves enough to put the variable back.
 */
export async function holdReadOnly(engine: Engine, service: string, signal: AbortSignal, record: (hold: ReadOnlyHold) => void): Promise<void> {
  const info = await engine.service(service);
  if (!info) throw new EngineError(`service ${service} is gone: it cannot be held read-only`);
  record({ service, previous: info.env[READ_ONLY_VARIABLE] ?? null });
  // SIGINT or SIGTERM ends the wait for convergence: the window then puts the variable back.
  await engine.updateServiceEnv(service, { [READ_ONLY_VARIABLE]: READ_ONLY_ON }, { signal });
  failpoint('window.readOnly');
}

/**
 * Puts the variable back on each held service where it still holds this
 * run's value (someone who changed it since keeps their change), which
 * replaces the tasks; a service that held read-only before the run keeps it,
 * its tasks replaced all the same. Returns the services put back and the
 * order of their updates; every failure is tried past and reported together.
 */
export async function releaseReadOnly(engine: Engine, holds: readonly ReadOnlyHold[]): Promise<{ services: string[]; order?: 'start-first' | 'stop-first' }> {
  const failures: string[] = [];
  const services: string[] = [];
  let order: 'start-first' | 'stop-first' | undefined;
  await Promise.all(
    holds.map(async ({ service, previous }) => {
      try {
        const info = await engine.service(service);
        if (info?.env[READ_ONLY_VARIABLE] !== READ_ONLY_ON) return; // removed since, or changed by someone else: theirs
        const done = await engine.updateServiceEnv(service, { [READ_ONLY_VARIABLE]: previous }, { force: previous === READ_ONLY_ON });
        if (order !== 'stop-first') order = done;
        services.push(service);
      } catch (error) {
        failures.push(`service ${service}: ${(error as Error).message}`);
      }
    }),
  );
  if (failures.length > 0) throw new RollbackError(`could not take the registry out of read-only mode: ${failures.join('; ')}`);
  return { services: services.sort(), order };
}
