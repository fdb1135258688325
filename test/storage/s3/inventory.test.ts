/**
 * The bucket inventory against the filesystem scan: one layout-exact tree,
 * written to a directory and uploaded key by key into a real radosgw bucket,
 * must read the same through both (every repository, tag, revision, manifest,
 * blob and size, and the same problem for each piece of damage), with the
 * times the bucket's LastModified gives. Then what it costs in requests, and
 * the one clear error for a bucket it cannot read.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, HeadObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededBytes, TreeWriter } from '../../../scripts/sampleTree.js';
import { UsageError } from '../../../src/errors.js';
import type { BlobPart, Digest, Problem } from '../../../src/model.js';
import { Layout } from '../../../src/storage/layout.js';
import { MediaTypes } from '../../../src/storage/manifest.js';
import type { RepositoryScan } from '../../../src/storage/source.js';
import { blobPrefixes, findRepositories, scanBlobPrefixes, scanRepository } from '../../../src/storage/fs/scan.js';
import { type BucketClient, openBucketClient } from '../../../src/storage/s3/client.js';
import { type BucketInventory, inventoryBucket } from '../../../src/storage/s3/inventory.js';
import type { S3Location } from '../../../src/storage/s3/location.js';
import { freePort } from '../../support/docker.js';
import { RADOSGW_MISSING, type Radosgw, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, startRadosgw, uploadTree } from '../../support/radosgw.js';
import { tempDir } from '../../support/tmp.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

let rgw: Radosgw;
let root: string;
/** Every client a test opened, closed in afterAll; their requests together say what the inventory ever asked for. */
const clients: BucketClient[] = [];

function location(bucket: string, rootdirectory = '', over: Partial<S3Location> = {}): S3Location {
  return {
    bucket,
    region: S3_REGION,
    endpoint: rgw.endpoint,
    forcePathStyle: true,
    rootdirectory,
    credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY },
    secure: false,
    skipVerify: false,
    ...over,
  };
}

async function client(loc: S3Location, options = {}): Promise<BucketClient> {
  const c = await openBucketClient(loc, options);
  clients.push(c);
  return c;
}

const hexOf = (d: string): string => d.slice('sha256:'.length);

/**
 * A tree with a bit of everything a registry holds and every kind of damage
 * the scan reports: history, nesting, an index with untagged children, a
 * referrer, a repository of manifests without _layers, corrupt and mismatched
 * links, a tag without a current link, unexpected entries, a manifest of an
 * unknown media type, a linked manifest without its blob, an invalid
 * repository name, blob data at a wrong path, an upload, a v3.1 temp link.
 */
