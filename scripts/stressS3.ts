/**
 * `npm run stress -- --s3 --seeds N [--first S] [--versions 2.8.2,3.0.0] [--keep-failures DIR]`:
 * stress.ts's random scenarios on object storage (issue 24). One Ceph radosgw
 * (radosgw.ts) serves the whole run; for each seed and registry version:
 *  1. The seed's scenario (stress.ts's generator) is pushed through the real
 *     registry of that version twice: with the `s3` driver into a fresh bucket
 *     (rootdirectory `/reg`), and onto a filesystem root. Same seed, same
 *     content, same digests; before any run the bucket's keys below `reg/`
 *     and the root's files must already be the same set (a harness check).
 *  2. The seed's purge on both: `regsweep --config <the bucket's config> --yes
 *     --grace 0s --json` and `regsweep --path ROOT --yes --grace 0s --json`
 *     (both `--registry-bin` of that version; the default sweep is builtin).
 *  3. The bucket's keys below the root and the root's files must be the same
 *     set of relative paths. Files only: a bucket has no directories, and a
 *     filesystem keeps its emptied ones. `_uploads` is compared by count of
 *     upload ids per repository, not by path: the ids are random, and an
 *     unfinished upload's `data` is an S3 multipart upload (no key) on a
 *     bucket but a file on disk. `.regsweep.lock` must be gone from both.
 *     The two reports must hold the same plan (manifests, tags, index
 *     entries, repositories, spared), the same `predicted` and `before`,
 *     `freed` equal to `predicted`, exit 0 and no problems, or exit 1 and the
 *     same problems on both (the scenario's own: a repository spared because
 *     an index there lists a child deleted through the API); `after` the same but for
 *     `repositories`: a repository whose every file went (on disk its emptied
 *     directories stay, and a filesystem run counts it) has no key left in the
 *     bucket, so the bucket's count is lower by exactly the repositories that
 *     hold directories and no file on disk after the run.
 *  4. The registry serves the bucket again: every tag and revision left pulls
 *     whole; what fails there is pulled from the filesystem root too, and
 *     fails on both only when the scenario broke it (a deleted child).
 *
 * One line per seed; a difference lists the exact entries on each side
 * ("bucket" and "disk"). Exit 1 on any difference or failure.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AbortMultipartUploadCommand, DeleteBucketCommand, DeleteObjectsCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { dump } from 'js-yaml';
import { type Radosgw, S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, startRadosgw } from './radosgw.js';
import {
  type Difference,
  type Ran,
  type RegistryBinary,
  type StorageDriver,
  type TreeSummary,
  buildTree,
  comparePulls,
  copyTree,
  differenceLines,
  featureList,
  filesUnder,
  listTree,
  problemsOf,
  pullAll,
  pullRefs,
  regsweep,
  runFailure,
  setDifference,
} from './stress.js';

const ROOTDIRECTORY = '/reg';
const PREFIX = 'reg/';
const LOCK = '.regsweep.lock';
const UPLOAD = /^(docker\/registry\/v2\/repositories\/.+?)\/_uploads\/([^/]+)\//;

export interface S3SeedOptions {
  seed: number;
  registry: RegistryBinary;
  /** The radosgw of the whole run: the seed makes a bucket of its own there, and removes it after. */
  rgw: Radosgw;
  /** Copies the disk tree, the bucket's key list and the reports here (DIR/s3-<version>-seed-<seed>) on a difference. */
  keepFailures?: string;
  /** Runs regsweep on the disk with --dry-run instead of --yes: the comparison must then find differences (proves it can fail). */
  dryRunOnDisk?: boolean;
}

export interface S3SeedResult {
  seed: number;
  version: string;
  summary: TreeSummary;
  counts: { keysBefore: number; keysAfter: number; blobsBefore: number; blobsAfter: number; removed: number; predicted: number; freed: number | null };
  differences: Difference[];
  pulls: { ok: number; failedOnBoth: string[] };
  /** The problems the bucket's run reported (the disk's must be the same). */
  problems: string[];
  keptAt?: string;
  durationMs: number;
}

