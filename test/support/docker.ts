/**
 * Docker helpers for regsweep's end-to-end tests (dockerode).
 *
 * The daemon is NOT started here. A test run gets one of two ways:
 * - the caller (CI, a developer) exports `DOCKER_HOST`, typically after
 *   `scripts/docker-test-env.sh start /tmp/rsd.XXXX && ... images`;
 * - or vitest runs `test/support/docker-global-setup.ts` as a globalSetup with
 *   `REGSWEEP_DOCKER_TESTS=1`: it starts a private dockerd, imports the stand-in
 *   images, and sets `process.env.DOCKER_HOST` before the test workers are spawned
 *   (workers inherit it; it is also `provide`d as `regsweepDockerHost`, which
 *   `dockerHost()` falls back to through `inject`).
 *
 * Tests should be `describe.skipIf(!dockerAvailable())`.
 *
 * Images available on such a daemon (no image can be pulled):
 * - `registry:2` (`REGISTRY_IMAGE`): the Debian registry 2.8.2 binary as `/bin/registry`,
 *   the official `/entrypoint.sh` and `/etc/docker/registry/config.yml`, busybox `/bin/sh`,
 *   `VOLUME /var/lib/registry`.
 * - `regsweep-node:20` (`NODE_IMAGE`): host node + npm/npx, busybox, CA bundle.
 *
 * Registries run with `NetworkMode: 'host'` and `REGISTRY_HTTP_ADDR=127.0.0.1:<port>`,
 * so all traffic stays on loopback. Every container created here carries the label
 * `TEST_LABEL=1`, so `removeContainers({ label: TEST_LABEL })` sweeps them all.
 */
import Dockerode from 'dockerode';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `DOCKER_HOST` chosen by docker-global-setup.ts ('' when it did not start docker). */
    regsweepDockerHost: string;
  }
}

const REGISTRY_IMAGE = 'registry:2';
/** Label put on every container the helpers create. */
export const TEST_LABEL = 'regsweep.test';
/** Config path baked into the stand-in `registry:2` (same as the official 2.x image). */
export const REGISTRY_CONFIG = '/etc/docker/registry/config.yml';

// ---------------------------------------------------------------------------
// Daemon

/** `DOCKER_HOST` for the tests: the environment, else what the globalSetup provided. */
function dockerHost(): string | undefined {
  const fromEnv = process.env.DOCKER_HOST;
  if (fromEnv) return fromEnv;
  let provided: string | undefined;
  try {
    provided = inject('regsweepDockerHost') || undefined;
  } catch {
    provided = undefined; // not inside a vitest worker
  }
  // Child processes (the regsweep CLI under test) find the daemon the usual way.
  if (provided) process.env.DOCKER_HOST = provided;
  return provided;
}

/** True when a daemon was designated through `DOCKER_HOST` (env or globalSetup). */
export function dockerAvailable(): boolean {
  return dockerHost() !== undefined;
}

let client: { host: string; docker: Dockerode } | undefined;

/** A dockerode client bound to `DOCKER_HOST`. Throws when there is none. */
export function docker(): Dockerode {
  const host = dockerHost();
  if (!host) throw new Error('DOCKER_HOST is not set: no Docker daemon for these tests');
  if (client?.host !== host) {
    const d = host.startsWith('unix://') ? new Dockerode({ socketPath: host.slice('unix://'.length) }) : new Dockerode(); // docker-modem parses tcp://, ssh://, npipe:// from the env
    client = { host, docker: d };
  }
  return client.docker;
}

// ---------------------------------------------------------------------------
// Small utilities

/** Status code of a dockerode error (e.g. 404, 409), if any. */
function statusCodeOf(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'statusCode' in err) {
    const code = (err as { statusCode: unknown }).statusCode;
    return typeof code === 'number' ? code : undefined;
  }
  return undefined;
}

export { freePort } from '../../scripts/ports.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `url` until it answers `expectStatus` (default 200); throws after `timeoutMs`
 * with the last status or error. `abortIf` is checked between attempts (e.g. "the
 * container exited") and aborts the wait with its message.
 */
export async function waitForHttp(
  url: string,
  timeoutMs: number,
  opts: { expectStatus?: number; abortIf?: () => Promise<string | undefined> } = {},
): Promise<void> {
  const expectStatus = opts.expectStatus ?? 200;
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(Math.max(500, Math.min(5000, deadline - Date.now()))) });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status === expectStatus) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err instanceof Error ? `${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}` : String(err);
    }
    if (opts.abortIf) {
      const why = await opts.abortIf();
      if (why) throw new Error(`waitForHttp(${url}): ${why}; last: ${last}`);
    }
    if (Date.now() >= deadline) throw new Error(`waitForHttp(${url}): no ${expectStatus} within ${timeoutMs} ms; last: ${last}`);
    await sleep(200);
  }
}

