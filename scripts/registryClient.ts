/**
 * Harness for the real Docker Registry binary (distribution 2.x, e.g.
 * Debian's `docker-registry` 2.8.2), used by the tests and by
 * scripts/fixtures.ts. It lives in scripts/ because the project's Docker
 * build compiles only src/ and scripts/.
 *
 * - `startRegistry` serves a filesystem root on a loopback port.
 * - `RegistryClient` speaks just enough of the v2 HTTP API to build scenarios
 *   and to check them; `pullWhole` is the "does this tag still pull?" oracle.
 * - `pushImage` / `pushIndex` / `blobBytes` build deterministic content from
 *   seed strings, so a scenario is the same on every run.
 *
 * Everything stays on loopback: the server binds 127.0.0.1 and the client
 * refuses any other host, including in upload `Location` headers.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants as fsConstants, openSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { freePort } from './ports.js';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { dump } from 'js-yaml';

// ---------------------------------------------------------------------------
// Media types and descriptors

export const MediaTypes = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  schema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  /** OCI 1.1 "empty" config (`{}`) used by artifacts that carry `artifactType`. */
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  octetStream: 'application/octet-stream',
} as const;

/** Every manifest media type a pull accepts (schema1 only so old data is served, not built). */
const MANIFEST_ACCEPT = [
  MediaTypes.dockerManifest,
  MediaTypes.dockerList,
  MediaTypes.ociManifest,
  MediaTypes.ociIndex,
  MediaTypes.schema1Signed,
].join(', ');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