/**
 * The registry's storage for a bucket of this radosgw, as test/support/s3Registry.ts serves it:
 * the `s3` section, and blobs served by the registry itself (not a 307 to a presigned URL).
 */
function s3Driver(rgw: Radosgw, bucket: string): StorageDriver {
  const keys = { accesskey: S3_ACCESS_KEY, secretkey: S3_SECRET_KEY };
  const s3 = { region: S3_REGION, regionendpoint: rgw.endpoint, bucket, ...keys, secure: false, v4auth: true, forcepathstyle: true, rootdirectory: ROOTDIRECTORY };
  return { s3, redirect: { disable: true } };
}

/** Every key of the bucket. */
async function allKeys(rgw: Radosgw, bucket: string, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await rgw.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key as string);
    token = page.NextContinuationToken;
  } while (token);
  return keys;
}

/** The bucket's keys below the root, relative to it; any key outside the root is listed as `../KEY`. */
async function bucketFiles(rgw: Radosgw, bucket: string): Promise<string[]> {
  return (await allKeys(rgw, bucket)).map((k) => (k.startsWith(PREFIX) ? k.slice(PREFIX.length) : `../${k}`)).sort();
}

/** The files below a filesystem root (empty directories left out). */
async function diskFiles(root: string): Promise<string[]> {
  return (await filesUnder(root)).filter((f) => !f.endsWith('/')).sort();
}

/** The files outside `_uploads`, and per repository the number of upload ids (`REPOSITORY: N uploads`). */
function splitUploads(files: string[]): { files: Set<string>; uploads: Set<string> } {
  const rest = new Set<string>();
  const ids = new Map<string, Set<string>>();
  for (const f of files) {
    const m = UPLOAD.exec(f);
    if (!m) rest.add(f);
    else ids.set(m[1] as string, (ids.get(m[1] as string) ?? new Set()).add(m[2] as string));
  }
  return { files: rest, uploads: new Set([...ids].map(([repo, set]) => `${repo}: ${set.size} uploads`)) };
}

/** The bucket's files against the disk's, `_uploads` by count; `when` names the moment (`pushed`, `after`). */
function compareFiles(when: string, bucket: string[], disk: string[]): Difference[] {
  const [b, d] = [splitUploads(bucket), splitUploads(disk)];
  const out = [setDifference(`${when}: files`, b.files, d.files), setDifference(`${when}: uploads`, b.uploads, d.uploads, 'upload ids per repository')];
  return out.filter((x): x is Difference => x !== undefined);
}

interface RunReport {
  plan: Record<string, unknown[]>;
  predicted: { blobs: number; bytes: number };
  freed: { blobs: number; bytes: number } | null;
  before: Record<string, number>;
  after: Record<string, number>;
  problems: unknown[];
}

function reportOf(ran: Ran): RunReport | undefined {
  try {
    return JSON.parse(ran.stdout) as RunReport;
  } catch {
    return undefined;
  }
}

/**
 * Each side must have run to the end with a report: exit 0, or exit 1 with
 * the problems it says (the scenario's own: a repository spared for an index
 * whose child was deleted through the API; compareReports holds them equal on
 * both sides); and freed = predicted.
 */
function checkRun(side: string, ran: Ran): Difference[] {
  const report = reportOf(ran);
  if (!report || (ran.code !== 0 && (ran.code !== 1 || problemsOf(ran).length === 0))) return [runFailure(`regsweep on the ${side}`, ran)];
  const out: Difference[] = [];
  if (JSON.stringify(report.freed) !== JSON.stringify(report.predicted)) {
    out.push({ what: 'freed', onlyInA: [], onlyInB: [], note: `the ${side} freed ${JSON.stringify(report.freed)}, predicted ${JSON.stringify(report.predicted)}` });
  }
  return out;
}

const entries = (xs: unknown[] | undefined): Set<string> => new Set((xs ?? []).map((x) => JSON.stringify(x)));

