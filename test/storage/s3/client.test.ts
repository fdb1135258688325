/**
 * The client's retries and request count, against a small loopback server
 * that throttles as S3 does (503 SlowDown), in addition to the radosgw tests:
 * radosgw 16 cannot be made to throttle on demand.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RegsweepError, UsageError } from '../../../src/errors.js';
import { type BucketClient, openBucketClient } from '../../../src/storage/s3/client.js';
import { bounded, listFlat } from '../../../src/storage/s3/listing.js';

process.env.AWS_EC2_METADATA_DISABLED = 'true';

const SLOW_DOWN = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';
const LISTING = (keys: string[]): string =>
  `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><Prefix>p/</Prefix><KeyCount>${keys.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>${keys
    .map((k) => `<Contents><Key>${k}</Key><LastModified>2026-01-02T03:04:05.678Z</LastModified><ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag><Size>0</Size></Contents>`)
    .join('')}</ListBucketResult>`;

let server: http.Server | undefined;
let client: BucketClient | undefined;
afterEach(async () => {
  client?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

/** A server that throttles the first `throttled` requests, then lists two keys; returns its endpoint and what it saw. */
async function throttling(throttled: number): Promise<{ endpoint: string; seen: string[] }> {
  const seen: string[] = [];
  server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const slow = seen.length <= throttled;
    res.writeHead(slow ? 503 : 200, { 'content-type': 'application/xml' });
    res.end(slow ? SLOW_DOWN : LISTING(['p/a', 'p/b']));
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const at = (endpoint: string) => ({ bucket: 'b', region: 'us-east-1', endpoint, forcePathStyle: true, rootdirectory: '', credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' }, secure: false, skipVerify: false });

describe('the S3 client', () => {
  it('retries a throttled request with backoff and counts every attempt', async () => {
    const { endpoint, seen } = await throttling(2);
    client = await openBucketClient(at(endpoint));
    const keys: string[] = [];
    await listFlat(client, bounded(4), 'p/', (page) => keys.push(...page.map((o) => o.key)));
    expect(keys).toEqual(['p/a', 'p/b']);
    expect(seen).toHaveLength(3);
    expect(seen.every((s) => /^GET \/b\/?\?(.*&)?list-type=2/.test(s)), seen.join(', ')).toBe(true);
    expect(client.requests).toEqual({ total: 3, byOperation: { ListObjectsV2: 3 } });
  });

  it('gives up after its attempts with an error that says what failed (exit 1: the bucket was reachable)', async () => {
    const { endpoint, seen } = await throttling(Infinity);
    client = await openBucketClient(at(endpoint), { maxAttempts: 2 });
    const error = await listFlat(client, bounded(4), 'p/', () => {}).then(() => undefined, (e: unknown) => e);
    expect(seen).toHaveLength(2);
    expect(error).toBeInstanceOf(RegsweepError);
    expect(error).not.toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(/^s3:\/\/b at http:\/\/127\.0\.0\.1:\d+: listing p\/ failed: SlowDown \(HTTP 503\): Please reduce your request rate\.$/);
  });
});