/** Splits Docker's multiplexed (non-TTY) log/attach stream into stdout and stderr. */
function demuxDockerStream(buf: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let off = 0;
  while (off + 8 <= buf.length) {
    const kind = buf[off];
    const size = buf.readUInt32BE(off + 4);
    const chunk = buf.subarray(off + 8, off + 8 + size);
    (kind === 2 ? err : out).push(chunk);
    off += 8 + size;
  }
  if (off < buf.length && off === 0) out.push(buf); // not multiplexed (TTY)
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

/** Reads a whole stream (Node stream or async iterable) into a Buffer. */
export async function streamToBuffer(stream: NodeJS.ReadableStream | AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }
  return Buffer.concat(chunks);
}

/** stdout + stderr of a container so far. */
async function containerLogs(container: Dockerode.Container): Promise<{ stdout: string; stderr: string }> {
  const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
  return demuxDockerStream(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)));
}

// ---------------------------------------------------------------------------
// Containers

export interface RegistryContainerOptions {
  /** Container name (also what `VolumesFrom` refers to). */
  name: string;
  /** Default `registry:2`; a variant built FROM it for fault tests. */
  image?: string;
  /** Loopback port: the registry listens on 127.0.0.1:<port> in the host network. */
  port: number;
  /** Named volume mounted at /var/lib/registry (created on demand by Docker). */
  volume?: { name: string };
  /** A host directory mounted into the container (e.g. a storage root at /var/lib/registry). */
  bind?: { host: string; container: string };
  /** Extra `KEY=value` entries; later entries override the defaults. */
  env?: string[];
  /** Replaces the image's CMD (default: the config path). */
  cmd?: string[];
  /** Extra raw `Binds` entries (`src:dst[:opts]`). */
  binds?: string[];
  labels?: Record<string, string>;
  /** Its log driver and options (default: the engine's, json-file), e.g. a small `max-size` that rotates. */
  logConfig?: { Type: string; Config: Record<string, string> };
  /** Bound on the wait for `/v2/` to answer 200 (default 30 s). */
  readyTimeoutMs?: number;
}

/**
 * Creates and starts a `registry:2` container on the host network, listening on
 * 127.0.0.1:<port> with deletes enabled, and waits until `/v2/` answers 200. On
 * failure the container is removed and the error carries its logs.
 */
export async function runRegistryContainer(opts: RegistryContainerOptions): Promise<Dockerode.Container> {
  const binds: string[] = [];
  if (opts.volume) binds.push(`${opts.volume.name}:/var/lib/registry`);
  if (opts.bind) binds.push(`${opts.bind.host}:${opts.bind.container}`);
  binds.push(...(opts.binds ?? []));
  const env = mergeEnv([`REGISTRY_HTTP_ADDR=127.0.0.1:${opts.port}`, 'REGISTRY_STORAGE_DELETE_ENABLED=true'], opts.env ?? []);

  const d = docker();
  const container = await d.createContainer({
    name: opts.name,
    Image: opts.image ?? REGISTRY_IMAGE,
    ...(opts.cmd ? { Cmd: opts.cmd } : {}),
    Env: env,
    Labels: { [TEST_LABEL]: '1', ...opts.labels },
    HostConfig: { NetworkMode: 'host', Binds: binds, ...(opts.logConfig ? { LogConfig: opts.logConfig } : {}) },
  });
  try {
    await container.start();
    await waitForHttp(`http://127.0.0.1:${opts.port}/v2/`, opts.readyTimeoutMs ?? 30_000, {
      abortIf: async () => {
        const info = await container.inspect();
        return info.State.Running ? undefined : `container ${opts.name} is ${info.State.Status} (exit ${info.State.ExitCode})`;
      },
    });
    return container;
  } catch (err) {
    const logs = await containerLogs(container).catch(() => ({ stdout: '', stderr: '' }));
    await container.remove({ force: true, v: true }).catch(() => undefined);
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`registry container ${opts.name} did not come up: ${msg}\n--- logs ---\n${logs.stdout}${logs.stderr}`);
  }
}

