/**
 * `npm run bench`: regsweep's full dry run against the floor (`find` with a
 * stat per file) and the registry's own `garbage-collect --dry-run`, on
 * layout-exact trees of three sizes, interleaved and repeated, medians
 * quoted as ratios measured in the same run. Exits 1 when a target is missed.
 *
 * `--sizes million` (about a million revisions, 6.6 million files) is read
 * from a loop-mounted squashfs image instead (root and tar2sqfs needed;
 * without them it is reported as not measured), for peak RSS: only the dry
 * run is run on it.
 *
 * `--sizes s3` writes the small tree's shape at 60 repositories into a bucket
 * of a real Ceph radosgw started for the run, and sets regsweep's dry run on
 * it against the registry's garbage-collect --dry-run, time and requests
 * (benchS3.ts); without radosgw it is reported as not measured.
 *
 * `--pulls` measures instead what retention by last pull costs: reading the
 * pull index and reading a registry log (benchPulls.ts).
 *
 *   npm run bench -- [--sizes small,medium,large] [--reps 5] [--markdown BENCHMARKS.md] [--no-targets] [--windows-only] [--pulls]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs as parseArgv } from 'node:util';
import { applyPlan } from '../src/apply/apply.js';
import { emptyTrash, trashFor } from '../src/apply/trash.js';
import { findRegistryBinary } from '../src/gc/localRegistry.js';
import { planTree } from '../src/plan/planTree.js';
import { filesystemSource } from '../src/storage/fs/source.js';
import { type Run, median, medianMs, medianRssMiB, regsweep, rounds, timed } from './benchRuns.js';
import { type BenchImage, MissingPrerequisite, mountBenchImage, writableOverlay } from './benchImage.js';
import { measurePulls } from './benchPulls.js';
import { type S3Result, measureS3, renderS3, s3Targets } from './benchS3.js';
import { type TreeSpec, writeBenchTree } from './benchTree.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, '../..');

const SIZES: Record<string, TreeSpec> = {
  tiny: { repositories: 4, tagsPerRepository: 10, revisionsPerTag: 3 },
  small: { repositories: 30, tagsPerRepository: 10, revisionsPerTag: 8 },
  medium: { repositories: 300, tagsPerRepository: 10, revisionsPerTag: 8 },
  large: { repositories: 600, tagsPerRepository: 10, revisionsPerTag: 8 },
  // 1042 × 100 × 8 revisions, one tag in ten a list of two images (three revisions): 1,000,320.
  million: { repositories: 1042, tagsPerRepository: 100, revisionsPerTag: 8 },
  // Issue 24's bucket: 60 × 10 × 8, 5,760 manifests, written into a radosgw bucket; not a default size.
  s3: { repositories: 60, tagsPerRepository: 10, revisionsPerTag: 8 },
};

/** Too large to write file by file: mounted from an image, read-only; a real run works on an overlay of it. */
const FROM_IMAGE = new Set(['million']);
/** Written into a bucket of a radosgw started for the run. */
const ON_S3 = new Set(['s3']);

interface Args {
  sizes: string[];
  reps: number;
  markdown?: string;
  targets: boolean;
  /** Only the maintenance windows (garbage-collect's against the default run's), on the sizes written file by file. */
  windowsOnly: boolean;
  /** On an image, only the real run (its dry run takes half an hour at a million revisions). */
  realOnly: boolean;
  /** Only the pull benchmarks (the index, the log), their sizes times `pullsScale`. */
  pulls: boolean;
  pullsScale: number;
  dir: string;
}

