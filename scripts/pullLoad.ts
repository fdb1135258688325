/**
 * Clients pulling images whole in a loop, as users do while a run purges
 * their registry: each pull GETs the manifest, then its config and every
 * layer, and checks each blob's digest. Every HTTP request is counted; a
 * failed one (connection refused or reset, a status other than 200, a wrong
 * digest, no answer within the timeout) is counted with its reason, and the
 * client carries on with the next pull. Loopback only.
 */
import { createHash } from 'node:crypto';
import { MediaTypes } from './registryClient.js';

export interface PullTarget {
  repository: string;
  reference: string;
}

export interface LoadResult {
  clients: number;
  requests: number;
  failed: number;
  /** The slowest request, failed or not, in ms. */
  slowestMs: number;
  /**
   * How long requests failed, as the clients saw it: from the end of the first
   * failed request to the end of the last (0 when none failed). A request held
   * by a paused registry ends only when it fails, so its wait is not counted.
   */
  failingMs: number;
  /** Failures by reason (`ECONNREFUSED`, `ECONNRESET`, `HTTP 503`, `timeout`…). */
  reasons: Record<string, number>;
}

export interface PullLoad {
  /** Stops the clients after their current request and sums up what they saw. */
  stop(): Promise<LoadResult>;
}

interface Tally {
  requests: number;
  failed: number;
  slowestMs: number;
  firstFailEnd?: number;
  lastFailAt?: number;
  reasons: Record<string, number>;
}

const ACCEPT = [MediaTypes.dockerManifest, MediaTypes.ociManifest, MediaTypes.dockerList, MediaTypes.ociIndex].join(', ');
/** After a failed request a client waits this long before its next pull, as a retrying client would. */
const AFTER_FAILURE_MS = 20;

function reasonOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause;
  if (cause?.code) return cause.code;
  if ((error as Error).name === 'TimeoutError') return 'timeout';
  return (error as Error).message.split('\n')[0] ?? 'error';
}

async function timedGet(tally: Tally, url: string, accept: string | undefined, timeoutMs: number): Promise<Buffer | undefined> {
  const start = Date.now();
  let failure: string | undefined;
  let body: Buffer | undefined;
  try {
    const res = await fetch(url, { headers: accept ? { accept } : {}, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
    body = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200) failure = `HTTP ${res.status}`;
  } catch (error) {
    failure = reasonOf(error);
  }
  const end = Date.now();
  tally.requests += 1;
  tally.slowestMs = Math.max(tally.slowestMs, end - start);
  if (failure === undefined) return body;
  tally.failed += 1;
  tally.reasons[failure] = (tally.reasons[failure] ?? 0) + 1;
  tally.firstFailEnd = Math.min(tally.firstFailEnd ?? end, end);
  tally.lastFailAt = Math.max(tally.lastFailAt ?? end, end);
  return undefined;
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

function wrongDigest(tally: Tally): false {
  tally.failed += 1;
  tally.reasons['wrong digest'] = (tally.reasons['wrong digest'] ?? 0) + 1;
  return false;
}

interface ManifestJson {
  config?: { digest: string };
  layers?: Array<{ digest: string }>;
  manifests?: Array<{ digest: string }>;
}

/** One pull, request by request (a list's every child too); false when any request failed. */
async function pullOnce(tally: Tally, base: string, target: PullTarget, timeoutMs: number): Promise<boolean> {
  const manifest = await timedGet(tally, `${base}/v2/${target.repository}/manifests/${target.reference}`, ACCEPT, timeoutMs);
  if (!manifest) return false;
  if (target.reference.startsWith('sha256:') && sha256(manifest) !== target.reference) return wrongDigest(tally);
  const parsed = JSON.parse(manifest.toString('utf8')) as ManifestJson;
  for (const child of parsed.manifests ?? []) {
    if (!(await pullOnce(tally, base, { repository: target.repository, reference: child.digest }, timeoutMs))) return false;
  }
  for (const { digest } of [...(parsed.config ? [parsed.config] : []), ...(parsed.layers ?? [])]) {
    const blob = await timedGet(tally, `${base}/v2/${target.repository}/blobs/${digest}`, undefined, timeoutMs);
    if (!blob) return false;
    if (sha256(blob) !== digest) return wrongDigest(tally);
  }
  return true;
}

/** Starts `clients` clients pulling `targets` in turn from the registry at `baseUrl` (loopback). */
export function startPullLoad(baseUrl: string, targets: readonly PullTarget[], options: { clients?: number; timeoutMs?: number } = {}): PullLoad {
  const base = new URL(baseUrl);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(base.hostname)) throw new Error(`not a loopback registry: ${baseUrl}`);
  if (targets.length === 0) throw new Error('nothing to pull');
  const clients = options.clients ?? 4;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const tally: Tally = { requests: 0, failed: 0, slowestMs: 0, reasons: {} };
  let stopped = false;
  const loops = Array.from({ length: clients }, async (_, client) => {
    for (let i = client; !stopped; i += 1) {
      const ok = await pullOnce(tally, base.origin, targets[i % targets.length] as PullTarget, timeoutMs);
      if (!ok) await new Promise((r) => setTimeout(r, AFTER_FAILURE_MS));
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
      const failingMs = tally.firstFailEnd === undefined ? 0 : (tally.lastFailAt as number) - tally.firstFailEnd;
      return { clients, requests: tally.requests, failed: tally.failed, slowestMs: tally.slowestMs, failingMs, reasons: tally.reasons };
    },
  };
}