/** `sha256:<hex>` of some bytes. */
export function digestOf(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

const DIGEST_RE = /^(sha256|sha384|sha512):[a-f0-9]{32,}$/;

function isDigest(ref: string): boolean {
  return DIGEST_RE.test(ref);
}

/** Hashes `data` with the algorithm named by `digest` and says whether it matches. */
function matchesDigest(data: Buffer, digest: string): boolean {
  const m = DIGEST_RE.exec(digest);
  if (!m?.[1]) return false;
  return `${m[1]}:${createHash(m[1]).update(data).digest('hex')}` === digest;
}

// ---------------------------------------------------------------------------
// Locating and running the binary

/**
 * The registry binary to test against: `$REGSWEEP_TEST_REGISTRY_BIN`, else
 * `docker-registry` (Debian) or `registry` (upstream) on PATH.
 */
export function registryBinary(): string | undefined {
  const fromEnv = process.env['REGSWEEP_TEST_REGISTRY_BIN'];
  if (fromEnv) return isExecutable(fromEnv) ? fromEnv : undefined;
  const dirs = (process.env['PATH'] ?? '').split(delimiter).filter(Boolean);
  for (const name of ['docker-registry', 'registry']) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      if (isExecutable(candidate)) return candidate;
    }
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface RunningRegistry {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Absolute storage root (`storage.filesystem.rootdirectory`). */
  root: string;
  configPath: string;
  /** SIGTERM, SIGKILL after 5 s, wait for exit, remove the config dir. Idempotent. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
/** Keep only the end of the server's output, for error messages. */
const OUTPUT_TAIL_BYTES = 16 * 1024;

/**
 * Serves `root` with the real registry on a free loopback port and resolves
 * once `GET /v2/` answers 200. Rejects with the server's output if it exits
 * early or is not ready within 15 s.
 */
export async function startRegistry(root: string, opts: { bin?: string } & RegistryConfigOptions = {}): Promise<RunningRegistry> {
  const bin = opts.bin ?? registryBinary();
  if (!bin) {
    throw new Error('no registry binary: set REGSWEEP_TEST_REGISTRY_BIN or put docker-registry/registry on PATH');
  }
  const absRoot = resolve(root);
  const configDir = await mkdtemp(join(tmpdir(), 'regsweep-registry-config-'));
  const configPath = join(configDir, 'config.yml');
  try {
    // freePort() closes its probe socket before the registry binds, so another
    // process can grab the port in between: retry on "address already in use".
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      await writeFile(configPath, registryConfig(absRoot, port, opts));
      try {
        return await launch(bin, configPath, configDir, absRoot, port, opts.log?.file);
      } catch (err) {
        if (attempt < 3 && /address already in use/i.test(String(err))) continue;
        throw err;
      }
    }
  } catch (err) {
    await rm(configDir, { recursive: true, force: true });
    throw err;
  }
}

interface RegistryConfigOptions {
  /** `storage.cache.blobdescriptor` (default `inmemory`). */
  blobdescriptor?: string;
  /** A `redis` section, e.g. `{ addr: '127.0.0.1:6379', db: 1 }` (2.x) or `{ addrs: [...] }` (3.x). */
  redis?: Record<string, unknown>;
  /** `http.secret` (default random): the same one lets an upload started before a restart go on after it. */
  secret?: string;
  /** Log every request (info level, access log on) in this formatter, the server's output appended to `file`. */
  log?: { file: string; formatter: 'text' | 'json' };
  /** The storage driver's section and any beside it, e.g. `{ s3: { bucket, … }, redirect: { disable: true } }` (default `{ filesystem: { rootdirectory: root } }`). */
  driver?: Record<string, unknown>;
}

function registryConfig(root: string, port: number, opts: RegistryConfigOptions = {}): string {
  return dump({
    version: '0.1',
    // warn keeps failures readable; access logs would only be noise.
    log: opts.log ? { level: 'info', formatter: opts.log.formatter } : { level: 'warn', accesslog: { disabled: true } },
    storage: {
      ...(opts.driver ?? { filesystem: { rootdirectory: root } }),
      delete: { enabled: true },
      // As in the official image: this cache is what hides swept blobs (see DOMAIN.md).
      cache: { blobdescriptor: opts.blobdescriptor ?? 'inmemory' },
    },
    ...(opts.redis ? { redis: opts.redis } : {}),
    // An explicit secret silences the "generated random secret" warning.
    http: { addr: `127.0.0.1:${port}`, secret: opts.secret ?? randomBytes(16).toString('hex') },
  });
}

/**
 * The caller's environment minus `REGISTRY_*`, which would override the config
 * file, and `AWS_CA_BUNDLE` (2.8.2's s3 driver panics on this machine's).
 */
function registryEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.toUpperCase().startsWith('REGISTRY_') && key !== 'AWS_CA_BUNDLE'),
  );
}

async function launch(
  bin: string,
  configPath: string,
  configDir: string,
  root: string,
  port: number,
  logFile?: string,
): Promise<RunningRegistry> {
  const url = `http://127.0.0.1:${port}`;
  const log = logFile === undefined ? 'pipe' : openSync(logFile, 'a');
  const child = spawn(bin, ['serve', configPath], {
    env: registryEnv(),
    stdio: ['ignore', log, log],
  });
  if (typeof log === 'number') closeSync(log);

  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  // What it printed, for an error: the tail of its log file when it writes one.
  const printed = async (): Promise<string> => (logFile === undefined ? output : (await readFile(logFile, 'utf8').catch(() => '')).slice(-OUTPUT_TAIL_BYTES));

  // Settles once, on 'close' (stdio drained, so `output` is complete) or on a
  // spawn 'error' (ENOENT, EACCES), which may come without a 'close'.
  let exitReason: string | undefined;
  const exited = new Promise<void>((resolveExit) => {
    child.once('close', (code, signal) => {
      exitReason ??= signal ? `killed by ${signal}` : `exited with code ${code}`;
      resolveExit();
    });
    child.once('error', (err) => {
      exitReason ??= `failed to start: ${err.message}`;
      resolveExit();
    });
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exitReason === undefined) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(killer);
      }
      await rm(configDir, { recursive: true, force: true });
    })();
    return stopping;
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exitReason !== undefined) {
      await exited;
      throw new Error(`${bin} serve ${configPath} ${exitReason} before it was ready:\n${await printed()}`);
    }
    if (await answers200(`${url}/v2/`)) break;
    if (Date.now() > deadline) {
      // Do not remove configDir here: startRegistry does, after this throws.
      child.kill('SIGKILL');
      await exited;
      throw new Error(`${bin} serve ${configPath} not ready on ${url} after ${READY_TIMEOUT_MS} ms:\n${await printed()}`);
    }
    await sleep(50);
  }
  return { url, port, root, configPath, stop };
}