/** Plan, prediction, problems and totals of the bucket's report against the disk's; `emptied` repositories are counted on disk only. */
function compareReports(onBucket: RunReport, onDisk: RunReport, emptied: number): Difference[] {
  const out: Array<Difference | undefined> = [setDifference('problems', entries(onBucket.problems), entries(onDisk.problems))];
  const parts = new Set([...Object.keys(onBucket.plan), ...Object.keys(onDisk.plan)]);
  for (const part of [...parts].sort()) out.push(setDifference(`plan.${part}`, entries(onBucket.plan[part]), entries(onDisk.plan[part])));
  const after = { ...onBucket.after, repositories: (onBucket.after.repositories ?? 0) + emptied };
  for (const [what, b, d] of [['predicted', onBucket.predicted, onDisk.predicted], ['before', onBucket.before, onDisk.before], ['after', after, onDisk.after]] as const) {
    const [jb, jd] = [JSON.stringify(b), JSON.stringify(d)];
    if (jb !== jd) out.push({ what, onlyInA: [jb], onlyInB: [jd], note: what === 'after' ? `bucket's repositories + ${emptied} emptied on disk` : undefined });
  }
  return out.filter((x): x is Difference => x !== undefined);
}

/** Repositories with directories and no file on disk (a filesystem keeps them; a bucket has nothing there). */
async function emptiedRepositories(root: string): Promise<number> {
  const base = path.join(root, 'docker/registry/v2/repositories');
  const all = await filesUnder(base);
  const repoOf = (rel: string): string | undefined => {
    const parts = rel.split('/');
    const at = parts.findIndex((p) => p.startsWith('_'));
    return at > 0 ? parts.slice(0, at).join('/') : undefined;
  };
  const holding = new Set(all.filter((f) => !f.endsWith('/')).map(repoOf));
  const named = new Set(all.map(repoOf).filter((r): r is string => r !== undefined));
  return [...named].filter((r) => !holding.has(r)).length;
}

/** Removes the bucket, its keys and any unfinished multipart upload (an unfinished registry upload's data). */
async function removeBucket(rgw: Radosgw, bucket: string): Promise<void> {
  const c = rgw.client;
  const uploads = (await c.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
  for (const u of uploads) await c.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
  for (let keys = await allKeys(rgw, bucket); keys.length > 0; keys = await allKeys(rgw, bucket)) {
    await c.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.slice(0, 1000).map((Key) => ({ Key })), Quiet: true } }));
  }
  await c.send(new DeleteBucketCommand({ Bucket: bucket }));
}

interface Seed {
  opts: S3SeedOptions;
  work: string;
  bucket: string;
  driver: StorageDriver;
  config: string;
  root: string;
  log: Record<string, string>;
}

/** The seed pushed into its bucket and onto its root: the scenario and the two listings before any run. */
async function pushBoth(s: Seed): Promise<{ summary: TreeSummary; bucket: string[]; disk: string[] }> {
  const { seed, registry, rgw } = s.opts;
  await rgw.createBucket(s.bucket);
  const summary = await buildTree(path.join(s.work, 'unused'), seed, registry.bin, s.work, s.driver);
  await fs.writeFile(s.config, dump({ version: '0.1', log: { level: 'warn' }, storage: { ...s.driver, delete: { enabled: true } } }));
  await fs.mkdir(s.root);
  const onDisk = await buildTree(s.root, seed, registry.bin, s.work);
  if (JSON.stringify(onDisk) !== JSON.stringify(summary)) throw new Error(`seed ${seed}: the scenario pushed onto the disk is not the one pushed into the bucket`);
  s.log['scenario.json'] = `${JSON.stringify(summary, null, 2)}\n`;
  return { summary, bucket: await bucketFiles(rgw, s.bucket), disk: await diskFiles(s.root) };
}