/** `base` with `extra` applied: an `extra` KEY replaces the same KEY in `base`. */
function mergeEnv(base: string[], extra: string[]): string[] {
  const key = (e: string): string => e.split('=', 1)[0] ?? e;
  const overridden = new Set(extra.map(key));
  return [...base.filter((e) => !overridden.has(key(e))), ...extra];
}

export interface RunOnceOptions {
  image?: string;
  /** Cmd (passed to the image's entrypoint). */
  cmd: string[];
  entrypoint?: string[];
  name?: string;
  env?: string[];
  binds?: string[];
  /** Containers whose volumes to mount (`VolumesFrom`), e.g. a running registry. */
  volumesFrom?: string[];
  /** Default 'none' (loopback only); 'host' to reach registries on 127.0.0.1. */
  networkMode?: string;
  labels?: Record<string, string>;
  timeoutMs?: number;
}

export interface RunOnceResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a container to completion (like `docker run --rm`) and returns its exit code
 * and output. Default image: `registry:2`, so `cmd: ['garbage-collect', REGISTRY_CONFIG]`
 * with `volumesFrom: [registryName]` is a sibling GC.
 */
export async function runContainerOnce(opts: RunOnceOptions): Promise<RunOnceResult> {
  const d = docker();
  const container = await d.createContainer({
    ...(opts.name ? { name: opts.name } : {}),
    Image: opts.image ?? REGISTRY_IMAGE,
    Cmd: opts.cmd,
    ...(opts.entrypoint ? { Entrypoint: opts.entrypoint } : {}),
    Env: opts.env ?? [],
    Labels: { [TEST_LABEL]: '1', ...opts.labels },
    HostConfig: {
      NetworkMode: opts.networkMode ?? 'none',
      Binds: opts.binds ?? [],
      VolumesFrom: opts.volumesFrom ?? [],
    },
  });
  try {
    await container.start();
    // Default condition "not-running": returns at once if it already exited.
    const waited = container.wait() as Promise<{ StatusCode: number }>;
    const timeoutMs = opts.timeoutMs ?? 120_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`container ${opts.cmd.join(' ')} did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    const { StatusCode } = await Promise.race([waited, timeout]).finally(() => clearTimeout(timer));
    const logs = await containerLogs(container);
    return { exitCode: StatusCode, ...logs };
  } finally {
    await container.remove({ force: true, v: true }).catch(() => undefined);
  }
}

/** `docker exec` without TTY: exit code, stdout, stderr. */
export async function execInContainer(
  container: Dockerode.Container,
  cmd: string[],
  opts: { env?: string[]; user?: string } = {},
): Promise<RunOnceResult> {
  const exec = await container.exec({
    Cmd: cmd,
    AttachStdout: true,
    AttachStderr: true,
    ...(opts.env ? { Env: opts.env } : {}),
    ...(opts.user ? { User: opts.user } : {}),
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const raw = await streamToBuffer(stream);
  const { stdout, stderr } = demuxDockerStream(raw);
  let info = await exec.inspect();
  for (let i = 0; info.Running && i < 50; i++) {
    await sleep(100);
    info = await exec.inspect();
  }
  return { exitCode: info.ExitCode ?? -1, stdout, stderr };
}

/**
 * Removes containers (force, with their anonymous volumes), tolerating ones already
 * gone. Pass names/ids, or `{ label: 'k' | 'k=v' }` to remove every container (running
 * or not) carrying that label.
 */
export async function removeContainers(target: string | string[] | { label: string }): Promise<void> {
  const d = docker();
  let ids: string[];
  if (typeof target === 'object' && !Array.isArray(target)) {
    const list = await d.listContainers({ all: true, filters: { label: [target.label] } });
    ids = list.map((c) => c.Id);
  } else {
    ids = typeof target === 'string' ? [target] : target;
  }
  await Promise.all(
    ids.map(async (id) => {
      try {
        await d.getContainer(id).remove({ force: true, v: true });
      } catch (err) {
        const code = statusCodeOf(err);
        if (code !== 404 && code !== 409) throw err; // 409: removal already in progress
      }
    }),
  );
}

/** Removes a named volume, tolerating 404. Retries briefly while a container still releases it. */
export async function removeVolume(name: string): Promise<void> {
  const vol = docker().getVolume(name);
  for (let attempt = 0; ; attempt++) {
    try {
      await vol.remove({ force: true });
      return;
    } catch (err) {
      const code = statusCodeOf(err);
      if (code === 404) return;
      if (code === 409 && attempt < 20) {
        await sleep(250);
        continue;
      }
      throw err;
    }
  }
}

/** A unique, Docker-safe name for containers/volumes of one test. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