async function answers200(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------
// HTTP client

export interface ManifestResponse {
  status: number;
  body: Buffer;
  /** Content-Type without parameters. */
  mediaType: string | null;
  /** `Docker-Content-Digest` header. */
  digest: string | null;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

function assertLoopback(url: URL): void {
  if (url.protocol !== 'http:' || !LOOPBACK_HOSTS.has(url.hostname)) {
    throw new Error(`refusing non-loopback registry URL ${url.href}`);
  }
}

async function httpError(what: string, res: Response): Promise<Error> {
  let text = '';
  try {
    text = (await res.text()).slice(0, 2000);
  } catch {
    // The body itself may be what is broken; the status still says enough.
  }
  return new Error(`${what}: HTTP ${res.status} ${res.statusText}${text ? `: ${text.trim()}` : ''}`);
}

/** The `rel="next"` target of a `Link` header (registry pagination), if any. */
function nextLink(res: Response): string | undefined {
  const link = res.headers.get('link');
  return link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link)?.[1] : undefined;
}

export type BlobMethod = 'GET' | 'HEAD';

/** Minimal Docker Registry v2 client for tests. Repository names are used verbatim in paths. */
export class RegistryClient {
  readonly baseUrl: string;

  constructor(baseUrl: string) {
    const url = new URL(baseUrl);
    assertLoopback(url);
    this.baseUrl = url.origin;
  }

  /** Resolves a path or a (possibly relative) `Location` against the registry, loopback only. */
  private url(pathOrLocation: string): URL {
    const url = new URL(pathOrLocation, this.baseUrl);
    assertLoopback(url);
    if (url.origin !== this.baseUrl) throw new Error(`registry redirected to another origin: ${url.href}`);
    return url;
  }

  private request(method: string, path: string | URL, init: RequestInit = {}): Promise<Response> {
    const url = typeof path === 'string' ? this.url(path) : path;
    return fetch(url, { ...init, method, redirect: 'error' });
  }

  /** Monolithic blob upload (POST, then PUT with `?digest=`). */
  async pushBlob(repo: string, data: Buffer): Promise<Descriptor> {
    const digest = digestOf(data);
    const start = await this.request('POST', `/v2/${repo}/blobs/uploads/`);
    if (start.status !== 202) throw await httpError(`start upload to ${repo}`, start);
    await start.body?.cancel();
    const location = start.headers.get('location');
    if (!location) throw new Error(`start upload to ${repo}: 202 without Location`);

    // Append rather than use searchParams.set(): that would re-encode the
    // registry's opaque `_state` token.
    const put = this.url(location);
    put.search = `${put.search ? `${put.search}&` : '?'}digest=${encodeURIComponent(digest)}`;
    const res = await this.request('PUT', put, {
      headers: { 'content-type': MediaTypes.octetStream },
      body: new Uint8Array(data),
    });
    if (res.status !== 201) throw await httpError(`upload ${digest} to ${repo}`, res);
    await res.body?.cancel();
    const echoed = res.headers.get('docker-content-digest');
    if (echoed && echoed !== digest) {
      throw new Error(`upload to ${repo}: sent ${digest}, registry says ${echoed}`);
    }
    return { mediaType: MediaTypes.octetStream, digest, size: data.length };
  }

  /** PUT a manifest by tag or digest; returns the descriptor of the exact bytes sent. */
  async pushManifest(repo: string, reference: string, body: Buffer | string, mediaType: string): Promise<Descriptor> {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const digest = digestOf(bytes);
    const res = await this.request('PUT', `/v2/${repo}/manifests/${reference}`, {
      headers: { 'content-type': mediaType },
      body: new Uint8Array(bytes),
    });
    if (res.status !== 201) throw await httpError(`PUT manifest ${repo}:${reference} (${mediaType})`, res);
    await res.body?.cancel();
    const echoed = res.headers.get('docker-content-digest');
    if (echoed !== digest) {
      throw new Error(`PUT manifest ${repo}:${reference}: sent ${digest}, registry says ${echoed ?? '(no digest)'}`);
    }
    return { mediaType, digest, size: bytes.length };
  }

  /** GET a manifest accepting every manifest media type; never throws on HTTP status. */
  async getManifest(repo: string, ref: string): Promise<ManifestResponse> {
    const res = await this.request('GET', `/v2/${repo}/manifests/${ref}`, {
      headers: { accept: MANIFEST_ACCEPT },
    });
    const body = Buffer.from(await res.arrayBuffer());
    const contentType = res.headers.get('content-type');
    return {
      status: res.status,
      body,
      mediaType: contentType ? (contentType.split(';')[0] ?? '').trim() : null,
      digest: res.headers.get('docker-content-digest'),
    };
  }

  /** DELETE a manifest by digest; throws unless the registry answers 202. */
  async deleteManifest(repo: string, digest: string): Promise<void> {
    const res = await this.request('DELETE', `/v2/${repo}/manifests/${digest}`);
    if (res.status !== 202) throw await httpError(`DELETE manifest ${repo}@${digest}`, res);
    await res.body?.cancel();
  }

  /** Tags of a repository, in the registry's order; `[]` if the repository is unknown or has none. */
  async tags(repo: string): Promise<string[]> {
    const tags: string[] = [];
    for (let path: string | undefined = `/v2/${repo}/tags/list`; path; ) {
      const res = await this.request('GET', path);
      if (res.status === 404) {
        await res.body?.cancel();
        return tags;
      }
      if (res.status !== 200) throw await httpError(`list tags of ${repo}`, res);
      const json = (await res.json()) as { tags?: string[] | null };
      tags.push(...(json.tags ?? []));
      path = nextLink(res);
    }
    return tags;
  }

  /** All repository names, following pagination. */
  async catalog(): Promise<string[]> {
    const repos: string[] = [];
    for (let path: string | undefined = '/v2/_catalog?n=1000'; path; ) {
      const res = await this.request('GET', path);
      if (res.status !== 200) throw await httpError('catalog', res);
      const json = (await res.json()) as { repositories?: string[] | null };
      repos.push(...(json.repositories ?? []));
      path = nextLink(res);
    }
    return repos;
  }

  /**
   * HTTP status of a blob. With GET the body is read to the end; if the
   * registry answers 2xx but the body breaks off or does not hash to `digest`
   * (a stale cache serving a swept blob), this throws instead of returning.
   */
  async blobStatus(repo: string, digest: string, method: BlobMethod): Promise<number> {
    const res = await this.request(method, `/v2/${repo}/blobs/${digest}`);
    if (method === 'HEAD' || !res.ok) {
      await res.body?.cancel();
      return res.status;
    }
    const body = await readBody(res);
    if (body instanceof Error) throw new Error(`GET blob ${repo}@${digest}: ${res.status} but ${body.message}`);
    if (!matchesDigest(body, digest)) {
      throw new Error(`GET blob ${repo}@${digest}: ${res.status} but the body (${body.length} bytes) has another digest`);
    }
    return res.status;
  }

  /**
   * Pulls `ref` (tag or digest) the way a client would and verifies every
   * byte: the manifest hashes to the requested digest and to
   * `Docker-Content-Digest`; an index/list pulls each child by digest; an image
   * GETs its config and every layer (not HEAD: a stale cache answers HEAD for
   * swept blobs) and checks digest and size. Throws naming what failed.
   * Returns every digest fetched, each once, in fetch order.
   */
  async pullWhole(repo: string, ref: string): Promise<string[]> {
    const fetched = new Set<string>();
    const top = isDigest(ref) ? `${repo}@${ref}` : `${repo}:${ref}`;
    await this.pullManifest(repo, ref, undefined, fetched, `pullWhole ${top}`);
    return [...fetched];
  }

  private async pullManifest(
    repo: string,
    ref: string,
    expected: Descriptor | undefined,
    fetched: Set<string>,
    trail: string,
  ): Promise<void> {
    const res = await this.getManifest(repo, ref);
    const fail = (what: string): Error => new Error(`${trail}: manifest ${ref}: ${what}`);
    if (res.status !== 200) throw fail(`GET returned ${res.status}: ${res.body.toString('utf8').slice(0, 500).trim()}`);
    const digest = digestOf(res.body);
    if (isDigest(ref) && !matchesDigest(res.body, ref)) throw fail(`body hashes to ${digest}`);
    if (res.digest !== digest) throw fail(`Docker-Content-Digest ${res.digest ?? '(none)'} but body hashes to ${digest}`);
    if (expected && expected.size !== res.body.length) {
      throw fail(`descriptor says ${expected.size} bytes, got ${res.body.length}`);
    }
    fetched.add(digest);

    let manifest: ManifestJson;
    try {
      manifest = JSON.parse(res.body.toString('utf8')) as ManifestJson;
    } catch (err) {
      throw fail(`not JSON (${(err as Error).message})`);
    }

    const kind = manifestKind(manifest, res.mediaType);
    if (kind === 'index') {
      for (const child of manifest.manifests ?? []) {
        checkDescriptor(child, () => fail('malformed child descriptor'));
        if (fetched.has(child.digest)) continue;
        await this.pullManifest(repo, child.digest, child, fetched, `${trail}: child ${child.digest}`);
      }
    } else if (kind === 'image') {
      const blobs = [manifest.config, ...(manifest.layers ?? [])];
      for (const blob of blobs) {
        checkDescriptor(blob, () => fail('malformed config or layer descriptor'));
        // Foreign (non-distributable) layers live elsewhere; the registry never had them.
        if (blob.urls?.length) continue;
        if (fetched.has(blob.digest)) continue;
        await this.pullBlob(repo, blob, `${trail}: blob ${blob.digest}`);
        fetched.add(blob.digest);
      }
    } else {
      throw fail(`cannot verify a manifest of kind ${kind} (${res.mediaType ?? 'no content type'})`);
    }
  }

  private async pullBlob(repo: string, desc: Descriptor, trail: string): Promise<void> {
    const res = await this.request('GET', `/v2/${repo}/blobs/${desc.digest}`);
    if (res.status !== 200) throw await httpError(`${trail}: GET`, res);
    const body = await readBody(res);
    if (body instanceof Error) throw new Error(`${trail}: body broke off: ${body.message}`);
    if (body.length !== desc.size) throw new Error(`${trail}: descriptor says ${desc.size} bytes, got ${body.length}`);
    if (!matchesDigest(body, desc.digest)) throw new Error(`${trail}: body hashes to ${digestOf(body)}`);
  }
}

/** Reads a whole body; a connection cut mid-body comes back as an Error value. */
async function readBody(res: Response): Promise<Buffer | Error> {
  try {
    return Buffer.from(await res.arrayBuffer());
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    return new Error(`${(err as Error).message}${cause instanceof Error ? ` (${cause.message})` : ''}`);
  }
}

interface DescriptorJson extends Descriptor {
  urls?: string[];
  platform?: Platform;
}

interface ManifestJson {
  schemaVersion?: number;
  mediaType?: string;
  manifests?: DescriptorJson[];
  config?: DescriptorJson;
  layers?: DescriptorJson[];
}

function checkDescriptor(d: unknown, fail: () => Error): asserts d is DescriptorJson {
  const o = d as Partial<DescriptorJson> | null | undefined;
  if (!o || typeof o.digest !== 'string' || !isDigest(o.digest) || typeof o.size !== 'number') throw fail();
}

/** By `mediaType` field, else Content-Type, else shape (OCI allows omitting `mediaType`). */
function manifestKind(m: ManifestJson, contentType: string | null): 'index' | 'image' | 'schema1' | 'unknown' {
  if (m.schemaVersion === 1) return 'schema1';
  for (const type of [m.mediaType, contentType]) {
    if (type === MediaTypes.dockerList || type === MediaTypes.ociIndex) return 'index';
    if (type === MediaTypes.dockerManifest || type === MediaTypes.ociManifest) return 'image';
  }
  if (Array.isArray(m.manifests)) return 'index';
  if (m.config || Array.isArray(m.layers)) return 'image';
  return 'unknown';
}

// ---------------------------------------------------------------------------
// Deterministic scenario builders

/** Size of a seed's blob when none is given: 100 … 2999 bytes, from the seed's hash. */
export function blobSize(seed: string): number {
  return 100 + (createHash('sha256').update(`size:${seed}`).digest().readUInt32BE(0) % 2900);
}

/**
 * Deterministic blob content for `seed`: a readable header (handy when
 * looking at `data` files) followed by a SHA-256 keystream.
 */
export function blobBytes(seed: string, size: number = blobSize(seed)): Buffer {
  const chunks: Buffer[] = [Buffer.from(`regsweep test blob ${seed}\n`)];
  let length = chunks[0]!.length;
  for (let i = 0; length < size; i++) {
    const chunk = createHash('sha256').update(`${seed}\0${i}`).digest();
    chunks.push(chunk);
    length += chunk.length;
  }
  return Buffer.concat(chunks).subarray(0, size);
}

type ManifestFormat = 'docker' | 'oci';

export interface PushImageOptions {
  /** Push by this tag; otherwise by digest (untagged). */
  tag?: string;
  seed: string;
  /** Number of seed-derived layers (default 2, or 1 for a referrer), or their exact bytes. */
  layers?: number | Buffer[];
  /** Default 'docker', or 'oci' when `subject` or `artifactType` is given. */
  format?: ManifestFormat;
  /** Makes this an OCI referrer (signature, SBOM…) of `subject`. */
  subject?: Descriptor;
  /** OCI artifact type; the config becomes the OCI empty descriptor (`{}`). */
  artifactType?: string;
  /** Layers placed before the image's own, e.g. a base shared with other images. */
  sharedLayers?: Buffer[];
  /** Written to the config (default linux/amd64). */
  platform?: Platform;
  annotations?: Record<string, string>;
  /** OCI only: leave `mediaType` out of the manifest, which OCI allows. */
  omitMediaType?: boolean;
}

export interface PushedImage {
  descriptor: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  /** The exact manifest bytes pushed. */
  manifest: Buffer;
}

const DEFAULT_PLATFORMS: Platform[] = [
  { architecture: 'amd64', os: 'linux' },
  { architecture: 'arm64', os: 'linux' },
  { architecture: 'arm', os: 'linux', variant: 'v7' },
  { architecture: 'ppc64le', os: 'linux' },
  { architecture: 's390x', os: 'linux' },
  { architecture: '386', os: 'linux' },
];

/** Only the three core fields, in canonical order, whatever else `d` carries. */
function plain(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/** Pushes config and layers, then the manifest (by tag if given, else by digest). */
export async function pushImage(client: RegistryClient, repo: string, opts: PushImageOptions): Promise<PushedImage> {
  const isArtifact = opts.subject !== undefined || opts.artifactType !== undefined;
  const format = opts.format ?? (isArtifact ? 'oci' : 'docker');
  if (format === 'docker' && isArtifact) throw new Error('subject/artifactType need format "oci"');
  if (format === 'docker' && opts.omitMediaType) throw new Error('Docker manifests always carry mediaType');
  const oci = format === 'oci';

  const own = Array.isArray(opts.layers) ? opts.layers : seedLayers(opts.seed, opts.layers ?? (isArtifact ? 1 : 2));
  const layerType = oci ? MediaTypes.ociLayer : MediaTypes.dockerLayer;
  const layers: Descriptor[] = [];
  for (const data of [...(opts.sharedLayers ?? []), ...own]) {
    layers.push({ ...(await client.pushBlob(repo, data)), mediaType: layerType });
  }

  let configBytes: Buffer;
  let configType: string;
  if (opts.artifactType !== undefined) {
    configBytes = Buffer.from('{}');
    configType = MediaTypes.ociEmpty;
  } else {
    const platform = opts.platform ?? DEFAULT_PLATFORMS[0]!;
    configBytes = Buffer.from(
      JSON.stringify({
        ...platform,
        config: { Labels: { 'org.regsweep.test.seed': opts.seed } },
        // Real diff_ids are digests of the uncompressed layers; the registry never checks.
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      }),
    );
    configType = oci ? MediaTypes.ociConfig : MediaTypes.dockerConfig;
  }
  const config: Descriptor = { ...(await client.pushBlob(repo, configBytes)), mediaType: configType };

  const mediaType = oci ? MediaTypes.ociManifest : MediaTypes.dockerManifest;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      ...(opts.omitMediaType ? {} : { mediaType }),
      ...(opts.artifactType !== undefined ? { artifactType: opts.artifactType } : {}),
      config,
      layers,
      ...(opts.subject ? { subject: plain(opts.subject) } : {}),
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    }),
  );
  const descriptor = await client.pushManifest(repo, opts.tag ?? digestOf(manifest), manifest, mediaType);
  return { descriptor, config, layers, manifest };
}