/** The seed's purge on both sides, each run's log kept. */
async function purgeBoth(s: Seed, purge: string[]): Promise<{ onBucket: Ran; onDisk: Ran }> {
  const common = ['--grace', '0s', '--json', '--registry-bin', s.opts.registry.bin, ...purge];
  const onBucket = await regsweep(['--config', s.config, '--yes', ...common]);
  const onDisk = await regsweep(['--path', s.root, s.opts.dryRunOnDisk ? '--dry-run' : '--yes', ...common]);
  for (const [name, ran] of [['regsweep-bucket.json', onBucket], ['regsweep-disk.json', onDisk]] as const) {
    s.log[name] = `${ran.command.join(' ')}\nexit ${ran.code}\n${ran.stderr}\n${ran.stdout}`;
  }
  return { onBucket, onDisk };
}

/** Files, lock, reports: what differs between the bucket and the disk after their runs. */
async function compareAfter(s: Seed, ran: { onBucket: Ran; onDisk: Ran }): Promise<{ differences: Difference[]; bucket: string[] }> {
  const [bucket, disk] = [await bucketFiles(s.opts.rgw, s.bucket), await diskFiles(s.root)];
  s.log['keys-after.txt'] = `${bucket.join('\n')}\n`;
  const differences = [...checkRun('bucket', ran.onBucket), ...checkRun('disk', ran.onDisk), ...compareFiles('after', bucket, disk)];
  const locks = [bucket.includes(LOCK) ? 'bucket' : '', disk.includes(LOCK) ? 'disk' : ''].filter(Boolean);
  if (locks.length > 0) differences.push({ what: 'lock', onlyInA: [], onlyInB: [], note: `${LOCK} left on the ${locks.join(' and the ')}` });
  const [rb, rd] = [reportOf(ran.onBucket), reportOf(ran.onDisk)];
  if (rb && rd) differences.push(...compareReports(rb, rd, await emptiedRepositories(s.root)));
  return { differences, bucket };
}

async function keep(s: Seed, text: string): Promise<string> {
  const dir = path.join(path.resolve(s.opts.keepFailures as string), `s3-${s.opts.registry.version}-seed-${s.opts.seed}`);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  if (await fs.stat(s.root).then(() => true, () => false)) await copyTree(s.root, path.join(dir, 'disk'));
  await fs.copyFile(s.config, path.join(dir, 'bucket-config.yml')).catch(() => undefined);
  for (const [name, content] of Object.entries(s.log)) await fs.writeFile(path.join(dir, name), content);
  await fs.writeFile(path.join(dir, 'report.txt'), text);
  return dir;
}

const blobCount = (files: string[]): number => files.filter((f) => /^docker\/registry\/v2\/blobs\/sha256\/[a-f0-9]{2}\/[a-f0-9]{64}\/data$/.test(f)).length;

