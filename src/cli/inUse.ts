/**
 * The digests a run keeps because something uses them: `--keep-digests`
 * (read and checked before anything else happens) and, unless `--no-in-use`,
 * what the Docker engine's containers and services run, asked just before
 * the scan and outside the maintenance window.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { Engine } from '../docker/engine.js';
import { UsageError } from '../errors.js';
import { type Pinned, addReference, emptyPins, pinCount, readPinList } from '../plan/pins.js';
import { errnoText } from '../util/errno.js';
import type { CliOptions } from './program.js';
import type { Resolved } from './runtime.js';

/** Where dockerode looks without DOCKER_HOST. */
const DEFAULT_SOCKET = '/var/run/docker.sock';
/** With --path the engine is optional: one that does not answer within this is taken as absent. */
const PATH_ENGINE_TIMEOUT_MS = 10_000;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** `--keep-digests FILE` (`-`: stdin), parsed: a bad line refuses the run (exit 2) before any engine is asked. */
export async function pinsFromFile(opts: CliOptions, dryRun: boolean): Promise<Pinned> {
  const pinned = emptyPins();
  const file = opts.keepDigests;
  if (file === undefined) return pinned;
  if (file === '-') {
    // A real run without --yes asks its question on stdin.
    if (!dryRun && !opts.yes) throw new UsageError('--keep-digests - reads stdin, which the confirmation needs: add --yes or --dry-run');
    readPinList(await readStdin(), { source: 'stdin', user: 'stdin' }, pinned);
    return pinned;
  }
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --keep-digests ${file}: ${errnoText(error)}`);
  }
  readPinList(text, { source: file, user: `file ${file}` }, pinned);
  return pinned;
}

/**
 * With --path: the engine DOCKER_HOST names, or the one at the default socket
 * when it exists; none otherwise. Loaded only then: dockerode costs a tenth
 * of a second at start-up.
 */
async function pathEngine(log: (m: string) => void): Promise<Engine | undefined> {
  if (!process.env.DOCKER_HOST && !fs.existsSync(DEFAULT_SOCKET)) return undefined;
  const [{ default: Docker }, { DockerodeEngine }] = await Promise.all([import('dockerode'), import('../docker/dockerodeEngine.js')]);
  try {
    return new DockerodeEngine(log, new Docker({ timeout: PATH_ENGINE_TIMEOUT_MS }));
  } catch (error) {
    log(`no digests in use from Docker: ${(error as Error).message}`); // a DOCKER_HOST dockerode cannot read
    return undefined;
  }
}

/**
 * Adds to `pinned` what the engine's containers and services use. A Docker
 * target's engine must answer (it was just asked for the target); with
 * --path, an engine that does not answer only means no pins from it, said
 * with --verbose: a host without Docker runs no containers.
 */
export async function pinsInUse(resolved: Resolved, opts: CliOptions, pinned: Pinned, log: (m: string) => void): Promise<Pinned> {
  if (!opts.inUse) return pinned;
  const engine = resolved.engine ?? (await pathEngine(log));
  if (!engine) return pinned;
  let uses;
  try {
    uses = await engine.imagesInUse();
  } catch (error) {
    if (resolved.engine) throw error;
    log(`no digests in use from Docker (${process.env.DOCKER_HOST ?? DEFAULT_SOCKET}): ${(error as Error).message}`);
    return pinned;
  }
  const before = pinCount(pinned);
  for (const { user, reference } of uses) addReference(pinned, reference, user);
  log(`${pinCount(pinned) - before} digests in use by the engine's containers and services (of ${uses.length} image references)`);
  return pinned;
}