async function writeTree(at: string): Promise<void> {
  const w = await new TreeWriter(at).init();
  const layout = new Layout(at);
  const base = await w.blob(seededBytes('base', 3000));
  await w.image('team/web', { seed: 'web-1', tag: 'latest', shared: [base] });
  await w.image('team/web', { seed: 'web-2', tag: 'v2' });
  await w.image('team/web', { seed: 'web-3', tag: 'latest', shared: [base] });
  await w.image('team', { seed: 'team', tag: 'latest' });
  await w.image('team/web/api', { seed: 'api', tag: 'v1' });
  const c1 = await w.image('multi/app', { seed: 'm1', format: 'oci' });
  const c2 = await w.image('multi/app', { seed: 'm2', format: 'oci', shared: [base] });
  const idx = await w.index('multi/app', [c1, c2], { tag: 'latest', format: 'oci' });
  await w.image('multi/app', { seed: 'sig', subject: idx });
  // Manifests without _layers (what 3.x would see, 2.x not).
  const lone = await w.manifest('nolayers/app', { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [] }, MediaTypes.ociIndex);
  await w.tag('nolayers/app', 'v1', lone.digest);
  // Damaged links.
  const b1 = await w.image('broken/app', { seed: 'b1', tag: 'ok' });
  const b2 = await w.image('broken/app', { seed: 'b2' });
  const b3 = await w.image('broken/app', { seed: 'b3' });
  await w.writeRaw({ kind: 'revisionLink', name: 'broken/app', digest: b2.digest }, 'sha256:not-a-digest\n');
  await w.writeRaw({ kind: 'revisionLink', name: 'broken/app', digest: b3.digest }, b1.digest);
  await w.writeRaw({ kind: 'tagCurrentLink', name: 'broken/app', tag: 'empty' }, '');
  await w.writeRaw({ kind: 'tagIndexEntryLink', name: 'broken/app', tag: 'empty', digest: b1.digest }, b1.digest);
  await w.writeRaw({ kind: 'tagIndexEntryLink', name: 'broken/app', tag: 'nocurrent', digest: b1.digest }, b1.digest);
  await w.writeRaw({ kind: 'tagIndexEntryLink', name: 'broken/app', tag: 'mismatch', digest: b2.digest }, b1.digest);
  await w.writeRaw({ kind: 'tagCurrentLink', name: 'broken/app', tag: 'mismatch' }, b3.digest);
  await w.writeRaw({ kind: 'tagCurrentLink', name: 'broken/app', tag: 'elsewhere' }, b2.digest);
  await w.writeRaw({ kind: 'tagIndexEntryLink', name: 'broken/app', tag: 'elsewhere', digest: b1.digest }, b1.digest);
  const revisions = layout.pathFor({ kind: 'revisions', name: 'broken/app' });
  await fs.mkdir(path.join(revisions, 'nothex'), { recursive: true });
  await fs.writeFile(path.join(revisions, 'nothex', 'link'), b1.digest);
  await fs.writeFile(path.join(revisions, 'a-file'), 'x');
  // A v3.1 crash leftover: a revision directory with only a temp link, which garbage-collect ignores.
  await fs.mkdir(path.join(revisions, hexOf(c1.digest)), { recursive: true });
  await fs.writeFile(path.join(revisions, hexOf(c1.digest), 'link.0e4c1e5e-0000-4000-8000-000000000000.tmp'), c1.digest);
  await fs.writeFile(path.join(layout.pathFor({ kind: 'tags', name: 'broken/app' }), 'stray-file'), 'x');
  await fs.mkdir(path.join(layout.pathFor({ kind: 'tagIndex', name: 'broken/app', tag: 'ok' }), 'zz'), { recursive: true });
  await fs.writeFile(path.join(layout.pathFor({ kind: 'tagIndex', name: 'broken/app', tag: 'ok' }), 'zz', 'link'), b1.digest);
  // Manifests regsweep does not understand, or cannot find.
  const odd = await w.manifest('odd/media', { schemaVersion: 2, mediaType: 'application/vnd.example.unknown+json', config: {} }, 'application/vnd.example.unknown+json');
  await w.tag('odd/media', 'v1', odd.digest);
  await w.linkLayer('odd/media', odd.digest);
  const ghost = `sha256:${createHash('sha256').update('never stored').digest('hex')}` as Digest;
  await w.linkRevision('gone/blob', ghost);
  await w.linkLayer('gone/blob', ghost);
  // An invalid name above a valid repository, and a `_`-prefixed top directory nothing walks.
  const reposDir = layout.pathFor({ kind: 'repositories' });
  for (const dir of ['Bad_Name/_layers/sha256/x', 'Bad_Name/fine/_layers/sha256/x', '_hidden/app/_layers/sha256/x']) {
    await fs.mkdir(path.join(reposDir, dir), { recursive: true });
    await fs.writeFile(path.join(reposDir, dir, 'link'), base.digest);
  }
  // An upload in progress (not a repository of its own), and blob data at a path garbage-collect aborts on.
  await fs.mkdir(path.join(reposDir, 'team', '_uploads', '11111111-2222-4333-8444-555555555555'), { recursive: true });
  await fs.writeFile(path.join(reposDir, 'team', '_uploads', '11111111-2222-4333-8444-555555555555', 'data'), 'partial');
  const blobs = layout.pathFor({ kind: 'blobAlgorithm' });
  await fs.mkdir(path.join(blobs, 'ab', hexOf(base.digest)), { recursive: true });
  await fs.writeFile(path.join(blobs, 'ab', hexOf(base.digest), 'data'), 'misplaced');
  await fs.mkdir(path.join(blobs, 'ab', 'nothex'), { recursive: true });
  await fs.writeFile(path.join(blobs, 'ab', 'nothex', 'data'), 'misplaced');
}

