/**
 * A real S3 server for the tests and the bench (`--sizes s3`): a one-node
 * Ceph cluster (Debian's Ceph 16, Pacific) with radosgw, all under one
 * temporary directory and on 127.0.0.1 only. One mon, one OSD on memstore
 * (objects in RAM), radosgw's beast frontend on a free port; no cephx,
 * nothing under /etc/ceph or /var/lib/ceph, no systemd. Start one per test file (about 2 s) and stop it in afterAll:
 * the daemons are stopped by their pid files, then the directory goes.
 *
 * Written from shared/tools/ceph-s3.sh (the settings below are the ones it
 * found to matter, each with its reason), narrowed to what tests need: always
 * a fresh cluster, free ports, nothing kept across a stop. It lives in
 * scripts/ so the bench can start one too (test/support/radosgw.ts re-exports
 * it; scripts are built into dist/ and never import test code).
 *
 * Tests skip with a reason when the binaries are missing (`.ci/run` installs
 * radosgw, ceph-mon and ceph-osd, so in CI they run); the bench reports the
 * size as not measured.
 */
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { freePort } from './ports.js';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'ceph'] as const;

/** Why radosgw tests cannot run here, or undefined when they can. */
export const RADOSGW_MISSING: string | undefined = (() => {
  const missing = BINARIES.filter((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
  return missing.length === 0 ? undefined : `${missing.join(', ')} not installed (apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd)`;
})();

/** The test user's keys: fixed, since the cluster is private to one test file and lives on loopback. */
export const S3_ACCESS_KEY = 'REGSWEEPTESTACCESSKY';
export const S3_SECRET_KEY = 'regsweeptestsecretkey0000000000000000000';
export const S3_REGION = 'us-east-1';

export interface Radosgw {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  port: number;
  /** The cluster's directory: config, daemons' data, pid files and logs. */
  dir: string;
  /** A client with the test user's keys (path style, no retries beyond the SDK's default). */
  client: S3Client;
  createBucket(name: string): Promise<void>;
  /** Stops the daemons (radosgw, OSD, mon: by their pid files) and removes the directory. Safe to call twice. */
  stop(): Promise<void>;
}

const RGW = 'client.rgw.s3';
/** The order the daemons stop in: radosgw first (it hangs on SIGTERM once the OSD is gone), the mon last. */
const DAEMONS = [RGW, 'osd.0', 'mon.a'] as const;

function conf(dir: string, fsid: string, monPort: number, rgwPort: number): string {
  return `# one-node, loopback-only test cluster (scripts/radosgw.ts)
[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${monPort}]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
# radosgw asks for a "secure" mon session by default, which needs cephx keys: it hangs at start with error -13
ms mon client mode = crc
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
run dir = ${dir}/run
pid file = ${dir}/run/$name.pid
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
mon cluster log file = ${dir}/log/cluster.log
crash dir = ${dir}/crash
keyring = ${dir}/keyring
mon data = ${dir}/$name
osd data = ${dir}/$name
rgw data = ${dir}/$name
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail warn = 2
mon data avail crit = 1
# propose map changes at once: each pool radosgw creates costs about 2 s otherwise
paxos propose interval = 0.05
[osd]
osd objectstore = memstore
memstore device bytes = ${512 << 20}
osd memory target = 939524096
[${RGW}]
# tcp_nodelay: without it every response with a body waits about 40 ms (Nagle against delayed ACK)
rgw frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
rgw init timeout = 60
rgw thread pool size = 64
`;
}

/** The pid in a daemon's pid file, when that process still runs with this cluster's config (nothing else is ever signalled). */
async function pidOf(dir: string, daemon: string): Promise<number | undefined> {
  const text = await fs.readFile(path.join(dir, 'run', `${daemon}.pid`), 'utf8').catch(() => '');
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.split('\0').includes(path.join(dir, 'ceph.conf')) ? pid : undefined;
}


const alive = (pid: number): Promise<boolean> => fs.access(`/proc/${pid}`).then(() => true, () => false);

async function stopDaemon(dir: string, daemon: string): Promise<void> {
  const pid = await pidOf(dir, daemon);
  if (pid === undefined) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && (await alive(pid)); i++) await sleep(100);
  if (await alive(pid)) {
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && (await alive(pid)); i++) await sleep(100);
  }
}

