/**
 * What radosgw 16 cannot be made to do on demand, against small loopback
 * servers, in addition to the radosgw tests: a DeleteObjects request that
 * fails as a whole (retried, then one error naming it, no later batch sent),
 * and a server that ignores conditional writes, where the lock falls back to
 * a create read back after a settle and says so.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RegsweepError, UsageError } from '../../../src/errors.js';
import { type BucketClient, openBucketClient } from '../../../src/storage/s3/client.js';
import { BucketLock, inspectBucketLock } from '../../../src/storage/s3/lock.js';
import { removeKeys } from '../../../src/storage/s3/remove.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

let server: http.Server | undefined;
let client: BucketClient | undefined;
afterEach(async () => {
  client?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

async function serve(handler: (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void): Promise<string> {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks), res));
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const at = (endpoint: string) => ({ bucket: 'b', region: 'us-east-1', endpoint, forcePathStyle: true, rootdirectory: '', credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' }, secure: false, skipVerify: false });

describe('removals against a server that fails', () => {
  it('retries a DeleteObjects request that fails as a whole, then stops with one error naming it', async () => {
    const seen: string[] = [];
    const endpoint = await serve((req, _body, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(500, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>');
    });
    client = await openBucketClient(at(endpoint), { maxAttempts: 3 });
    const keys = Array.from({ length: 2500 }, (_, i) => `k/${i}`);
    const hooked: number[] = [];
    const error = await removeKeys(client, keys, { concurrency: 1, onBatch: (b) => void hooked.push(b.length) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(seen).toHaveLength(3);
    expect(seen.every((s) => /^POST \/b\/?\?delete/.test(s)), seen.join(', ')).toBe(true);
    expect(hooked).toEqual([1000]);
    expect(error).toBeInstanceOf(RegsweepError);
    expect(error).not.toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(/^s3:\/\/b at http:\/\/127\.0\.0\.1:\d+: removing 1000 keys \(k\/0 …\) failed: InternalError \(HTTP 500\): We encountered an internal error\.$/);
  });
});

/** An in-memory bucket that ignores If-None-Match and If-Match, as an old or partial S3 implementation may. */
function careless(): (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void {
  const objects = new Map<string, { body: Buffer; modified: Date }>();
  return (req, body, res) => {
    const key = decodeURIComponent((req.url ?? '').split('?')[0]?.replace(/^\/b\//, '') ?? '');
    const now = new Date();
    const etag = (b: Buffer): string => `"${createHash('md5').update(b).digest('hex')}"`;
    const object = objects.get(key);
    if (req.method === 'PUT') {
      objects.set(key, { body, modified: now });
      res.writeHead(200, { etag: etag(body), date: now.toUTCString() });
      res.end();
    } else if (req.method === 'GET' && object) {
      res.writeHead(200, { etag: etag(object.body), 'last-modified': object.modified.toUTCString(), 'content-length': object.body.length, date: now.toUTCString() });
      res.end(object.body);
    } else if (req.method === 'DELETE') {
      objects.delete(key);
      res.writeHead(204, { date: now.toUTCString() });
      res.end();
    } else {
      res.writeHead(404, { 'content-type': 'application/xml', date: now.toUTCString() });
      res.end(req.method === 'HEAD' ? undefined : '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>none</Message></Error>');
    }
  };
}

describe('the lock on a server that ignores conditional writes', () => {
  it('says so, holds the lock after reading its own token back, and still refuses a second run', async () => {
    const endpoint = await serve(careless());
    client = await openBucketClient(at(endpoint));
    const options = { target: { kind: 'path', name: 's3://b' }, bringBack: { restart: true } };
    const started = Date.now();
    const lock = await BucketLock.acquire(client, options);
    try {
      // The settle before the read-back.
      expect(Date.now() - started).toBeGreaterThanOrEqual(2_900);
      expect(lock.conditions).toEqual({ ifNoneMatch: false, ifMatch: 'ignored' });
      expect((await inspectBucketLock(client))?.record.token).toBe(lock.token);
      await lock.save({ journal: '/tmp/journal' });
      expect((await inspectBucketLock(client))?.record.journal).toBe('/tmp/journal');
      const second = await BucketLock.acquire(client, options).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((second as Error | undefined)?.message).toMatch(/^busy: another regsweep run/);
    } finally {
      await lock.release();
    }
    expect(await inspectBucketLock(client)).toBeUndefined();
  });
});
