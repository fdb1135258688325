/**
 * The real registry's own log of real pulls, for the `--access-log` tests:
 * the binary (2.8.2, or 3.0.0) serves a fresh root logging at info in the
 * `text` or `json` formatter, everything it prints captured to a file, while
 * two images are pushed and pulled through the HTTP API by tag and by digest
 * (GET and HEAD), besides requests that are no pull (a 404 manifest, a blob,
 * the catalog). Then it is stopped: its root and log stay for the test.
 */
import path from 'node:path';
import { expect } from 'vitest';
import { RegistryClient, pushImage, startRegistry } from '../../scripts/registryClient.js';
import type { Pull } from '../../src/plan/accessLog.js';

/** A pull as the test requested it: `repo:tag` or `repo@digest`. */
export type PullKey = string;
export const keyOf = (p: Pick<Pull, 'repository' | 'tag' | 'digest'>): PullKey => (p.tag !== undefined ? `${p.repository}:${p.tag}` : `${p.repository}@${p.digest}`);

export interface RealLog {
  /** The captured stdout and stderr of the registry. */
  file: string;
  /** The storage root it served. */
  root: string;
  /** The digests of the images pushed, by `repo:tag`. */
  digests: Map<string, string>;
  /** Tags pushed and never pulled, by name or digest. */
  unpulled: PullKey[];
  /** The pulls the test made (answered 200), with the method of each. */
  requested: Map<PullKey, 'GET' | 'HEAD'>;
  /** When the first request was sent and the last answered (ms). */
  from: number;
  to: number;
}

async function manifestStatus(url: string, method: 'GET' | 'HEAD', repo: string, ref: string): Promise<number> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { method, headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  await res.arrayBuffer();
  return res.status;
}

/** Pushes two images, then pulls some by tag and some by digest, besides requests that are not pulls; returns the pulls made. */
async function exercise(url: string): Promise<Omit<RealLog, 'file' | 'root'>> {
  const client = new RegistryClient(url);
  const web = await pushImage(client, 'team/web', { tag: 'v1', seed: 'web-1' });
  const api = await pushImage(client, 'team/api', { tag: 'v2', seed: 'api-2' });
  const unpulled = await pushImage(client, 'team/api', { tag: 'unpulled', seed: 'api-3' });
  const from = Date.now();
  const requested = new Map<PullKey, 'GET' | 'HEAD'>();
  const pull = async (method: 'GET' | 'HEAD', repository: string, ref: string, tag: boolean): Promise<void> => {
    expect(await manifestStatus(url, method, repository, ref)).toBe(200);
    requested.set(keyOf(tag ? { repository, tag: ref } : { repository, digest: ref as Pull['digest'] }), method);
  };
  await pull('GET', 'team/web', 'v1', true);
  await pull('HEAD', 'team/api', api.descriptor.digest, false);
  await pull('GET', 'team/web', web.descriptor.digest, false);
  await pull('HEAD', 'team/api', 'v2', true);
  // Not pulls: a manifest that is not there, a blob, the catalog.
  expect(await manifestStatus(url, 'GET', 'team/web', 'missing')).toBe(404);
  expect(await client.blobStatus('team/web', web.config.digest, 'GET')).toBe(200);
  await client.catalog();
  const digests = new Map([
    ['team/web:v1', web.descriptor.digest],
    ['team/api:v2', api.descriptor.digest],
    ['team/api:unpulled', unpulled.descriptor.digest],
  ]);
  return { requested, from, to: Date.now(), digests, unpulled: ['team/api:unpulled', `team/api@${unpulled.descriptor.digest}`] };
}

/** The registry `bin` run in `formatter` on a fresh root in `dir`, exercised and stopped: its log and what was pulled. */
export async function loggedPulls(bin: string, formatter: 'text' | 'json', dir: string): Promise<RealLog> {
  const file = path.join(dir, `registry-${formatter}.log`);
  const root = path.join(dir, `root-${formatter}`);
  const registry = await startRegistry(root, { bin, log: { file, formatter } });
  try {
    return { file, root, ...(await exercise(registry.url)) };
  } finally {
    await registry.stop();
  }
}
