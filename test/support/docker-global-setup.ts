/**
 * vitest globalSetup for the Docker end-to-end tests.
 *
 *   REGSWEEP_DOCKER_TESTS=1 npx vitest run --globalSetup test/support/docker-global-setup.ts
 *   (or `globalSetup: ['test/support/docker-global-setup.ts']` in a vitest config)
 *
 * - `REGSWEEP_DOCKER_TESTS=0`, or unset on a machine without dockerd or without root:
 *   does nothing (Docker tests skip themselves). Unset with dockerd and root: as `1`.
 * - `DOCKER_HOST` already set: only `scripts/docker-test-env.sh images` (idempotent);
 *   the daemon belongs to the caller and is left alone.
 * - otherwise: `docker-test-env.sh start /tmp/rsd.XXXXXX` (a private dockerd), then
 *   `images`; sets `process.env.DOCKER_HOST` here, in the main process, before any
 *   test worker is spawned, so workers (forks and threads) inherit it. It is also
 *   provided as `regsweepDockerHost` (see `dockerHost()` in ./docker.ts). Teardown
 *   runs `docker-test-env.sh stop`; if the process exits without teardown (Ctrl-C),
 *   an exit hook stops the daemon synchronously.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `DOCKER_HOST` chosen by docker-global-setup.ts ('' when it did not start docker). */
    regsweepDockerHost: string;
  }
}

const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), '../../scripts/docker-test-env.sh');

/** Runs the script; its progress (stderr) goes to ours; resolves with its stdout. */
function runScript(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const child = spawn('bash', [SCRIPT, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`docker-test-env.sh ${args.join(' ')}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolveRun(stdout);
      else reject(new Error(`docker-test-env.sh ${args.join(' ')} failed (${signal ?? `exit ${code}`})`));
    });
  });
}

/** `npm test` runs the Docker tests wherever it can start a private daemon, unless told not to. */
function dockerTestsWanted(): boolean {
  const flag = process.env.REGSWEEP_DOCKER_TESTS;
  if (flag !== undefined) return flag === '1';
  const hasDockerd = spawnSync('sh', ['-c', 'command -v dockerd'], { stdio: 'ignore' }).status === 0;
  return hasDockerd && process.getuid?.() === 0;
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  project.provide('regsweepDockerHost', process.env.DOCKER_HOST ?? '');
  if (!dockerTestsWanted()) return undefined;

  if (process.env.DOCKER_HOST) {
    await runScript(['images'], process.env, 10 * 60_000);
    return undefined;
  }

  // Short on purpose: unix socket paths are limited to ~107 bytes (not os.tmpdir()).
  const dir = mkdtempSync('/tmp/rsd.');
  let stopped = false;
  const stopSync = (): void => {
    if (stopped) return;
    stopped = true;
    spawnSync('bash', [SCRIPT, 'stop', dir], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 90_000 });
  };
  process.once('exit', stopSync);

  try {
    const out = await runScript(['start', dir], process.env, 120_000);
    const host = /^DOCKER_HOST=(\S+)$/m.exec(out)?.[1];
    if (!host) throw new Error(`docker-test-env.sh start printed no DOCKER_HOST: ${JSON.stringify(out)}`);
    await runScript(['images'], { ...process.env, DOCKER_HOST: host }, 10 * 60_000);
    process.env.DOCKER_HOST = host;
    project.provide('regsweepDockerHost', host);
  } catch (err) {
    stopSync();
    process.removeListener('exit', stopSync);
    throw err;
  }

  return async () => {
    delete process.env.DOCKER_HOST;
    process.removeListener('exit', stopSync);
    if (stopped) return;
    stopped = true;
    await runScript(['stop', dir], process.env, 90_000);
  };
}