async function lastLines(file: string): Promise<string> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  return text.split('\n').slice(-15).join('\n');
}

/** Runs a Ceph tool against this cluster; on failure the error carries its output. */
async function ceph(dir: string, bin: string, args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await run(bin, [...args, '-c', path.join(dir, 'ceph.conf')], { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${bin} ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}${e.stdout ?? ''}`);
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, log: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s; last lines of ${log}:\n${await lastLines(log)}`);
    await sleep(200);
  }
}

async function bootstrap(dir: string, monPort: number, rgwPort: number): Promise<void> {
  for (const sub of ['run', 'log', 'crash', 'mon.a', 'osd.0', RGW]) await fs.mkdir(path.join(dir, sub), { recursive: true });
  const fsid = (await fs.readFile('/proc/sys/kernel/random/uuid', 'utf8')).trim();
  await fs.writeFile(path.join(dir, 'ceph.conf'), conf(dir, fsid, monPort, rgwPort));
  const monmap = path.join(dir, 'monmap');
  await run('monmaptool', ['--create', '--clobber', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, monmap]);
  await ceph(dir, 'ceph-mon', ['--mkfs', '-i', 'a', '--monmap', monmap]);
  // The daemons fork into the background and write their pid files; the command returns once they have.
  await ceph(dir, 'ceph-mon', ['-i', 'a']);
  const osdUuid = (await fs.readFile('/proc/sys/kernel/random/uuid', 'utf8')).trim();
  await ceph(dir, 'ceph', ['--connect-timeout', '30', 'osd', 'new', osdUuid, '0']);
  await ceph(dir, 'ceph-osd', ['-i', '0', '--mkfs', '--osd-uuid', osdUuid]);
  await ceph(dir, 'ceph-osd', ['-i', '0']);
  const osdUp = async (): Promise<boolean> => /^osd\.0 up/m.test(await ceph(dir, 'ceph', ['--connect-timeout', '10', 'osd', 'dump']).catch(() => ''));
  await waitFor('osd.0 was not up', osdUp, 60_000, path.join(dir, 'log', 'osd.0.log'));
  await ceph(dir, 'radosgw', ['-n', RGW]);
  const answers = async (): Promise<boolean> => (await fetch(`http://127.0.0.1:${rgwPort}/`).catch(() => undefined))?.status === 200;
  await waitFor(`radosgw did not answer on 127.0.0.1:${rgwPort}`, answers, 60_000, path.join(dir, 'log', `${RGW}.log`));
  await ceph(dir, 'radosgw-admin', ['user', 'create', '--uid=regsweep', '--display-name=regsweep tests', `--access-key=${S3_ACCESS_KEY}`, `--secret-key=${S3_SECRET_KEY}`]);
}

async function stopAll(dir: string): Promise<void> {
  for (const daemon of DAEMONS) await stopDaemon(dir, daemon);
  await fs.rm(dir, { recursive: true, force: true });
}

/** Starts a fresh cluster on free loopback ports and waits until radosgw answers with the test user in place. */
export async function startRadosgw(): Promise<Radosgw> {
  if (RADOSGW_MISSING) throw new Error(RADOSGW_MISSING);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'regsweep-rgw-'));
  const [monPort, rgwPort] = [await freePort(), await freePort()];
  try {
    await bootstrap(dir, monPort, rgwPort);
  } catch (error) {
    await stopAll(dir);
    throw error;
  }
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  const client = new S3Client({
    endpoint,
    region: S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET_KEY },
  });
  let stopped = false;
  return {
    endpoint,
    port: rgwPort,
    dir,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      client.destroy();
      await stopAll(dir);
    },
  };
}

/** Every file below `dir`, as paths relative to it with '/' separators. */
async function filesBelow(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'));
}

/**
 * Uploads a directory tree into a bucket, file by file, as the registry's s3
 * driver lays out its filesystem tree: key = `prefix` + the path below `dir`.
 * Empty directories have no key (S3 has no directories). Returns the keys.
 */
export async function uploadTree(client: S3Client, bucket: string, dir: string, prefix = ''): Promise<string[]> {
  const files = await filesBelow(dir);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < files.length; i = next++) {
      const rel = files[i] as string;
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${rel}`, Body: await fs.readFile(path.join(dir, rel)) }));
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return files.map((f) => `${prefix}${f}`);
}
