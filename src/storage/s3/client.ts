/**
 * An S3 client for a registry's bucket: reached as the registry's s3 driver
 * reaches it (location.ts), retrying what an object store asks to be retried,
 * and counting every HTTP request it sends so a report can say what a run
 * cost. The SDK is loaded on first use: most runs are on a filesystem and it
 * takes longer to load than such a run takes to start.
 *
 * Retries are the SDK's own standard strategy, configured: exponential backoff
 * with jitter on throttling (503 SlowDown, Throttling, RequestLimitExceeded…,
 * from a 500 ms base), on transient errors (500, 502, 503, 504, a reset or
 * refused connection, from 100 ms), within a retry quota per client.
 */
import http from 'node:http';
import https from 'node:https';
import type { S3Client } from '@aws-sdk/client-s3';
import { RegsweepError, UsageError } from '../../errors.js';
import type { S3Location } from './location.js';
import type { RequestCount } from '../source.js';

type Sdk = typeof import('@aws-sdk/client-s3');

/** The requests a client sent, retries included: in all, and by operation (`ListObjectsV2`, `GetObject`…). */
export interface BucketClient {
  readonly s3: S3Client;
  readonly sdk: Sdk;
  readonly location: S3Location;
  readonly requests: RequestCount;
  /** Where the bucket is, for messages: `s3://bucket` at the endpoint. */
  readonly describe: string;
  close(): void;
}

export interface ClientOptions {
  /** Attempts per request, the first included (default 6: five retries, some 10 s of backoff at most under throttling). */
  maxAttempts?: number;
  /** Connections open at once (default 32). */
  maxSockets?: number;
  /** Milliseconds to wait for a connection (default 10 s) and for a response to start (default 60 s). */
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
}

let sdkModule: Sdk | undefined;

async function loadSdk(): Promise<Sdk> {
  // Its warning that later SDK releases need Node 22 is for whoever upgrades the SDK (package-lock.json pins one
  // that runs on 20), not for a user, whose stderr holds one line per error.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  sdkModule ??= await import('@aws-sdk/client-s3');
  return sdkModule;
}

function countRequests(s3: S3Client, count: RequestCount): void {
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      // Below the retry middleware (priority high in this step): called once per attempt.
      const operation = (context.commandName ?? 'unknown').replace(/Command$/, '');
      count.total++;
      count.byOperation[operation] = (count.byOperation[operation] ?? 0) + 1;
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'regsweepRequestCount' },
  );
}

/** An S3 client for the location, with retries configured and a request counter. */
export async function openBucketClient(location: S3Location, options: ClientOptions = {}): Promise<BucketClient> {
  const sdk = await loadSdk();
  const maxSockets = options.maxSockets ?? 32;
  const s3 = new sdk.S3Client({
    region: location.region,
    endpoint: location.endpoint,
    forcePathStyle: location.forcePathStyle,
    tls: location.secure,
    credentials: location.credentials,
    maxAttempts: options.maxAttempts ?? 6,
    retryMode: 'standard',
    requestHandler: {
      httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
      httpsAgent: new https.Agent({ keepAlive: true, maxSockets, rejectUnauthorized: !location.skipVerify }),
      connectionTimeout: options.connectionTimeoutMs ?? 10_000,
      requestTimeout: options.requestTimeoutMs ?? 60_000,
    },
  });
  const requests: RequestCount = { total: 0, byOperation: {} };
  countRequests(s3, requests);
  const describe = `s3://${location.bucket} at ${location.endpoint ?? `AWS S3 (${location.region})`}`;
  return { s3, sdk, location, requests, describe, close: () => s3.destroy() };
}

/** Errors that say the endpoint could not be reached at all. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ETIMEDOUT', 'EPROTO', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS_CERT_ALTNAME_INVALID']);

/** Error names the service answers when the keys are wrong or not allowed to read. */
const REFUSED = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken', 'AllAccessDisabled']);

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/**
 * What a failed request means to the user. The bucket missing, keys it
 * refuses, no credentials, an endpoint that cannot be reached: bad input,
 * exit 2, one line that names the bucket. Anything else: the read failed
 * (exit 1), with the service's own words.
 */
export function bucketError(client: Pick<BucketClient, 'describe' | 'location'>, error: unknown, doing: string): RegsweepError {
  if (error instanceof RegsweepError) return error;
  const e = (error ?? {}) as SdkError;
  const name = e.name ?? '';
  const status = e.$metadata?.httpStatusCode;
  const code = e.code ?? (error as { cause?: { code?: string } } | undefined)?.cause?.code ?? '';
  const where = client.describe;
  if (name === 'NoSuchBucket') return new UsageError(`${where}: no such bucket`, { cause: error });
  if (REFUSED.has(name) || status === 403) {
    return new UsageError(`${where} refused access (${name || status}): check the access key and secret key (storage.s3.accesskey, secretkey)`, { cause: error });
  }
  if (name === 'CredentialsProviderError') {
    return new UsageError(`${where}: no credentials (the config names no accesskey and secretkey, and the SDK's default chain found none)`, { cause: error });
  }
  if (status === 301 || name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed') {
    return new UsageError(`${where}: the bucket is not in region ${client.location.region} (${name || status})`, { cause: error });
  }
  if (UNREACHABLE.has(code) || UNREACHABLE.has(name) || name === 'TimeoutError') {
    return new UsageError(`${where} cannot be reached: ${code || name} (${e.message ?? 'no message'})`, { cause: error });
  }
  return new RegsweepError(`${where}: ${doing} failed: ${name || 'error'}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? String(error)}`, { cause: error });
}
