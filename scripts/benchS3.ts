/**
 * The bench on object storage (`npm run bench -- --sizes s3`): the bench
 * tree written straight into a bucket of a real Ceph radosgw (radosgw.ts),
 * then regsweep's dry run (`--config CFG --dry-run --json --grace 0s`)
 * against the registry's `garbage-collect --dry-run CFG` on that bucket,
 * with the same config, interleaved. Both only read: the bucket is all
 * that is shared between runs.
 *
 * Requests: regsweep's from its own report; garbage-collect's from a
 * counting proxy on loopback between it and radosgw. The proxy forwards each
 * request as it came, Host header included, so the client's v4 signature
 * (which covers Host) still verifies. It is used in the unmeasured first
 * round only, by both contenders (regsweep's proxied count checks its report);
 * the timed rounds go straight to radosgw, so the proxy's own cost is in no
 * time quoted.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { dump } from 'js-yaml';
import tar from 'tar-stream';
import { type Run, median, medianMs, medianRssMiB, regsweep, rounds, timed } from './benchRuns.js';
import { type TreeSpec, type TreeStats, packBenchTree } from './benchTree.js';
import { RADOSGW_MISSING, type Radosgw, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, startRadosgw } from './radosgw.js';

/** Requests in all and by S3 operation. */
interface RequestCount {
  total: number;
  byOperation: Record<string, number>;
}

export interface S3Result {
  name: string;
  /** Objects written into the bucket (the tree's files). */
  objects: number;
  revisions: number;
  /** Seconds the bucket took to write (not a contender: how the tree got there). */
  writeMs: number;
  regsweepMs: number;
  rssMiB: number;
  gcMs: number;
  /** From regsweep's report: the timed rounds' totals (their median is quoted), the by-operation split of the last. */
  regsweepRequests: RequestCount & { totals: number[] };
  /** What the proxy saw of regsweep's counted run, and what its report of that run said: the check on the report. */
  regsweepProxied: RequestCount & { reported: number };
  /** What the proxy saw of garbage-collect's counted run. */
  gcRequests: RequestCount;
  /** garbage-collect's summary line (`N blobs marked, …`), to show it read the whole bucket. */
  gcSummary: string;
}

const BUCKET = 'regsweep-bench';
/** The registry's `rootdirectory`; keys are `bench/docker/registry/v2/…`. */
const ROOTDIRECTORY = '/bench';
const PUTS_IN_FLIGHT = 16;

/**
 * Writes the bench tree into the bucket object by object, straight from the
 * generator's tar stream (the same files, contents and layout paths as the
 * filesystem sizes), `PUTS_IN_FLIGHT` at a time: an entry is taken from the
 * stream only when a slot is free.
 */