/** `count` seed-derived layers with sizes distinct from each other. */
function seedLayers(seed: string, count: number): Buffer[] {
  const sizes = new Set<number>();
  const layers: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const layerSeed = `${seed}/layer/${i}`;
    let size = blobSize(layerSeed);
    while (sizes.has(size)) size++;
    sizes.add(size);
    layers.push(blobBytes(layerSeed, size));
  }
  return layers;
}

export interface PushIndexOptions {
  /** Push by this tag; otherwise by digest. */
  tag?: string;
  /** Must already be in the repository (push them by digest first). */
  children: Array<Descriptor & { platform?: Platform }>;
  format: ManifestFormat;
  /** OCI only: makes the index a referrer of `subject`. */
  subject?: Descriptor;
  /** OCI only. */
  artifactType?: string;
  annotations?: Record<string, string>;
  /** OCI only: leave `mediaType` out of the index, which OCI allows. */
  omitMediaType?: boolean;
}

/**
 * Pushes a Docker manifest list or an OCI index of `children`. Each child gets
 * its own `platform` or the next of linux/amd64, linux/arm64, linux/arm/v7, …
 */
export async function pushIndex(client: RegistryClient, repo: string, opts: PushIndexOptions): Promise<Descriptor> {
  const oci = opts.format === 'oci';
  if (!oci && (opts.subject || opts.artifactType !== undefined || opts.omitMediaType)) {
    throw new Error('subject/artifactType/omitMediaType need format "oci"');
  }
  const mediaType = oci ? MediaTypes.ociIndex : MediaTypes.dockerList;
  const manifests = opts.children.map((child, i) => ({
    ...plain(child),
    platform: child.platform ?? DEFAULT_PLATFORMS[i % DEFAULT_PLATFORMS.length]!,
  }));
  const body = JSON.stringify({
    schemaVersion: 2,
    ...(opts.omitMediaType ? {} : { mediaType }),
    ...(opts.artifactType !== undefined ? { artifactType: opts.artifactType } : {}),
    manifests,
    ...(opts.subject ? { subject: plain(opts.subject) } : {}),
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  });
  return client.pushManifest(repo, opts.tag ?? digestOf(body), body, mediaType);
}
