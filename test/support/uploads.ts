/** Unfinished blob uploads, as a client leaves them: for the --stale-uploads tests. */
import { expect } from 'vitest';
import { RegistryClient, digestOf } from '../../scripts/registryClient.js';

/** Starts an upload to `repo` and sends `data` as its first chunk; returns the upload's URL and id. */
export async function startUpload(url: string, repo: string, data: Buffer): Promise<{ location: string; id: string }> {
  const start = await fetch(new URL(`/v2/${repo}/blobs/uploads/`, url), { method: 'POST' });
  expect(start.status).toBe(202);
  const location = new URL(start.headers.get('location') as string, url).toString();
  const patch = await fetch(location, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(data) });
  expect(patch.status).toBe(202);
  return { location: new URL(patch.headers.get('location') as string, url).toString(), id: patch.headers.get('docker-upload-uuid') as string };
}

/**
 * After the run, with the registry serving again at `url` (the same upload
 * URLs on another port): the stale upload is unknown to it, the recent one
 * finishes as `fresh`, and `repo:tag` still pulls whole.
 */
export async function expectUploadsAfter(url: string, uploads: { stale: string; recent: string; fresh: Buffer }, repo: string, tag: string): Promise<void> {
  const here = (location: string): URL => Object.assign(new URL(location), { host: new URL(url).host });
  expect((await fetch(here(uploads.stale), { method: 'GET' })).status).toBe(404);
  const put = here(uploads.recent);
  put.search = `${put.search ? `${put.search}&` : '?'}digest=${encodeURIComponent(digestOf(uploads.fresh))}`;
  expect((await fetch(put, { method: 'PUT' })).status).toBe(201);
  const client = new RegistryClient(url);
  expect(await client.blobStatus(repo, digestOf(uploads.fresh), 'HEAD')).toBe(200);
  await client.pullWhole(repo, tag);
}