function parseArgs(argv: string[]): Args {
  const { values } = parseArgv({
    args: argv,
    options: { sizes: { type: 'string' }, reps: { type: 'string' }, markdown: { type: 'string' }, dir: { type: 'string' }, 'no-targets': { type: 'boolean' }, 'windows-only': { type: 'boolean' }, 'real-only': { type: 'boolean' }, pulls: { type: 'boolean' }, 'pulls-scale': { type: 'string' } },
  });
  const args: Args = {
    sizes: values.sizes?.split(',') ?? ['small', 'medium', 'large'],
    reps: values.reps === undefined ? 5 : Number(values.reps),
    markdown: values.markdown,
    targets: !values['no-targets'],
    windowsOnly: values['windows-only'] ?? false,
    realOnly: values['real-only'] ?? false,
    pulls: values.pulls ?? false,
    pullsScale: values['pulls-scale'] === undefined ? 1 : Number(values['pulls-scale']),
    dir: values.dir === undefined ? path.join(projectRoot, '.bench') : path.resolve(values.dir),
  };
  for (const s of args.sizes) if (!SIZES[s]) throw new Error(`unknown size ${s} (${Object.keys(SIZES).join(', ')})`);
  if (!Number.isInteger(args.reps) || args.reps < 1) throw new Error('--reps takes a whole number');
  if (!(args.pullsScale > 0 && args.pullsScale <= 1)) throw new Error('--pulls-scale takes a number above 0, at most 1');
  return args;
}

const regsweepDryRun = (root: string, threads?: number): Promise<Run> =>
  regsweep(['--path', root, '--dry-run', '--no-gc', '--json', ...(threads ? ['--concurrency', String(threads)] : [])]);
/** A real run as a user starts one (the default sweep), for its peak RSS. */
const regsweepRealRun = (root: string): Promise<Run> => regsweep(['--path', root, '--yes', '--json', '--grace', '0s']);
const findFloor = (root: string): Promise<Run> => timed('find', [root, '-type', 'f', '-printf', '%s\\n']);
const gcDryRun = (bin: string, config: string): Promise<Run> => timed(bin, ['garbage-collect', '--dry-run', config]);

function countFiles(root: string): number {
  let n = 0;
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(dir, e.name));
      else n++;
    }
  };
  walk(root);
  return n;
}

/** The tree for a size, written once and reused while its spec is unchanged. */
function treeFor(dir: string, name: string, spec: TreeSpec): { root: string; files: number; revisions: number } {
  const root = path.join(dir, name);
  const marker = path.join(dir, `${name}.json`);
  const wanted = JSON.stringify(spec);
  if (fs.existsSync(marker)) {
    const saved = JSON.parse(fs.readFileSync(marker, 'utf8'));
    if (JSON.stringify(saved.spec) === wanted && fs.existsSync(root)) return { root, files: saved.files, revisions: saved.revisions };
  }
  fs.rmSync(root, { recursive: true, force: true });
  process.stderr.write(`writing the ${name} tree (${spec.repositories} repositories × ${spec.tagsPerRepository} tags × ${spec.revisionsPerTag} revisions)…\n`);
  const stats = writeBenchTree(root, spec);
  const files = countFiles(root);
  fs.writeFileSync(marker, JSON.stringify({ spec, files, revisions: stats.revisions }));
  return { root, files, revisions: stats.revisions };
}

/** A real run on a fresh copy of `root` (cp -a keeps the mtimes); the report's windowMs. */
async function realRunWindow(root: string, copy: string, gc: 'registry' | 'builtin', gcBin: string): Promise<number> {
  fs.rmSync(copy, { recursive: true, force: true });
  execFileSync('cp', ['-a', root, copy]);
  // A registry's tree is not 19k files written a second ago: both runs start with the copy on disk, not in writeback.
  execFileSync('sync');
  try {
    // The bench trees are minutes old: a grace of 0 s lets the builtin sweep take what the registry's takes.
    // The builtin side is the default run: no --gc at all.
    const mode = gc === 'registry' ? ['--gc', 'registry'] : [];
    const out = execFileSync(process.execPath, [path.join(projectRoot, 'bin/regsweep.js'), '--path', copy, '--yes', '--json', ...mode, '--grace', '0s', '--registry-bin', gcBin], {
      maxBuffer: 1 << 30,
    });
    return (JSON.parse(out.toString('utf8')) as { windowMs: number }).windowMs;
  } finally {
    fs.rmSync(copy, { recursive: true, force: true });
  }
}

