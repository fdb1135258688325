/**
 * The S3 server's clock. On a bucket the grace compares blob LastModified,
 * which the server's clock wrote, with "now" (as storageClock.ts does with a
 * file's mtime on a disk); this process's clock may be hours off. Every S3
 * response carries the server's time in its `Date` header, so a middleware on
 * the client reads it from each response, error responses included (a request
 * signed by a clock more than 15 minutes off is refused with 403
 * RequestTimeTooSkewed, and that answer has a Date too: the SDK itself then
 * corrects its signing time and retries).
 *
 * `Date` has whole seconds, and the server stamped it at some moment between
 * our send and our receipt. So `Date - receivedAt` is never more than the
 * true offset (the stamp is at most the true server time, receipt after it):
 * the largest of these lower bounds over recent responses is the estimate. It
 * errs early, as storageClock's does: "now" comes out a little earlier than
 * the server's, and the grace keeps a little more, never less.
 */
import type { StorageClock } from '../storageClock.js';
import type { BucketClient } from './client.js';

/** Responses kept for the estimate: recent enough that a step of this process's clock (NTP) ages out. */
const WINDOW = 8;

interface Sample {
  /** Lower bound of the offset from this response: its Date minus when we had it. */
  lowMs: number;
  /** Upper bound: its Date plus the second it truncates, minus when we sent the request. */
  highMs: number;
}

/** The server's clock as the responses of one client have shown it. */
export class ServerClock {
  private readonly samples: Sample[] = [];

  private constructor(private readonly client: BucketClient) {}

  private static readonly watching = new WeakMap<BucketClient, ServerClock>();

  /** The clock of this client's server, watching every response it gets from now on (one watcher per client). */
  static of(client: BucketClient): ServerClock {
    let clock = ServerClock.watching.get(client);
    if (clock) return clock;
    const created = new ServerClock(client);
    clock = created;
    ServerClock.watching.set(client, clock);
    client.s3.middlewareStack.add(
      (next) => async (args) => {
        // Per attempt (below the retry middleware), as the request counter is.
        const sentAt = Date.now();
        try {
          const result = await next(args);
          created.observe((result.response as { headers?: Record<string, string> } | undefined)?.headers?.date, sentAt, Date.now());
          return result;
        } catch (error) {
          created.observe((error as { $response?: { headers?: Record<string, string> } }).$response?.headers?.date, sentAt, Date.now());
          throw error;
        }
      },
      { step: 'finalizeRequest', priority: 'low', name: 'regsweepServerClock' },
    );
    return clock;
  }

  private observe(date: string | undefined, sentAt: number, receivedAt: number): void {
    const stamp = date === undefined ? Number.NaN : Date.parse(date);
    if (!Number.isFinite(stamp)) return;
    this.samples.push({ lowMs: stamp - receivedAt, highMs: stamp + 999 - sentAt });
    if (this.samples.length > WINDOW) this.samples.shift();
  }

  /** How many responses the estimate rests on now. */
  get sampleCount(): number {
    return this.samples.length;
  }

  /** The server's clock minus this process's (see the top of this file); this process's own until a response was seen. */
  get clock(): StorageClock {
    if (this.samples.length === 0) return { source: 'process', offsetMs: 0 };
    return { source: 'storage', offsetMs: Math.max(...this.samples.map((s) => s.lowMs)) };
  }

  /** How far the estimate may be below the true offset: the narrowest bracket the responses gave, in ms. */
  get uncertaintyMs(): number {
    if (this.samples.length === 0) return Number.POSITIVE_INFINITY;
    return Math.min(...this.samples.map((s) => s.highMs)) - this.clock.offsetMs;
  }

  /** The server's time now, ms since the epoch, by the estimate. */
  now(): number {
    return Date.now() + this.clock.offsetMs;
  }

  /**
   * The offset, after at least `samples` responses: sends HeadBucket requests
   * (counted like any other) for those the client has not had yet.
   */
  async measure(samples = 3): Promise<StorageClock> {
    const { s3, sdk, location } = this.client;
    for (let tries = 0; this.samples.length < samples && tries < samples * 2; tries++) {
      // The answer does not matter (a 403 or 404 has a Date too), only that one came; none at all
      // (the endpoint cannot be reached) leaves the estimate as it is, and the caller's next request says why.
      await s3.send(new sdk.HeadBucketCommand({ Bucket: location.bucket })).catch(() => undefined);
    }
    return this.clock;
  }
}