interface Scanned {
  found: BucketInventory['found'];
  repositories: RepositoryScan[];
  blobs: BlobPart;
  problems: Problem[];
}

/** What the filesystem scan makes of the tree, in the inventory's shape. */
function scanDirectory(at: string, times: boolean, recentAfter: number): Scanned {
  const problems: Problem[] = [];
  const found = findRepositories(new Layout(at), problems);
  const blobs = scanBlobPrefixes(at, blobPrefixes(at), recentAfter);
  const byPath = (a: Problem, b: Problem): number => ((a.path ?? '') < (b.path ?? '') ? -1 : 1);
  return { found, repositories: found.map((f) => scanRepository(at, f, times)), blobs, problems: [...problems, ...[...blobs.problems].sort(byPath)] };
}

/** Both readings in one comparable form: problem paths below the root as `s3://bucket/<prefix>…`, problems of a repository sorted (a directory lists in its own order), blobs by digest, times left out. */
function comparable(s: Scanned, fsRoot: string | undefined, shownRoot: string): unknown {
  const at = (p?: string): string | undefined => (p === undefined || fsRoot === undefined ? p : p.replace(`${fsRoot}/`, shownRoot));
  const problem = (p: Problem): Problem => ({ ...p, path: at(p.path) });
  const blobs = Array.from(s.blobs.sizes, (size, i) => ({ digest: Buffer.from(s.blobs.digests.subarray(i * 32, i * 32 + 32)).toString('hex'), size, recent: s.blobs.recent.includes(i) }));
  return {
    found: s.found,
    repositories: s.repositories.map(({ repo, manifests }) => ({
      repo: {
        ...repo,
        tags: repo.tags.map(({ pushedMs: _p, indexTimes: _i, ...tag }) => tag),
        problems: repo.problems.map(problem).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)),
      },
      manifests,
    })),
    blobs: blobs.sort((a, b) => (a.digest < b.digest ? -1 : 1)),
    blobProblems: s.blobs.problems.map(problem),
    problems: s.problems.map(problem),
  };
}

/** An object's Last-Modified as HEAD says it: an HTTP date, to the second (a listing gives milliseconds). */
async function lastModified(bucket: string, key: string): Promise<number> {
  const head = await rgw.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  return (head.LastModified as Date).getTime();
}

const toSecond = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : Math.floor(ms / 1000) * 1000);

/** Uploads every link (…/link) as a one-part multipart upload: an ETag that is no MD5 of the bytes, as SSE-KMS or multipart buckets give. */
async function uploadLinksMultipart(bucket: string, prefix: string): Promise<number> {
  const files = (await fs.readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && e.name === 'link');
  for (const e of files) {
    const key = `${prefix}${path.relative(root, path.join(e.parentPath, e.name))}`;
    const up = await rgw.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    const part = await rgw.client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: up.UploadId, PartNumber: 1, Body: await fs.readFile(path.join(e.parentPath, e.name)) }));
    await rgw.client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: up.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }));
  }
  return files.length;
}

/**
 * The link keys a scan reads: below `_manifests/`, a tag's current link or a
 * link in a digest's directory, not empty (an empty link says all it holds by
 * its size). `_layers` links and links in other directories are never read.
 */
function readLinks(all: readonly string[]): string[] {
  const size = (key: string): number => statSync(path.join(root, key.slice(key.indexOf('docker/registry/v2/')))).size;
  return all.filter((k) => /\/_manifests\/(tags\/[^/]+\/current|.*\/sha256\/[0-9a-f]{64})\/link$/.test(k) && size(k) > 0);
}

const skip = RADOSGW_MISSING ? `radosgw tests skipped: ${RADOSGW_MISSING}` : undefined;