/**
 * The maintenance window with the registry's garbage-collect and with --gc
 * builtin, on copies of the same tree, alternating, `reps` times each (at most 3: each run needs a fresh copy).
 */
async function measureWindows(root: string, copy: string, reps: number, gcBin: string): Promise<{ registry: number; builtin: number }> {
  const runs: Record<'registry' | 'builtin', number[]> = { registry: [], builtin: [] };
  for (let i = 0; i < Math.min(reps, 3); i++) {
    for (const gc of ['registry', 'builtin'] as const) runs[gc].push(await realRunWindow(root, copy, gc, gcBin));
  }
  return { registry: median(runs.registry), builtin: median(runs.builtin) };
}

/**
 * Removals per second of the real apply as it runs in the maintenance window
 * (re-check, then each removal a rename into the trash), on a copy of the tree;
 * and the time to empty the trash afterwards, with the registry serving again.
 */
async function measureApply(root: string, copy: string): Promise<{ removals: number; ms: number; trashMs: number }> {
  fs.rmSync(copy, { recursive: true, force: true });
  execFileSync('cp', ['-a', root, copy]);
  const { plan } = await planTree(filesystemSource(copy));
  const started = process.hrtime.bigint();
  const result = await applyPlan(copy, plan, { trash: trashFor(copy) });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const emptied = process.hrtime.bigint();
  await emptyTrash(copy);
  const trashMs = Number(process.hrtime.bigint() - emptied) / 1e6;
  fs.rmSync(copy, { recursive: true, force: true });
  return { removals: result.removals, ms, trashMs };
}

interface SizeResult {
  name: string;
  files: number;
  revisions: number;
  regsweepMs: number;
  rssMiB: number;
  /** Not measured on an image: find over millions of squashfs inodes took 18 minutes here, and no target needs it. */
  findMs?: number;
  gcMs?: number;
  applyPerSecond?: number;
  removals?: number;
  trashMs?: number;
  /** On an image: one real run (the default sweep) on an overlay of it. */
  real?: { ms: number; rssMiB: number };
  /** The maintenance window of a real run (report.windowMs), with the registry's garbage-collect and with --gc builtin. */
  windowMs?: { registry: number; builtin: number };
}

async function measureTree(name: string, args: Args, gcBin: string | undefined): Promise<SizeResult> {
  const spec = SIZES[name] as TreeSpec;
  const { root, files, revisions } = treeFor(args.dir, name, spec);
  const config = path.join(args.dir, `${name}.gc.yml`);
  fs.writeFileSync(config, `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n`);
  const runs = await rounds(name, args.reps, {
    find: () => findFloor(root),
    regsweep: () => regsweepDryRun(root),
    gc: gcBin ? () => gcDryRun(gcBin, config) : undefined,
  });
  // On every size written file by file, so removals per second can be compared across sizes too.
  const apply = await measureApply(root, path.join(args.dir, `${name}.apply-copy`));
  const windowMs = gcBin ? await measureWindows(root, path.join(args.dir, `${name}.window-copy`), args.reps, gcBin) : undefined;
  fs.rmSync(config);
  return {
    name,
    files,
    revisions,
    regsweepMs: medianMs(runs.regsweep),
    rssMiB: medianRssMiB(runs.regsweep),
    findMs: medianMs(runs.find),
    gcMs: gcBin ? medianMs(runs.gc) : undefined,
    applyPerSecond: apply.removals / (apply.ms / 1000),
    removals: apply.removals,
    trashMs: apply.trashMs,
    windowMs,
  };
}

const THREADS = [1, 2, 4, 8];

/** The medium dry run at each --concurrency, interleaved like the rest: does reading in parallel pay here? */
async function measureConcurrency(args: Args): Promise<Array<{ threads: number; ms: number; rssMiB: number }>> {
  const { root } = treeFor(args.dir, 'medium', SIZES.medium as TreeSpec);
  const contenders = Object.fromEntries(THREADS.map((t) => [String(t), () => regsweepDryRun(root, t)]));
  const runs = await rounds('medium --concurrency', args.reps, contenders);
  return THREADS.map((t) => ({ threads: t, ms: medianMs(runs[String(t)] ?? []), rssMiB: medianRssMiB(runs[String(t)] ?? []) }));
}

