/**
 * Running the registry's own `garbage-collect`, and the version rules that
 * decide its flags. regsweep never sweeps blobs itself: the registry's code is
 * the authority on what it still needs.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { type Environment, storageConfig, withoutRegistryOverrides } from './registryConfig.js';
import { yaml } from '../util/lazy.js';

export const MIN_REGISTRY_VERSION = '2.4.0';

/** `registry github.com/docker/distribution 2.8.2+ds1` → `2.8.2`; `… v2.8.1+unknown` → `2.8.1`. */
export function parseRegistryVersion(output: string): string | undefined {
  const last = output.trim().split(/\s+/).pop() ?? '';
  const version = last.replace(/^v/, '').replace(/\+.*$/, '');
  return /^\d+\.\d+(\.\d+)?/.test(version) ? version : undefined;
}

/** Compares dotted numeric versions; pre-release suffixes (`3.0.0-rc.1`) count as their release. */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string): number[] => v.split(/[.-]/).slice(0, 3).map((p) => Number.parseInt(p, 10) || 0);
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export interface GcDecision {
  args: string[];
  why: string;
}

/**
 * `--delete-untagged` on 2.x deletes the untagged children of tagged lists and
 * breaks multi-arch images, and on every version deletes untagged referrers.
 * regsweep has already removed what is untagged and unneeded, so it is used
 * only on 3.0.0+ and only when the plan keeps no untagged manifest on purpose.
 */
export function chooseGcFlags(version: string, keepsUntagged: boolean): GcDecision {
  if (compareVersions(version, '3.0.0') < 0) {
    return { args: [], why: `registry ${version} (2.x): plain garbage-collect; --delete-untagged would break multi-arch images` };
  }
  if (keepsUntagged) {
    return { args: [], why: `registry ${version}: plain garbage-collect; the plan keeps untagged children or referrers that --delete-untagged would remove` };
  }
  return { args: ['--delete-untagged'], why: `registry ${version}: garbage-collect --delete-untagged; every kept manifest is tagged` };
}

export function checkSupportedVersion(version: string): void {
  if (compareVersions(version, MIN_REGISTRY_VERSION) < 0) {
    throw new UsageError(`registry ${version} is older than ${MIN_REGISTRY_VERSION}, which regsweep does not support`);
  }
}

export interface GcSummary {
  marked: number;
  blobsEligible: number;
  manifestsEligible: number;
}

export interface GcResult {
  ran: boolean;
  command: string[];
  exitCode: number | null;
  summary?: GcSummary;
  output: string;
  /** Why it did not run, when it did not. */
  skipped?: string;
}

export function parseGcSummary(output: string): GcSummary | undefined {
  const m = /(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion/.exec(output);
  if (!m) return undefined;
  return { marked: Number(m[1]), blobsEligible: Number(m[2]), manifestsEligible: Number(m[3]) };
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await fs.access(file, constants.X_OK);
    return (await fs.stat(file)).isFile();
  } catch {
    return false;
  }
}

/** `--registry-bin`, else `registry` or `docker-registry` (Debian's name) on PATH. */
export async function findRegistryBinary(explicit: string | undefined, env: Environment = process.env): Promise<string | undefined> {
  if (explicit) {
    if (!(await isExecutable(explicit))) throw new UsageError(`--registry-bin ${explicit} is not an executable file`);
    return explicit;
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    for (const name of ['registry', 'docker-registry']) {
      const candidate = path.join(dir, name);
      if (await isExecutable(candidate)) return candidate;
    }
  }
  return undefined;
}

interface Run {
  exitCode: number | null;
  output: string;
}

function run(command: string, args: string[], env: Environment, signal?: AbortSignal, onOutput?: (text: string) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'], signal });
    const chunks: Buffer[] = [];
    const take = (c: Buffer): void => {
      chunks.push(c);
      onOutput?.(c.toString('utf8'));
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code) => resolve({ exitCode: code, output: Buffer.concat(chunks).toString('utf8') }));
  });
}

export async function localRegistryVersion(bin: string): Promise<string> {
  const { exitCode, output } = await run(bin, ['--version'], withoutRegistryOverrides(process.env));
  const version = parseRegistryVersion(output);
  if (exitCode !== 0 || !version) throw new UsageError(`cannot read the version of ${bin}: ${output.trim().split('\n')[0] ?? ''}`);
  return version;
}

export interface LocalGcOptions {
  bin: string;
  root: string;
  /** The registry's own config; otherwise a config naming only `root` is generated. */
  config?: string;
  args?: string[];
  env?: Environment;
  signal?: AbortSignal;
  /** Garbage-collect's output as it comes, for progress. */
  onOutput?: (text: string) => void;
}

/**
 * Checks that `--config` describes filesystem storage at `root`, so garbage-collect
 * cannot sweep some other tree than the one regsweep planned.
 */
export async function checkConfigMatchesRoot(config: string, root: string, env: Environment): Promise<void> {
  let text: string;
  try {
    text = await fs.readFile(config, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --config ${config}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const storage = storageConfig(text, env, config);
  if (storage.driver !== 'filesystem') throw new UsageError(`${config} uses the ${storage.driver} storage driver; regsweep works only on filesystem storage`);
  const [a, b] = await Promise.all([realpathOrSelf(storage.rootdirectory as string), realpathOrSelf(root)]);
  if (a !== b) throw new UsageError(`${config} stores at ${storage.rootdirectory}, not at ${root}`);
}

async function realpathOrSelf(p: string): Promise<string> {
  try {
    return await fs.realpath(p);
  } catch {
    return path.resolve(p);
  }
}

export async function runLocalGc(options: LocalGcOptions): Promise<GcResult> {
  const env = options.env ?? process.env;
  // Without the registry's own config, a generated one names only the root, and REGISTRY_* overrides
  // are dropped so they cannot point it at another tree; with it, they apply as the registry sees them.
  const dir = options.config ? undefined : await fs.mkdtemp(path.join(os.tmpdir(), 'regsweep-gc-'));
  try {
    let config = options.config;
    if (dir) {
      config = path.join(dir, 'config.yml');
      await fs.writeFile(config, yaml().dump({ version: 0.1, log: { level: 'warn' }, storage: { filesystem: { rootdirectory: path.resolve(options.root) } } }));
    }
    const command = [options.bin, 'garbage-collect', ...(options.args ?? []), config as string];
    const { exitCode, output } = await run(options.bin, command.slice(1), dir ? withoutRegistryOverrides(env) : env, options.signal, options.onOutput);
    return { ran: true, command, exitCode, output, summary: parseGcSummary(output) };
  } finally {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  }
}
