/**
 * One real run per bucket: the filesystem's run lock (runLock.ts) for a
 * registry on S3. The lock is an object beside docker/, at the key the
 * filesystem lock's path has below the root (`<rootdirectory>/.regsweep.lock`),
 * holding the same record; a second run fails with the same BusyError (exit
 * 75), or waits with `waitMs`.
 *
 * Taking it is a conditional create (`If-None-Match: *`: 412 when the key
 * exists; radosgw 16 honours it atomically, as AWS S3 and MinIO do). Taking
 * over a dead holder's lock is a conditional replace (`If-Match` its ETag), so
 * of two runs that find it dead one wins. A holder is dead as on a
 * filesystem: in this pid namespace of this boot, when its process and
 * watchdog are gone; from anywhere else, when its heartbeat (the object
 * rewritten every few seconds: its LastModified) is older than `staleMs`, both
 * times by the server's clock (clock.ts). Heartbeats and updates replace the
 * object only if it is still the version this run wrote, so a run whose lock
 * was taken over learns it at its next write. Release deletes the object
 * after reading that it still holds our token.
 *
 * What the server does with conditions is checked once the lock is held, on
 * the lock itself (a write that would change nothing if ignored): whether it
 * refuses a create of an existing key, whether it refuses a stale If-Match,
 * and whether it takes the ETag in If-Match quoted (RFC 7232, AWS) or bare
 * (radosgw 16 refuses the quoted form even when it matches). Where a
 * condition is ignored, the lock falls back to a weaker protocol and says so
 * (`conditions`): a create is read back after a settle of a few seconds, and
 * only the run whose token is there holds it; a heartbeat reads the token
 * before it writes. Two runs that start within that settle can then both
 * write, and the later write wins; one that read its own token before the
 * other's write landed holds a lock it has lost, until its next heartbeat
 * finds the other token. Deletes are never conditional on radosgw 16 (it
 * ignores If-Match on DELETE), so release reads, then deletes: a takeover
 * landing between the two is deleted with it. A takeover needs this run's
 * heartbeat to have been silent for `staleMs`, so that needs a run that
 * stalled that long and then released.
 */
import { BusyError } from '../../errors.js';
import { type AcquireOptions, type HeldLock, type HolderRecord, type RecordChange, STALE_MS, busyMessage, holderAlive, holderRecord, placeHere } from '../lockRecord.js';
import type { StorageClock } from '../storageClock.js';
import type { BucketClient } from './client.js';
import { bucketError } from './client.js';
import { ServerClock } from './clock.js';
import { BucketKeys } from './keys.js';
import type { S3Location } from './location.js';
import { keyPrefix } from './location.js';
import { putObject, readBack } from './put.js';

const LOCK_NAME = '.regsweep.lock';
const HEARTBEAT_MS = 5_000;
const WAIT_POLL_MS = 1_000;
/** Without conditional creates: how long a create waits before reading back whether it stood. */
const SETTLE_MS = 3_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The lock's key: beside docker/, as `<root>/.regsweep.lock` is on a filesystem. */
export function lockKey(location: Pick<S3Location, 'rootdirectory'>): string {
  return `${keyPrefix(location)}${LOCK_NAME}`;
}

/** What the server does with conditional writes, as found on the lock. */
export interface Conditions {
  /** Refuses to create a key that exists (If-None-Match: *). */
  ifNoneMatch: boolean;
  /** Refuses to replace a version other than the one named, taking the ETag quoted or bare; or ignores If-Match. */
  ifMatch: 'quoted' | 'bare' | 'ignored';
}

export interface BucketLockState {
  record: HolderRecord;
  alive: boolean;
  /** Milliseconds since the holder last wrote the lock, by the server's clock. */
  heartbeatAgeMs: number;
  etag: string;
}

export interface BucketAcquireOptions extends AcquireOptions {
  /** A holder seen from another pid namespace or host is dead after this long without a heartbeat (default 30 s, as on a filesystem). */
  staleMs?: number;
  /** How often the holder rewrites the lock (default 5 s). */
  heartbeatMs?: number;
}

const encode = (record: HolderRecord): Uint8Array => Buffer.from(`${JSON.stringify(record, null, 2)}\n`);