interface NotMeasured {
  name: string;
  reason: string;
}

/**
 * Only the dry run, for its peak RSS (the same command as on the other sizes);
 * nothing that writes. No warm-up round: a run takes minutes, and memory
 * does not depend on the page cache.
 */
async function measureImage(name: string, args: Args): Promise<SizeResult | NotMeasured> {
  let image: BenchImage;
  try {
    image = await mountBenchImage(args.dir, name, SIZES[name] as TreeSpec);
  } catch (err) {
    if (err instanceof MissingPrerequisite) return { name, reason: err.message };
    throw err;
  }
  try {
    const root = image.root;
    const runs = args.realOnly ? { regsweep: [] } : await rounds(name, args.reps, { regsweep: () => regsweepDryRun(root) }, false);
    const real = await realRunOn(image, args, name);
    const dry = runs.regsweep.length > 0 ? { regsweepMs: medianMs(runs.regsweep), rssMiB: medianRssMiB(runs.regsweep) } : { regsweepMs: Number.NaN, rssMiB: Number.NaN };
    return { name, files: image.files, revisions: image.revisions, ...dry, real };
  } finally {
    image.unmount();
  }
}

/** One real run on a writable overlay of the image: its time and peak RSS. */
async function realRunOn(image: BenchImage, args: Args, name: string): Promise<{ ms: number; rssMiB: number }> {
  const tree = writableOverlay(image, args.dir, name);
  try {
    process.stderr.write(`${name}: a real run on an overlay of the image…\n`);
    const run = await regsweepRealRun(tree.root);
    return { ms: run.ms, rssMiB: (run.maxRssKiB as number) / 1024 };
  } finally {
    tree.unmount();
  }
}

interface Target {
  what: string;
  ok: boolean;
  measured: string;
}

function targetsFor(results: SizeResult[]): Target[] {
  const targets: Target[] = [];
  const medium = results.find((r) => r.name === 'medium');
  if (medium) {
    const vsFind = medium.regsweepMs / (medium.findMs ?? Number.NaN);
    targets.push({ what: 'medium: full dry run ≤ 1.0× the find floor', ok: vsFind <= 1.0, measured: `${vsFind.toFixed(2)}×` });
    if (medium.gcMs !== undefined) {
      const vsGc = medium.regsweepMs / medium.gcMs;
      targets.push({ what: "medium: full dry run ≤ 0.33× the registry's garbage-collect --dry-run", ok: vsGc <= 0.33, measured: `${vsGc.toFixed(2)}×` });
    }
    targets.push({ what: 'medium: peak RSS ≤ 200 MiB', ok: medium.rssMiB <= 200, measured: `${medium.rssMiB.toFixed(0)} MiB` });
    const secondsFor20k = 20_000 / (medium.applyPerSecond ?? 0);
    targets.push({ what: 'medium: 20,000 removals in under 2 s', ok: secondsFor20k < 2, measured: `${secondsFor20k.toFixed(2)} s` });
  }
  for (const r of results) {
    if (!r.windowMs || (r.name !== 'small' && r.name !== 'medium')) continue;
    const ratio = r.windowMs.builtin / r.windowMs.registry;
    // Issue 23: the default run's window on the medium tree at most 0.03× garbage-collect's; the small tree, whose fixed costs weigh more, 0.1×.
    const target = r.name === 'medium' ? 0.03 : 0.1;
    targets.push({ what: `${r.name}: the window of the default run (--gc builtin) ≤ ${target}× the window with the registry's garbage-collect`, ok: ratio <= target, measured: `${ratio.toFixed(3)}× (${r.windowMs.builtin} ms / ${r.windowMs.registry} ms)` });
  }
  const million = results.find((r) => r.name === 'million');
  if (million && !Number.isNaN(million.rssMiB)) targets.push({ what: 'million: dry run peak RSS ≤ 256 MiB', ok: million.rssMiB <= 256, measured: `${million.rssMiB.toFixed(0)} MiB` });
  if (million?.real) targets.push({ what: 'million: real run peak RSS ≤ 256 MiB', ok: million.real.rssMiB <= 256, measured: `${million.real.rssMiB.toFixed(0)} MiB (${(million.real.ms / 1000).toFixed(0)} s)` });
  // Growth compares like with like: an image is another filesystem, read with another report.
  const sorted = results.filter((r) => !FROM_IMAGE.has(r.name)).sort((a, b) => a.files - b.files);
  const smallest = sorted[0];
  const largest = sorted[sorted.length - 1];
  if (smallest && largest && largest !== medium && largest.files >= 4 * smallest.files && medium) {
    // Linear growth: the per-file cost of the largest tree stays within 1.5× of the medium one.
    const per = (r: SizeResult): number => r.regsweepMs / r.files;
    const growth = per(largest) / per(medium);
    targets.push({ what: `growth: per-file cost of ${largest.name} ≤ 1.5× that of medium`, ok: growth <= 1.5, measured: `${growth.toFixed(2)}×` });
  }
  return targets;
}

