/**
 * A real redis-server for the tests of the Redis blob cache: one per test
 * file, on a free loopback port, nothing saved to disk. Tests skip when the
 * binary is missing (`.ci/run` installs the redis-server package).
 *
 * `describeKeys` reads a database the way the registry's cache is laid out
 * (see src/gc/redisCache.ts), so a test can say exactly which entries went.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort } from './docker.js';

/** The redis-server binary on PATH, if any. */
export const REDIS_SERVER = (() => {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() || undefined : undefined;
})();

export interface RunningRedis {
  port: number;
  /** A client on database `db`, closed by stop(). */
  client(db?: number): Redis;
  stop(): Promise<void>;
}

async function answers(port: number): Promise<boolean> {
  const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableReadyCheck: false });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch (error) {
    // With --requirepass a PING without AUTH is refused: that still means it listens.
    return /NOAUTH/.test((error as Error).message);
  } finally {
    probe.disconnect();
  }
}

function launch(port: number, args: string[]): ChildProcess {
  const child = spawn(REDIS_SERVER as string, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], { stdio: 'ignore' });
  child.on('error', () => {});
  return child;
}

/** Starts redis-server on a free loopback port and waits until it answers PING. Extra args, e.g. `['--requirepass', 'x']`. */
export async function startRedisServer(args: string[] = []): Promise<RunningRedis> {
  if (!REDIS_SERVER) throw new Error('redis-server is not installed');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = launch(port, args);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let gone = false;
    void exited.then(() => (gone = true));
    const deadline = Date.now() + 10_000;
    const password = args.includes('--requirepass') ? args[args.indexOf('--requirepass') + 1] : undefined;
    while (!gone && Date.now() < deadline && !(await answers(port))) await new Promise((r) => setTimeout(r, 50));
    if (gone || Date.now() >= deadline) {
      child.kill('SIGKILL');
      if (attempt < 3) continue; // the port was taken between freePort() and the bind
      throw new Error(`redis-server did not start on 127.0.0.1:${port}`);
    }
    const clients: Redis[] = [];
    return {
      port,
      client(db = 0) {
        const c = new Redis({ host: '127.0.0.1', port, db, password, maxRetriesPerRequest: 1 });
        clients.push(c);
        return c;
      },
      async stop() {
        for (const c of clients.splice(0)) c.disconnect();
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          await exited;
        }
      },
    };
  }
}

/** Writes a descriptor as distribution's repository-scoped SetDescriptor does: set member, global hash, scoped hash. */
export async function setDescriptor(client: Redis, repository: string, digest: string, size: number, mediaType: string): Promise<void> {
  await client.sadd(`repository::${repository}::blobs`, digest);
  await client.hset(`blobs::${digest}`, 'digest', digest, 'size', String(size));
  await client.hsetnx(`blobs::${digest}`, 'mediatype', mediaType);
  await client.hset(`repository::${repository}::blobs::${digest}`, 'mediatype', mediaType);
}

/**
 * Every cache entry in a database, one string each: `key` for a hash or other
 * key, `set member` for each member of a set. Sorted.
 */
export async function describeKeys(client: Redis): Promise<string[]> {
  const out: string[] = [];
  for (const key of await client.keys('*')) {
    if ((await client.type(key)) === 'set') for (const m of await client.smembers(key)) out.push(`${key} ${m}`);
    else out.push(key);
  }
  return out.sort();
}

/** The entries of `describeKeys` that mention any of these digests. */
export function entriesOf(entries: readonly string[], digests: readonly string[]): string[] {
  return entries.filter((e) => digests.some((d) => e.includes(d)));
}