function parseRecord(body: Uint8Array): HolderRecord | undefined {
  try {
    const value = JSON.parse(Buffer.from(body).toString('utf8')) as Partial<HolderRecord>;
    return value?.regsweep === 'lock' && typeof value.token === 'string' ? (value as HolderRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** The lock as it is now, or undefined when no run holds it. Reads only: what a dry run reports. */
export async function inspectBucketLock(client: BucketClient, staleMs = STALE_MS): Promise<BucketLockState | undefined> {
  const key = lockKey(client.location);
  const clock = ServerClock.of(client);
  const back = await readBack(client, key);
  if (!back) return undefined;
  const record = parseRecord(back.body);
  if (!record) throw new BusyError(`${new BucketKeys(client.location).display(key)} is not a regsweep lock; remove it if no regsweep run is at work`);
  const now = clock.now();
  // holderAlive compares with STALE_MS: "now" moved by the difference makes it compare with staleMs.
  const alive = holderAlive(record, back.modified, placeHere(), now + STALE_MS - staleMs);
  return { record, alive, heartbeatAgeMs: now - back.modified, etag: back.etag };
}

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/**
 * Replaces the object at `key` if it is still version `etag`: the new ETag
 * and the If-Match form that worked, or undefined when another write came
 * first. A 412 for a version that is still there means the server wants the
 * other form; one that finds our own body there is our write, landed by a
 * request the SDK retried after its answer was lost.
 */
async function replaceIfUnchanged(client: BucketClient, key: string, body: Uint8Array, etag: string, form: 'quoted' | 'bare'): Promise<{ etag: string; form: 'quoted' | 'bare' } | undefined> {
  for (let tries = 0; tries < 4; tries++) {
    const put = await putObject(client, key, body, { ifMatch: form === 'bare' ? etag : `"${etag}"` });
    if (typeof put === 'object') return { etag: put.etag, form };
    const back = await readBack(client, key);
    if (put === 'precondition failed' && back?.etag === etag && form === 'quoted') {
      form = 'bare';
      continue;
    }
    if (back && same(back.body, body) && back.etag !== etag) return { etag: back.etag, form };
    if (put === 'precondition failed') return undefined;
    await sleep(100 * (tries + 1)); // 409: a conditional write raced ours; the next try sees who won
  }
  return undefined;
}

/** The lock this run holds on a bucket: updated as the run goes, renewed by a heartbeat, released at its end. */
export class BucketLock implements HeldLock {
  private timer: NodeJS.Timeout | undefined;
  /** Set while the maintenance window runs. */
  inWindow = false;
  /** Told every version of the record at once (the watchdog), before the bucket has it. */
  private listener: ((record: Readonly<HolderRecord>) => void) | undefined;
  /** Writes to the lock one at a time (heartbeats, updates, release), each after the one before. */
  private chain: Promise<unknown> = Promise.resolve();
  private lost: string | undefined;
  /** What the server does with conditional writes; known once `checkConditions` ran. */
  conditions: Conditions = { ifNoneMatch: true, ifMatch: 'quoted' };
  readonly key: string;

  private constructor(
    private readonly client: BucketClient,
    private record: HolderRecord,
    private etag: string,
    /** The dead run this one took the lock over from, and how long its heartbeat had been silent. */
    readonly previous: { record: HolderRecord; heartbeatAgeMs: number } | undefined,
    private readonly heartbeatMs: number,
  ) {
    this.key = lockKey(client.location);
  }

  /**
   * Takes the lock, taking it over from a dead holder (see `previous`).
   * A live holder: waits up to `waitMs`, then BusyError (exit 75).
   */
  static async acquire(client: BucketClient, options: BucketAcquireOptions): Promise<BucketLock> {
    const record = holderRecord(options);
    const deadline = Date.now() + (options.waitMs ?? 0);
    for (;;) {
      const taken = await BucketLock.tryAcquire(client, record, options);
      if (taken instanceof BucketLock) {
        taken.timer = setInterval(() => void taken.beat(), taken.heartbeatMs);
        taken.timer.unref();
        return taken;
      }
      if (taken && Date.now() >= deadline) {
        throw new BusyError(taken.alive ? busyMessage(taken.record) : `busy: another run is taking over the lock at ${new BucketKeys(client.location).display(lockKey(client.location))}`);
      }
      // A holder in the way: after a poll; released or lost a race in between: again at once (nearly).
      await sleep(taken ? WAIT_POLL_MS : 50);
    }
  }

  /** One try: the lock, the holder in the way, or undefined to try again at once. */
  private static async tryAcquire(client: BucketClient, record: HolderRecord, options: BucketAcquireOptions): Promise<BucketLock | BucketLockState | undefined> {
    const key = lockKey(client.location);
    const staleMs = options.staleMs ?? STALE_MS;
    const hold = (etag: string, previous?: BucketLockState): BucketLock =>
      new BucketLock(client, record, etag, previous && { record: previous.record, heartbeatAgeMs: previous.heartbeatAgeMs }, options.heartbeatMs ?? HEARTBEAT_MS);
    const body = encode(record);
    const state = await inspectBucketLock(client, staleMs);
    let lock: BucketLock | undefined;
    if (!state) {
      const put = await putObject(client, key, body, { ifNoneMatch: true });
      if (typeof put === 'object') lock = hold(put.etag);
    } else if (!state.alive) {
      const over = await replaceIfUnchanged(client, key, body, state.etag, 'quoted');
      if (over) lock = hold(over.etag, state);
      if (lock && over) lock.conditions.ifMatch = over.form;
    }
    const now = lock ? undefined : await inspectBucketLock(client, staleMs);
    // Our own create, landed by a request the SDK retried after its answer was lost.
    if (now?.record.token === record.token) lock = hold(now.etag);
    if (!lock) return now;
    return (await lock.checkConditions()) ? lock : undefined;
  }

  /**
   * Finds what the server does with conditions (see the top of this file),
   * on the lock this run has just written, and where it ignores them, reads
   * the lock back after a settle: false when another run's write won.
   */
  private async checkConditions(): Promise<boolean> {
    const body = encode(this.record);
    // Each probe writes our own record again: if the server ignores the condition, nothing changes but LastModified.
    const create = await putObject(this.client, this.key, body, { ifNoneMatch: true });
    this.conditions.ifNoneMatch = typeof create !== 'object';
    const stale = await putObject(this.client, this.key, body, { ifMatch: `"${'0'.repeat(32)}"` });
    if (typeof stale === 'object') this.conditions.ifMatch = 'ignored';
    else this.conditions.ifMatch = (await replaceIfUnchanged(this.client, this.key, body, this.etag, this.conditions.ifMatch === 'bare' ? 'bare' : 'quoted'))?.form ?? 'quoted';
    if (this.conditions.ifNoneMatch && this.conditions.ifMatch !== 'ignored') return true;
    await sleep(SETTLE_MS);
    const back = await readBack(this.client, this.key);
    if (back && parseRecord(back.body)?.token === this.record.token) {
      this.etag = back.etag;
      return true;
    }
    return false;
  }

  get token(): string {
    return this.record.token;
  }

  get current(): Readonly<HolderRecord> {
    return this.record;
  }

  /** The server's clock (clock.ts), from every response this client has had: what the grace compares blob LastModified with. */
  get clock(): StorageClock {
    return ServerClock.of(this.client).clock;
  }

  /** Runs `write` after the writes before it. */
  private serial<T>(write: () => Promise<T>): Promise<T> {
    const next = this.chain.then(write, write);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Writes `record` over the version this run last wrote; false when that version is gone (taken over). */
  private async write(record: HolderRecord): Promise<boolean> {
    const body = encode(record);
    if (this.conditions.ifMatch === 'ignored') {
      // Read, then write: the weak protocol (see the top of this file).
      const back = await readBack(this.client, this.key);
      if (!back || parseRecord(back.body)?.token !== this.record.token) return false;
      const put = await putObject(this.client, this.key, body);
      if (typeof put === 'object') this.etag = put.etag;
      return true;
    }
    const over = await replaceIfUnchanged(this.client, this.key, body, this.etag, this.conditions.ifMatch);
    if (!over) return false;
    this.etag = over.etag;
    return true;
  }

  private async beat(): Promise<void> {
    if (this.lost || !this.timer) return;
    await this.serial(async () => {
      if (this.lost || !this.timer) return;
      if (!(await this.write(this.record))) this.lost = 'taken over by another run';
    }).catch(() => {
      // A missed beat (the server unreachable for a moment) is retried by the next one.
    });
  }

  /** Throws BusyError when another run has taken this lock over (found by a heartbeat or a write). */
  checkHeld(): void {
    if (this.lost) throw new BusyError(`the lock at ${new BucketKeys(this.client.location).display(this.key)} was ${this.lost}: stopping`);
  }

  /** Where the watchdog is told the lock is: the bucket and key, never a path on this host. */
  get root(): string {
    return new BucketKeys(this.client.location).display(this.key);
  }

  /** `listener` is told the record now and at every note, until the run releases the lock. */
  watch(listener: ((record: Readonly<HolderRecord>) => void) | undefined): void {
    this.listener = listener;
    listener?.(this.record);
  }

  /**
   * HeldLock's update: the listener (the watchdog) is told at once; the
   * bucket is written in turn with the other writes (release waits for it).
   */
  update(change: RecordChange): void {
    this.listener?.({ ...this.record, ...change });
    this.save(change).catch(() => {
      // Lost, or the server unreachable for a moment: checkHeld and the next heartbeat say so.
    });
  }

  /** No full disk on a bucket: the record is written as it changes. */
  persist(): boolean {
    return true;
  }

  /** Records more of what the run did, before it does it: written to the bucket when this resolves. */
  async save(change: RecordChange): Promise<void> {
    await this.serial(async () => {
      this.checkHeld();
      const record = { ...this.record, ...change };
      if (!(await this.write(record))) this.lost = 'taken over by another run';
      this.checkHeld();
      this.record = record;
    });
  }

  /** Gives the lock up: deletes it if it still holds this run's token. */
  async release(): Promise<void> {
    this.stopHeartbeat();
    await this.serial(async () => {
      if (this.lost) return;
      const back = await readBack(this.client, this.key);
      if (!back || parseRecord(back.body)?.token !== this.record.token) return;
      const { s3, sdk, location } = this.client;
      const ifMatch = this.conditions.ifMatch === 'bare' ? back.etag : `"${back.etag}"`;
      await s3.send(new sdk.DeleteObjectCommand({ Bucket: location.bucket, Key: this.key, IfMatch: ifMatch })).catch((error: unknown) => {
        // 412: replaced since we read it (where the server honours If-Match on DELETE): not ours to delete.
        if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412) return;
        throw bucketError(this.client, error, `releasing the lock ${this.key}`);
      });
    });
  }

  /** Keeps the lock (and its record) for whoever finds this run dead: the registry could not be brought back. */
  abandon(): void {
    this.stopHeartbeat();
  }

  private stopHeartbeat(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