function machine(dir: string): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  let fsType = 'unknown';
  try {
    fsType = execFileSync('df', ['-T', dir], { encoding: 'utf8' }).split('\n')[1]?.split(/\s+/)[1] ?? fsType;
  } catch {}
  return `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}, Node ${process.version}, ${fsType} filesystem`;
}

/**
 * Whether the kernel pages out idle memory on its own (DAMON's proactive
 * reclaim, action pageout): then the files a run reads leave the page cache
 * seconds later, and every contender reads part of the tree from disk again,
 * whatever the warm-up did.
 */
function proactiveReclaim(): string | undefined {
  // Any of it unreadable (no DAMON, no sysfs, no permission) just means it cannot be told.
  const read = (file: string): string | undefined => {
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const numbered = (dir: string): string[] => {
    try {
      return fs.readdirSync(dir).filter((d) => /^\d+$/.test(d));
    } catch {
      return [];
    }
  };
  const base = '/sys/kernel/mm/damon/admin/kdamonds';
  for (const k of numbered(base)) {
    if (read(path.join(base, k, 'state')) !== 'on') continue;
    const contexts = path.join(base, k, 'contexts');
    for (const c of numbered(contexts)) {
      const schemes = path.join(contexts, c, 'schemes');
      for (const sc of numbered(schemes)) {
        if (read(path.join(schemes, sc, 'action')) === 'pageout') return `DAMON kdamond ${k} (${read(path.join(contexts, c, 'operations')) ?? '?'}, pageout)`;
      }
    }
  }
  return undefined;
}

type ConcurrencyResult = Awaited<ReturnType<typeof measureConcurrency>>;

function render(results: SizeResult[], s3: S3Result[], notMeasured: NotMeasured[], concurrency: ConcurrencyResult, targets: Target[], args: Args, gcBin: string | undefined): string {
  const lines: string[] = [];
  lines.push(`Machine: ${machine(args.dir)}`);
  const reclaim = proactiveReclaim();
  // The page cache is the filesystem trees' business: a bucket lives in radosgw's memory.
  if (results.length > 0) {
    lines.push(
      reclaim
        ? `Medians of ${args.reps} interleaved rounds after one warm-up round. The page cache is not warm: ${reclaim} pages out idle file pages within seconds, so each run reads part of the tree from disk.`
        : `Medians of ${args.reps} interleaved rounds after one warm-up round; page cache warm.`,
    );
  }
  lines.push(gcBin ? `Registry: ${gcBin}` : 'Registry: no binary found; garbage-collect --dry-run not measured');
  if (results.length > 0) {
    lines.push('');
    lines.push('| tree | files | revisions | regsweep dry run | peak RSS | find floor | ratio to find | gc --dry-run | ratio to gc | µs per file | apply (paused) | emptying the trash (serving) |');
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  }
  for (const r of results) {
    const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
    lines.push(
      `| ${r.name} | ${r.files.toLocaleString('en')} | ${r.revisions.toLocaleString('en')} | ${s(r.regsweepMs)} | ${r.rssMiB.toFixed(0)} MiB | ${r.findMs === undefined ? '–' : s(r.findMs)} | ${r.findMs === undefined ? '–' : `${(r.regsweepMs / r.findMs).toFixed(2)}×`} | ${r.gcMs === undefined ? '–' : s(r.gcMs)} | ${r.gcMs === undefined ? '–' : `${(r.regsweepMs / r.gcMs).toFixed(2)}×`} | ${((r.regsweepMs * 1000) / r.files).toFixed(1)} | ${r.applyPerSecond === undefined ? '–' : `${(r.removals ?? 0).toLocaleString('en')} removals, ${Math.round(r.applyPerSecond).toLocaleString('en')}/s`} | ${r.trashMs === undefined ? '–' : s(r.trashMs)} |`,
    );
  }
  const fromImage = results.filter((r) => FROM_IMAGE.has(r.name)).map((r) => r.name);
  if (fromImage.length > 0) {
    lines.push('', `${fromImage.join(', ')}: a read-only squashfs image, loop-mounted; regsweep's dry run once per round, no warm-up (no find or garbage-collect --dry-run), then one real run (\`--yes --grace 0s\`, the default sweep) on an overlay of the image whose changes go to a tmpfs.`);
    for (const r of results.filter((x) => x.real)) lines.push('', `${r.name}, real run: ${((r.real?.ms ?? 0) / 1000).toFixed(0)} s, peak RSS ${(r.real?.rssMiB ?? 0).toFixed(0)} MiB.`);
  }
  lines.push(...renderS3(s3, args.reps));
  for (const n of notMeasured) lines.push('', `${n.name}: not measured (${n.reason}).`);
  const windows = results.filter((r) => r.windowMs);
  if (windows.length > 0) {
    lines.push('', "The maintenance window of a real run on a copy of each tree (`--path`, so nothing is paused; `windowMs` of the report): the registry's garbage-collect against `--gc builtin`:", '');
    lines.push('| tree | window, garbage-collect | window, --gc builtin | ratio |', '| --- | ---: | ---: | ---: |');
    for (const r of windows) {
      const w = r.windowMs as { registry: number; builtin: number };
      lines.push(`| ${r.name} | ${(w.registry / 1000).toFixed(2)} s | ${(w.builtin / 1000).toFixed(2)} s | ${(w.builtin / w.registry).toFixed(3)}× |`);
    }
  }
  if (concurrency.length > 0) {
    const one = concurrency.find((c) => c.threads === 1)?.ms ?? Number.NaN;
    lines.push('', 'Dry run of the medium tree by `--concurrency` (the default is the number of CPUs, at most 4):', '');
    lines.push('| threads | dry run | vs 1 thread | peak RSS |', '| ---: | ---: | ---: | ---: |');
    for (const c of concurrency) lines.push(`| ${c.threads} | ${(c.ms / 1000).toFixed(2)} s | ${(c.ms / one).toFixed(2)}× | ${c.rssMiB.toFixed(0)} MiB |`);
  }
  if (targets.length > 0) {
    lines.push('', '| target | measured | met |', '| --- | ---: | --- |');
    for (const t of targets) lines.push(`| ${t.what} | ${t.measured} | ${t.ok ? 'yes' : '**no**'} |`);
  }
  return `${lines.join('\n')}\n`;
}

/** `--windows-only`: the window of a real run with garbage-collect against the default run's, side by side, and its targets. */
async function windowsOnly(args: Args, gcBin: string | undefined): Promise<void> {
  if (!gcBin) throw new Error('--windows-only needs the registry binary (docker-registry)');
  const lines = ['| tree | window, garbage-collect | window, default run (--gc builtin) | ratio |', '| --- | ---: | ---: | ---: |'];
  const results: SizeResult[] = [];
  for (const name of args.sizes.filter((s) => !FROM_IMAGE.has(s) && !ON_S3.has(s))) {
    const { root, files, revisions } = treeFor(args.dir, name, SIZES[name] as TreeSpec);
    const windowMs = await measureWindows(root, path.join(args.dir, `${name}.window-copy`), args.reps, gcBin);
    results.push({ name, files, revisions, regsweepMs: Number.NaN, rssMiB: 0, windowMs });
    lines.push(`| ${name} | ${(windowMs.registry / 1000).toFixed(2)} s | ${(windowMs.builtin / 1000).toFixed(2)} s | ${(windowMs.builtin / windowMs.registry).toFixed(3)}× |`);
  }
  const targets = args.targets ? targetsFor(results).filter((t) => t.what.includes('window')) : [];
  if (targets.length > 0) lines.push('', '| target | measured | met |', '| --- | ---: | --- |', ...targets.map((t) => `| ${t.what} | ${t.measured} | ${t.ok ? 'yes' : '**no**'} |`));
  process.stdout.write(`Medians of ${Math.min(args.reps, 3)} alternating runs, each on a fresh copy (cp -a, sync).\n\n${lines.join('\n')}\n`);
  if (targets.some((t) => !t.ok)) process.exitCode = 1;
}

/** `--pulls`: the pull index and the log read, against their floors, and their targets. */
async function pullsOnly(args: Args): Promise<void> {
  const { markdown, targets } = await measurePulls(args.dir, args.reps, args.pullsScale);
  const shown = args.targets ? targets : [];
  const table = shown.length > 0 ? ['', '| target | measured | met |', '| --- | ---: | --- |', ...shown.map((t) => `| ${t.what} | ${t.measured} | ${t.ok ? 'yes' : '**no**'} |`), ''].join('\n') : '';
  const text = `Machine: ${machine(args.dir)}\nMedians of ${args.reps} alternating runs, each a fresh node.\n\n${markdown}${table}`;
  process.stdout.write(text);
  if (args.markdown) fs.writeFileSync(args.markdown, `# Pull benchmarks\n\nMeasured by \`npm run bench -- --pulls --reps ${args.reps}\` on ${new Date().toISOString().slice(0, 10)}.\n\n${text}`);
  if (shown.some((t) => !t.ok)) {
    process.stderr.write(`missed: ${shown.filter((t) => !t.ok).map((t) => t.what).join('; ')}\n`);
    process.exitCode = 1;
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  fs.mkdirSync(args.dir, { recursive: true });
  if (args.pulls) return pullsOnly(args);
  const gcBin = await findRegistryBinary(undefined);
  if (args.windowsOnly) return windowsOnly(args, gcBin);
  const results: SizeResult[] = [];
  const s3: S3Result[] = [];
  const notMeasured: NotMeasured[] = [];
  for (const size of args.sizes) {
    if (ON_S3.has(size)) {
      const outcome = await measureS3(size, SIZES[size] as TreeSpec, args.reps, gcBin);
      if ('reason' in outcome) notMeasured.push(outcome);
      else s3.push(outcome);
      continue;
    }
    const outcome = FROM_IMAGE.has(size) ? await measureImage(size, args) : await measureTree(size, args, gcBin);
    if ('reason' in outcome) notMeasured.push(outcome);
    else results.push(outcome);
  }
  const concurrency = args.sizes.includes('medium') ? await measureConcurrency(args) : [];
  const targets = args.targets ? [...targetsFor(results), ...s3Targets(s3)] : [];
  const text = render(results, s3, notMeasured, concurrency, targets, args, gcBin);
  process.stdout.write(text);
  if (args.markdown) {
    const doc = `# Benchmarks\n\nMeasured by \`npm run bench -- --sizes ${args.sizes.join(',')} --reps ${args.reps}\` on ${new Date().toISOString().slice(0, 10)}.\nTimes are wall-clock medians; every ratio compares runs made side by side in the same session.\n\n${text}`;
    fs.writeFileSync(args.markdown, doc);
  }
  if (targets.some((t) => !t.ok)) {
    process.stderr.write(`missed: ${targets.filter((t) => !t.ok).map((t) => t.what).join('; ')}\n`);
    process.exitCode = 1;
  }
}

await main();