async function writeBenchBucket(client: S3Client, spec: TreeSpec): Promise<TreeStats & { objects: number }> {
  const prefix = `${ROOTDIRECTORY.replace(/^\/+/, '')}/`;
  const pack = tar.pack();
  const extract = tar.extract();
  const inFlight = new Set<Promise<void>>();
  let objects = 0;
  let failed: Error | undefined;
  extract.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
    stream.on('end', () => {
      const put: Promise<void> = client
        .send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}${header.name}`, Body: Buffer.concat(chunks) }))
        .then(
          () => void objects++,
          (error: unknown) => void (failed ??= new Error(`PUT ${header.name}: ${String(error)}`)),
        )
        .finally(() => inFlight.delete(put));
      inFlight.add(put);
      if (inFlight.size < PUTS_IN_FLIGHT) next(failed);
      else void Promise.race(inFlight).then(() => next(failed));
    });
  });
  const [stats] = await Promise.all([packBenchTree(pack, spec), pipeline(pack, extract)]);
  await Promise.all(inFlight);
  if (failed) throw failed;
  return { ...stats, objects };
}

/** The S3 operation a path-style request is, by method, key and query (as the SDK names them). */
function operationOf(method: string, url: string): string {
  const u = new URL(url, 'http://proxy');
  const key = u.pathname.split('/').slice(2).join('/');
  const q = u.searchParams;
  if (key === '') {
    if (method === 'GET') return q.get('list-type') === '2' ? 'ListObjectsV2' : q.has('uploads') ? 'ListMultipartUploads' : 'ListObjects';
    if (method === 'POST' && q.has('delete')) return 'DeleteObjects';
    return method === 'HEAD' ? 'HeadBucket' : `${method} bucket`;
  }
  if (q.has('uploadId') || q.has('uploads')) return `${method} multipart`;
  return { GET: 'GetObject', HEAD: 'HeadObject', PUT: 'PutObject', DELETE: 'DeleteObject' }[method] ?? `${method} object`;
}

/** Hop-by-hop headers: they describe one connection, not the request. */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'expect', 'te', 'trailer']);
const endToEnd = (headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders => Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP.has(k)));

interface CountingProxy {
  endpoint: string;
  /** The requests since the last take, and a fresh count from here on. */
  take(): RequestCount;
  close(): Promise<void>;
}

/** An HTTP proxy on 127.0.0.1 in front of `upstream` that counts the requests it forwards, by operation. */
async function startCountingProxy(upstream: string): Promise<CountingProxy> {
  const target = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let count: RequestCount = { total: 0, byOperation: {} };
  const server = http.createServer((req, res) => {
    const operation = operationOf(req.method ?? 'GET', req.url ?? '/');
    count.total++;
    count.byOperation[operation] = (count.byOperation[operation] ?? 0) + 1;
    // The Host header goes through as the client signed it.
    const forward = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: endToEnd(req.headers), agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers));
      answer.pipe(res);
    });
    forward.on('error', (error) => res.destroy(error));
    req.pipe(forward);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    take() {
      const taken = count;
      count = { total: 0, byOperation: {} };
      return taken;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

/** The registry's config for the bench bucket reached at `endpoint` (radosgw itself, or the proxy), as test/support/s3Registry.ts writes it. */
function registryConfig(endpoint: string): string {
  return dump({
    version: '0.1',
    log: { level: 'error', accesslog: { disabled: true } },
    storage: {
      s3: { region: S3_REGION, regionendpoint: endpoint, bucket: BUCKET, accesskey: S3_ACCESS_KEY, secretkey: S3_SECRET_KEY, secure: false, v4auth: true, forcepathstyle: true, rootdirectory: ROOTDIRECTORY },
      delete: { enabled: true },
      redirect: { disable: true },
    },
  });
}

/**
 * One environment for both contenders: no REGISTRY_* overrides (both would
 * apply them), no AWS_CA_BUNDLE (2.8.2's s3 driver panics on this machine's),
 * and no instance metadata lookups by the SDK's credential chain.
 */
function contenderEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_') && k !== 'AWS_CA_BUNDLE'));
  return { ...env, AWS_EC2_METADATA_DISABLED: 'true' };
}

interface Contenders {
  regsweep: (config: string) => Promise<Run>;
  gc: (config: string, keepStdout?: boolean) => Promise<Run>;
}

function contenders(gcBin: string): Contenders {
  const env = contenderEnv();
  return {
    // --registry-bin: the version says how the registry enumerates repositories; the same binary as garbage-collect.
    regsweep: (config) => regsweep(['--config', config, '--dry-run', '--json', '--grace', '0s', '--registry-bin', gcBin], { stdout: true, env }),
    gc: (config, keepStdout = false) => timed(gcBin, ['garbage-collect', '--dry-run', config], { stdout: keepStdout, env }),
  };
}

const reportedRequests = (run: Run): RequestCount => {
  const requests = (JSON.parse(run.stdout ?? '{}') as { requests?: RequestCount | null }).requests;
  if (!requests) throw new Error('regsweep reported no requests: was the bucket read?');
  return requests;
};

interface Counted {
  regsweepProxied: RequestCount;
  regsweepReported: RequestCount;
  gcRequests: RequestCount;
  gcSummary: string;
}

/** The interleaved rounds: the first (unmeasured) through the counting proxy, the timed ones straight to radosgw. */
async function measureBucket(rgw: Radosgw, dir: string, gcBin: string, reps: number): Promise<{ runs: Record<'regsweep' | 'gc', Run[]>; counted: Counted }> {
  const proxy = await startCountingProxy(rgw.endpoint);
  try {
    const direct = path.join(dir, 'direct.yml');
    const proxied = path.join(dir, 'proxied.yml');
    await fs.writeFile(direct, registryConfig(rgw.endpoint));
    await fs.writeFile(proxied, registryConfig(proxy.endpoint));
    const run = contenders(gcBin);
    const counted: Partial<Counted> = {};
    proxy.take();
    const runs = await rounds(
      's3',
      reps,
      { regsweep: () => run.regsweep(direct), gc: () => run.gc(direct) },
      {
        regsweep: async () => {
          const r = await run.regsweep(proxied);
          counted.regsweepProxied = proxy.take();
          counted.regsweepReported = reportedRequests(r);
        },
        gc: async () => {
          const r = await run.gc(proxied, true);
          counted.gcRequests = proxy.take();
          counted.gcSummary = (r.stdout ?? '').split('\n').find((l) => /blobs marked/.test(l))?.trim() ?? '(no summary line)';
        },
      },
    );
    return { runs, counted: counted as Counted };
  } finally {
    await proxy.close();
  }
}

interface NotMeasured {
  name: string;
  reason: string;
}

/** The bucket size: radosgw started, the tree written, both contenders run; not measured when radosgw or the registry is missing. */
export async function measureS3(name: string, spec: TreeSpec, reps: number, gcBin: string | undefined): Promise<S3Result | NotMeasured> {
  if (RADOSGW_MISSING) return { name, reason: RADOSGW_MISSING };
  if (!gcBin) return { name, reason: 'no registry binary (docker-registry) for garbage-collect --dry-run' };
  // The SDK's notice that its 2027 releases need Node 22 is for whoever upgrades it (src/storage/s3/client.ts says why).
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'regsweep-bench-s3-'));
  let rgw: Radosgw | undefined;
  try {
    process.stderr.write(`starting radosgw, then writing the ${name} tree (${spec.repositories} repositories × ${spec.tagsPerRepository} tags × ${spec.revisionsPerTag} revisions) into a bucket…\n`);
    rgw = await startRadosgw();
    await rgw.createBucket(BUCKET);
    const started = Date.now();
    const written = await writeBenchBucket(rgw.client, spec);
    const writeMs = Date.now() - started;
    const { runs, counted } = await measureBucket(rgw, dir, gcBin, reps);
    const last = runs.regsweep[runs.regsweep.length - 1] as Run;
    const totals = runs.regsweep.map((r) => reportedRequests(r).total);
    return {
      name,
      objects: written.objects,
      revisions: written.revisions,
      writeMs,
      regsweepMs: medianMs(runs.regsweep),
      rssMiB: medianRssMiB(runs.regsweep),
      gcMs: medianMs(runs.gc),
      regsweepRequests: { ...reportedRequests(last), total: median(totals), totals },
      regsweepProxied: { ...counted.regsweepProxied, reported: counted.regsweepReported.total },
      gcRequests: counted.gcRequests,
      gcSummary: counted.gcSummary,
    };
  } finally {
    await rgw?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Issue 24's words: regsweep's dry run on the bucket "at most 0.1x" garbage-collect's, "and at most 0.15x its requests". */
export function s3Targets(results: S3Result[]): Array<{ what: string; ok: boolean; measured: string }> {
  return results.flatMap((r) => {
    const time = r.regsweepMs / r.gcMs;
    const requests = r.regsweepRequests.total / r.gcRequests.total;
    return [
      { what: `${r.name}: regsweep's dry run on the bucket ≤ 0.1× the time of the registry's garbage-collect --dry-run`, ok: time <= 0.1, measured: `${time.toFixed(3)}× (${(r.regsweepMs / 1000).toFixed(2)} s / ${(r.gcMs / 1000).toFixed(2)} s)` },
      { what: `${r.name}: regsweep's requests ≤ 0.15× garbage-collect's`, ok: requests <= 0.15, measured: `${requests.toFixed(3)}× (${r.regsweepRequests.total.toLocaleString('en')} / ${r.gcRequests.total.toLocaleString('en')})` },
    ];
  });
}

const operations = (c: RequestCount): string =>
  Object.entries(c.byOperation)
    .sort((a, b) => b[1] - a[1])
    .map(([op, n]) => `${op} ${n.toLocaleString('en')}`)
    .join(', ');

/** The bucket's table and what each contender sent, for the bench's output. */
export function renderS3(results: S3Result[], reps: number): string[] {
  if (results.length === 0) return [];
  const lines = [
    '',
    `On a bucket of a real Ceph radosgw (16, one memstore OSD, loopback), the tree written object by object into \`${BUCKET}\` under rootdirectory \`${ROOTDIRECTORY}\`: regsweep's dry run (\`--config CFG --dry-run --json --grace 0s\`) against \`docker-registry garbage-collect --dry-run CFG\` with the same config. Medians of ${reps} interleaved rounds straight to radosgw; the unmeasured first round of each went through a counting proxy on loopback, which gives garbage-collect's requests (regsweep's come from its report).`,
    '',
    '| tree | objects | revisions | regsweep dry run | peak RSS | requests | gc --dry-run | requests | time ratio | requests ratio |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.name} | ${r.objects.toLocaleString('en')} | ${r.revisions.toLocaleString('en')} | ${(r.regsweepMs / 1000).toFixed(2)} s | ${r.rssMiB.toFixed(0)} MiB | ${r.regsweepRequests.total.toLocaleString('en')} | ${(r.gcMs / 1000).toFixed(2)} s | ${r.gcRequests.total.toLocaleString('en')} | ${(r.regsweepMs / r.gcMs).toFixed(3)}× | ${(r.regsweepRequests.total / r.gcRequests.total).toFixed(3)}× |`,
    );
  }
  for (const r of results) {
    lines.push(
      '',
      `${r.name}: written in ${(r.writeMs / 1000).toFixed(1)} s. regsweep's requests (its report): ${operations(r.regsweepRequests)}; per timed round ${r.regsweepRequests.totals.join(', ')}; in the proxied round the proxy counted ${r.regsweepProxied.total.toLocaleString('en')} (${operations(r.regsweepProxied)}) where its report said ${r.regsweepProxied.reported.toLocaleString('en')}. garbage-collect's (the proxy): ${operations(r.gcRequests)}; it said: \`${r.gcSummary}\`.`,
    );
  }
  return lines;
}