/** Pushes the seed into a bucket and onto a disk, purges both alike, compares, and pulls the bucket whole. */
export async function runS3Seed(opts: S3SeedOptions): Promise<S3SeedResult> {
  const started = Date.now();
  const work = await fs.mkdtemp(path.join(os.tmpdir(), `regsweep-stress-s3-${opts.registry.version}-${opts.seed}-`));
  const bucket = `stress-${opts.registry.version.replaceAll('.', '-')}-seed-${opts.seed}`;
  const driver = s3Driver(opts.rgw, bucket);
  const s: Seed = { opts, work, bucket, driver, config: path.join(work, 'bucket.yml'), root: path.join(work, 'disk'), log: {} };
  try {
    const pushed = await pushBoth(s);
    const ran = await purgeBoth(s, pushed.summary.purgeArgs);
    const after = await compareAfter(s, ran);
    const differences = [...compareFiles('pushed', pushed.bucket, pushed.disk), ...after.differences];
    const { bin } = opts.registry;
    const pulls = await comparePulls((refs) => pullAll(work, bin, refs, driver), (refs) => pullAll(s.root, bin, refs), pullRefs(await listTree(s.root)));
    if (pulls.difference) differences.push({ ...pulls.difference, note: 'these fail on the bucket and pull whole from the disk' });
    const report = reportOf(ran.onBucket);
    const result: S3SeedResult = {
      seed: opts.seed,
      version: opts.registry.version,
      summary: pushed.summary,
      counts: {
        keysBefore: pushed.bucket.length,
        keysAfter: after.bucket.length,
        blobsBefore: blobCount(pushed.bucket),
        blobsAfter: blobCount(after.bucket),
        removed: report?.plan.manifests?.length ?? 0,
        predicted: report?.predicted.blobs ?? 0,
        freed: report?.freed?.blobs ?? null,
      },
      differences,
      pulls: { ok: pulls.ok, failedOnBoth: pulls.failedOnBoth },
      problems: problemsOf(ran.onBucket),
      durationMs: Date.now() - started,
    };
    if (differences.length > 0 && opts.keepFailures) result.keptAt = await keep(s, formatS3Result(result));
    return result;
  } finally {
    await removeBucket(opts.rgw, bucket).catch(() => undefined);
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** One line per seed, then on a difference every differing entry, bucket against disk. */
export function formatS3Result(r: S3SeedResult): string {
  const c = r.counts;
  const purge = r.summary.purgeArgs.length > 0 ? r.summary.purgeArgs.join(' ') : '(default purge)';
  const broken = r.pulls.failedOnBoth.length ? ` (${r.pulls.failedOnBoth.length} broken on both sides)` : '';
  const head =
    `s3 ${r.version} seed ${r.seed}: ${r.differences.length === 0 ? 'same' : 'DIFFERENT'} — ` +
    `${r.summary.repositories.length} repositories, keys ${c.keysBefore} → ${c.keysAfter}, blobs ${c.blobsBefore} → ${c.blobsAfter} ` +
    `(predicted ${c.predicted}, freed ${c.freed ?? '-'}), ${c.removed} revisions removed, ${r.pulls.ok} pulls whole${broken}; ${purge}; ${(r.durationMs / 1000).toFixed(1)} s`;
  const lines = [head, `  scenario: ${featureList(r.summary.features)}`];
  if (r.pulls.failedOnBoth.length > 0) lines.push(`  broken on both sides alike, by the scenario: ${r.pulls.failedOnBoth.join(', ')}`);
  if (r.problems.length > 0) lines.push(`  problems reported: ${JSON.stringify(r.problems)}`);
  lines.push(...differenceLines(r.differences, ['bucket', 'disk']));
  if (r.keptAt) lines.push(`  kept in ${r.keptAt}`);
  return `${lines.join('\n')}\n`;
}

/** The S3 stress run: one radosgw for every seed and version; exit 1 on any difference. */
export async function s3Main(args: { seeds: number; first: number; registries: RegistryBinary[]; keepFailures?: string }): Promise<number> {
  // regsweep's SDK must not look for instance metadata; its notice about Node 22 is for whoever upgrades it.
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const started = Date.now();
  const rgw = await startRadosgw();
  const different: string[] = [];
  try {
    console.log(`radosgw ${rgw.endpoint} started in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    for (const registry of args.registries) {
      console.log(`registry ${registry.version} on s3: ${registry.bin}; seeds ${args.first} … ${args.first + args.seeds - 1}`);
      for (let seed = args.first; seed < args.first + args.seeds; seed++) {
        const result = await runS3Seed({ seed, registry, rgw, keepFailures: args.keepFailures }).catch((error: Error) => error);
        if (result instanceof Error) console.log(`s3 ${registry.version} seed ${seed}: FAILED — ${result.message}`);
        else process.stdout.write(formatS3Result(result));
        if (result instanceof Error || result.differences.length > 0) different.push(`${registry.version} seed ${seed}`);
      }
    }
  } finally {
    await rgw.stop();
  }
  const total = args.seeds * args.registries.length;
  console.log(`s3: ${total - different.length} of ${total} seeds the same in ${((Date.now() - started) / 1000).toFixed(0)} s${different.length ? `; different: ${different.join(', ')}` : ''}`);
  return different.length > 0 ? 1 : 0;
}