describe.skipIf(skip !== undefined)('the bucket inventory on a real radosgw', () => {
  let keys: string[];
  beforeAll(async () => {
    rgw = await startRadosgw();
    root = await tempDir();
    await writeTree(root);
    await rgw.createBucket('tree');
    keys = await uploadTree(rgw.client, 'tree', root, 'some/root/');
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await rgw?.stop();
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('reads what the filesystem scan reads of the same tree, problems and all', async () => {
    const inventory = await inventoryBucket(await client(location('tree', '/some/root/')), { times: true, recentAfter: 0 });
    const scanned = scanDirectory(root, true, 0);
    expect(comparable(inventory, undefined, '')).toEqual(comparable(scanned, root, 's3://tree/some/root/'));
    // The tree has what it was made to have, so the comparison above compared something.
    expect(inventory.found.map((f) => f.name)).toEqual(['broken/app', 'gone/blob', 'multi/app', 'nolayers/app', 'odd/media', 'team', 'team/web', 'team/web/api']);
    expect(inventory.problems.map((p) => p.path)).toEqual([
      's3://tree/some/root/docker/registry/v2/repositories/Bad_Name',
      's3://tree/some/root/docker/registry/v2/repositories/Bad_Name/fine',
      expect.stringMatching(/^s3:\/\/tree\/some\/root\/docker\/registry\/v2\/blobs\/sha256\/ab\/[0-9a-f]{64}\/data$/),
      's3://tree/some/root/docker/registry/v2/blobs/sha256/ab/nothex/data',
    ]);
    const problems = inventory.repositories.flatMap((r) => r.repo.problems.map((p) => p.message));
    for (const kind of [/revision link holds "sha256:not-a-digest\\n"/, /revision link names sha256:/, /current link of tag empty is empty/, /tag nocurrent has no current link/, /index link of tag mismatch names/, /unexpected entry among revisions/, /unexpected entry among tags/, /unexpected entry in the index of tag ok/, /has manifests but no _layers/]) {
      expect(problems.some((m) => kind.test(m)), String(kind)).toBe(true);
    }
    const reads = inventory.repositories.flatMap((r) => r.manifests.map(([, read]) => read));
    expect(reads).toContainEqual({ error: 'unknown media type application/vnd.example.unknown+json' });
    expect(reads).toContainEqual({ missing: true });
    expect(inventory.blobs.recent.length).toBe(inventory.blobs.sizes.length);
  });

  it("notes times from each link's LastModified, and recent blobs by their data's", async () => {
    const inventory = await inventoryBucket(await client(location('tree', 'some/root')), { times: true, recentAfter: Infinity });
    const web = inventory.repositories.find((r) => r.repo.name === 'team/web')?.repo;
    const tag = web?.tags.find((t) => t.name === 'latest');
    const tagDir = 'some/root/docker/registry/v2/repositories/team/web/_manifests/tags/latest';
    expect(toSecond(tag?.pushedMs)).toBe(await lastModified('tree', `${tagDir}/current/link`));
    expect(Object.keys(tag?.indexTimes ?? {})).toHaveLength(2);
    for (const [digest, ms] of Object.entries(tag?.indexTimes ?? {})) expect(toSecond(ms)).toBe(await lastModified('tree', `${tagDir}/index/sha256/${hexOf(digest)}/link`));
    expect(inventory.blobs.recent).toEqual([]);
    const untimed = await inventoryBucket(await client(location('tree', 'some/root')));
    expect(untimed.repositories.flatMap((r) => r.repo.tags).every((t) => t.pushedMs === undefined && t.indexTimes === undefined)).toBe(true);
  });

  it('costs two discovery listings, a page per prefix listed, a GET per distinct manifest, and a GET per link whose ETag is not the MD5 of what it must hold', async () => {
    const c = await client(location('tree', '/some/root'));
    const inventory = await inventoryBucket(c);
    const below = (dir: string): string[] => keys.filter((k) => k.startsWith(dir)).map((k) => k.slice(dir.length));
    const pages = (list: string[]): number => Math.max(1, Math.ceil(list.length / 1000));
    const blobDirs = [...new Set(below('some/root/docker/registry/v2/blobs/sha256/').map((k) => k.split('/')[0] as string))];
    const topDirs = [...new Set(below('some/root/docker/registry/v2/repositories/').map((k) => k.split('/')[0] as string))].filter((t) => !t.startsWith('_'));
    const listings = 2 + blobDirs.reduce((n, d) => n + pages(below(`some/root/docker/registry/v2/blobs/sha256/${d}/`)), 0) + topDirs.reduce((n, d) => n + pages(below(`some/root/docker/registry/v2/repositories/${d}/`)), 0);
    const manifests = new Set(inventory.repositories.flatMap((r) => r.manifests.filter(([, read]) => !('missing' in read)).map(([d]) => d))).size;
    // Links that hold something else than the digest their key names (or, for a current link, one of its tag's index entries), and are not empty.
    let odd = 0;
    for (const key of readLinks(keys)) {
      const content = await fs.readFile(path.join(root, key.slice('some/root/'.length)), 'utf8');
      const parts = key.split('/');
      const expected = key.endsWith('/current/link')
        ? keys.filter((k) => k.startsWith(`${parts.slice(0, -2).join('/')}/index/sha256/`) && k.endsWith('/link')).map((k) => `sha256:${k.split('/').at(-2)}`)
        : [`sha256:${parts.at(-2)}`];
      if (!expected.includes(content)) odd++;
    }
    expect(odd).toBeGreaterThan(0);
    expect(c.requests.byOperation).toEqual({ ListObjectsV2: listings, GetObject: manifests + odd });
    expect(inventory.requests).toEqual(c.requests);
  });

  it('reads the same where no ETag is an MD5 (multipart links), reading every link instead', async () => {
    await rgw.createBucket('multipart');
    await uploadTree(rgw.client, 'multipart', root);
    const links = await uploadLinksMultipart('multipart', '');
    const c = await client(location('multipart'));
    const viaReads = await inventoryBucket(c, { recentAfter: 0 });
    expect(comparable(viaReads, undefined, '')).toEqual(comparable(scanDirectory(root, false, 0), root, 's3://multipart/'));
    const manifests = new Set(viaReads.repositories.flatMap((r) => r.manifests.filter(([, read]) => !('missing' in read)).map(([d]) => d))).size;
    expect(links).toBeGreaterThan(readLinks(keys).length);
    expect(c.requests.byOperation.GetObject).toBe(manifests + readLinks(keys).length);
  });

  it('refuses (exit 2, one line naming the bucket) a bucket it cannot read', async () => {
    const refusal = async (loc: S3Location, options = {}): Promise<UsageError> => {
      const error = await inventoryBucket(await client(loc, options)).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(UsageError);
      expect((error as UsageError).exitCode).toBe(2);
      expect((error as Error).message).not.toContain('\n');
      return error as UsageError;
    };
    expect((await refusal(location('no-such-bucket'))).message).toMatch(/^s3:\/\/no-such-bucket at http:\/\/127\.0\.0\.1:\d+: no such bucket$/);
    expect((await refusal(location('tree', '/some/root', { credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: 'wrong' } }))).message).toMatch(/s3:\/\/tree .* refused access \(SignatureDoesNotMatch\)/);
    expect((await refusal(location('tree', '/some/root', { credentials: { accessKeyId: 'NOSUCHKEY', secretAccessKey: 'wrong' } }))).message).toMatch(/refused access \(InvalidAccessKeyId\)/);
    const closed = await freePort();
    const started = Date.now();
    expect((await refusal(location('tree', '', { endpoint: `http://127.0.0.1:${closed}` }), { maxAttempts: 2 })).message).toMatch(/cannot be reached: ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await refusal(location('tree', '/wrong/root'))).message).toMatch(/^s3:\/\/tree\/wrong\/root\/ holds no registry storage/);
  });

  it('only ever reads: lists and gets, nothing else', () => {
    const operations = new Set(clients.flatMap((c) => Object.keys(c.requests.byOperation)));
    expect([...operations].sort()).toEqual(['GetObject', 'ListObjectsV2']);
  });
});

it.skipIf(skip === undefined)(skip ?? 'radosgw is installed', () => {});
