/**
 * garbage-collect with the registry binary on this host, for a storage path:
 * found on PATH or named, its version asked, and run with the registry's own
 * config (checked to store at the planned root) or a generated one.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { errnoText } from '../util/errno.js';
import { yaml } from '../util/lazy.js';
import { type CollectOptions, type GcResult, type GcRunner, parseGcSummary } from './garbageCollect.js';
import { type Environment, storageConfig, withoutRegistryOverrides } from './registryConfig.js';
import { checkSupportedVersion, parseRegistryVersion } from './version.js';

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

function run(command: string, args: string[], env: Environment, options: Omit<CollectOptions, 'args'> = {}): Promise<Run> {
  const { signal, onOutput } = options;
  return new Promise((resolve, reject) => {
    // A process group of its own, so a watchdog can stop all of it should regsweep die; SIGINT reaches it through `signal`.
    const child = spawn(command, args, { env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'], signal, detached: true });
    if (child.pid !== undefined) options.onStarted?.(child.pid);
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

/** The version of the local registry binary (--registry-bin, else on PATH), or undefined where there is none. */
export async function localBinaryVersion(explicit: string | undefined): Promise<string | undefined> {
  const bin = await findRegistryBinary(explicit);
  return bin ? localRegistryVersion(bin) : undefined;
}

async function localRegistryVersion(bin: string): Promise<string> {
  const { exitCode, output } = await run(bin, ['--version'], withoutRegistryOverrides(process.env));
  const version = parseRegistryVersion(output);
  if (exitCode !== 0 || !version) throw new UsageError(`cannot read the version of ${bin}: ${output.trim().split('\n')[0] ?? ''}`);
  return version;
}

interface LocalGcOptions extends CollectOptions {
  bin: string;
  /** Without `config`: the root a generated config names. */
  root?: string;
  /** The registry's own config; otherwise a config naming only `root` is generated. */
  config?: string;
  env?: Environment;
}

/**
 * Checks that `--config` describes filesystem storage at `root`, so garbage-collect
 * cannot sweep some other tree than the one regsweep planned.
 */
async function checkConfigMatchesRoot(config: string, root: string, env: Environment): Promise<void> {
  let text: string;
  try {
    text = await fs.readFile(config, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --config ${config}: ${errnoText(error)}`);
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

async function runLocalGc(options: LocalGcOptions): Promise<GcResult> {
  const env = options.env ?? process.env;
  // Without the registry's own config, a generated one names only the root, and REGISTRY_* overrides
  // are dropped so they cannot point it at another tree; with it, they apply as the registry sees them.
  const dir = options.config ? undefined : await fs.mkdtemp(path.join(os.tmpdir(), 'regsweep-gc-'));
  try {
    let config = options.config;
    if (dir) {
      config = path.join(dir, 'config.yml');
      await fs.writeFile(config, yaml().dump({ version: 0.1, log: { level: 'warn' }, storage: { filesystem: { rootdirectory: path.resolve(options.root as string) } } }));
    }
    const command = [options.bin, 'garbage-collect', ...options.args, config as string];
    const { exitCode, output } = await run(options.bin, command.slice(1), dir ? withoutRegistryOverrides(env) : env, options);
    return { ran: true, command, exitCode, output, summary: parseGcSummary(output) };
  } finally {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  }
}

export interface LocalGcRunnerOptions {
  registryBin?: string;
  /** The filesystem root it collects; absent: the storage `config` names (a bucket), as it names it. */
  root?: string;
  config?: string;
}

/** The local binary, or undefined when there is none and none was asked for. */
export async function localGcRunner(options: LocalGcRunnerOptions): Promise<GcRunner | undefined> {
  const bin = await findRegistryBinary(options.registryBin);
  if (!bin) return undefined;
  const version = await localRegistryVersion(bin);
  checkSupportedVersion(version);
  const { root, config } = options;
  if (root === undefined && config === undefined) throw new Error('localGcRunner needs a root or a config');
  if (config && root !== undefined) await checkConfigMatchesRoot(config, root, process.env);
  return {
    version,
    where: bin,
    collect: (collect) => runLocalGc({ ...collect, bin, root, config }),
  };
}
