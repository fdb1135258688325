/**
 * `npm run stress -- --crash N [--first S] [--shapes path,container] [--pick uniform|kinds] [--keep-failures DIR]`:
 * real runs of `--gc builtin --grace 0s` killed (SIGKILL) at random points,
 * and the proof that recovery converges (issue 23).
 *
 * For each seed and shape (N seeds per shape, from S):
 *  1. The seed's scenario is pushed through the real registry (as the
 *     differential of scripts/stress.ts does) and the tree copied twice.
 *  2. Reference: an uninterrupted run on one copy, with
 *     REGSWEEP_CRASH_COUNT listing the kill points it passes
 *     (src/util/failpoint.ts). N is picked uniformly among them, or with
 *     `--pick kinds` a kind of point first, then one of its occurrences.
 *  3. Crashed: the same run on the other copy with REGSWEEP_CRASH_AT=N dies
 *     there; its watchdog finishes (for a container: the registry running,
 *     unpaused and answering), then a plain run with the same options.
 *  4. Checks: that run exits as the reference did, and says `recovered`
 *     when the dead run left anything beside docker/; the files under
 *     docker/ are the reference's (path and content); nothing is beside
 *     docker/ in the root; an independent reading of the tree finds every
 *     tag that was whole before whole after (its manifest and revision link,
 *     children, config and layers with their blobs and `_layers` links); and
 *     every tag pulls whole through the real registry (a `--path` tree served
 *     by the local binary, a container's tree by the container).
 *
 * Shapes: `path` (`regsweep --path ROOT`) and `container` (a registry:2
 * container on the Docker daemon of DOCKER_HOST with the tree bind-mounted,
 * paused by the run: its watchdog must bring it back).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient, pushImage, startRegistry } from './registryClient.js';
import { REGSWEEP, type RegistryBinary, Rng, type TreeSummary, buildTree, cleanEnv, copyTree, pullAll } from './stress.js';
import { freePort } from './ports.js';
import { PULL_INDEX_NAME } from '../src/storage/pullIndexStore.js';

/** Beside docker/, what is no leftover of a dead run: the pull index every run that reads the registry's log keeps there. */
const besideData = (name: string): boolean => name !== 'docker' && name !== PULL_INDEX_NAME;

export type Shape = 'path' | 'container';

/** The stand-in registry image the Docker test environment imports. */
const REGISTRY_IMAGE = 'registry:2';
/** The label the e2e tests sweep containers by: a container left behind is removed by the next test run. */
const TEST_LABEL = 'regsweep.test';

export interface CrashOptions {
  seed: number;
  shape: Shape;
  registry: RegistryBinary;
  /** Which kill point (1-based) among the reference run's `points`; default: one picked by the seed. */
  killAt?: (points: readonly string[]) => number;
  /** How the kill point is picked when `killAt` is not given (default uniform). */
  pick?: Pick;
  /** Leaves out the run after the crash: the comparison must then find differences (proves it can fail). */
  skipRecovery?: boolean;
  /** Copies the trees and logs here (DIR/<shape>-seed-<seed>) when something differs. */
  keepFailures?: string;
}

export interface CrashResult {
  seed: number;
  shape: Shape;
  purgeArgs: string[];
  /** The repository that got many untagged revisions more (so the run swaps its revisions), if any. */
  bulk?: string;
  /** The runs kept what they removed (`--quarantine 1h`): the dead run's quarantine and the next run's must restore the original tree. */
  quarantine: boolean;
  /** The kill points of the uninterrupted run, in order. */
  points: string[];
  /** The point picked (1-based), and the name the crashed run died at (undefined: it did not die). */
  killAt: number;
  killedAt: string | undefined;
  /** What the dead run left beside docker/ (lock, trash, recovery note) once its watchdog was done. */
  leftBehind: string[];
  /** The report's `recovered` of the run after the crash. */
  recovered: unknown;
  exit: { reference: number | null; after: number | null };
  /** Tags checked whole in the tree (independent reading), and pulled whole through the registry. */
  tagsWhole: number;
  pulls: number;
  /** Everything that differs from the uninterrupted run, or is broken: must be empty. */
  differences: string[];
  keptAt?: string;
  durationMs: number;
}

// ---------------------------------------------------------------------------
// Running regsweep and docker

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The regsweep the runs start: the project's, or the snapshot crashMain takes of it. */
let regsweepBin = REGSWEEP;
const regsweep = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> => run(process.execPath, [regsweepBin, ...args], env);

/**
 * A copy of the built regsweep (bin/, dist/src, package.json; node_modules
 * linked) for a long crash run: a build of the working tree meanwhile (other
 * work on the same checkout) must not change, or half-write, the code that
 * the reference, crashed and next runs of one seed execute.
 */
async function snapshotRegsweep(): Promise<string> {
  const project = path.dirname(path.dirname(REGSWEEP));
  const to = await fs.mkdtemp(path.join(os.tmpdir(), 'regsweep-crash-build-'));
  await fs.cp(path.join(project, 'bin'), path.join(to, 'bin'), { recursive: true });
  await fs.cp(path.join(project, 'dist/src'), path.join(to, 'dist/src'), { recursive: true });
  await fs.copyFile(path.join(project, 'package.json'), path.join(to, 'package.json'));
  await fs.symlink(path.join(project, 'node_modules'), path.join(to, 'node_modules'));
  return to;
}

async function docker(args: string[]): Promise<string> {
  const r = await run('docker', args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}


async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** A registry container serving `root` (bind-mounted) on 127.0.0.1:port, answering. */
class RegistryContainer {
  private constructor(
    readonly name: string,
    readonly port: number,
  ) {}

  static async start(name: string, root: string): Promise<RegistryContainer> {
    const port = await freePort();
    await docker(['run', '-d', '--name', name, '--label', `${TEST_LABEL}=1`, '--network', 'host', '-e', `REGISTRY_HTTP_ADDR=127.0.0.1:${port}`, '-e', 'REGISTRY_STORAGE_DELETE_ENABLED=true', '-v', `${root}:/var/lib/registry`, REGISTRY_IMAGE]);
    const c = new RegistryContainer(name, port);
    await c.serving(30_000);
    return c;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Waits until the container runs, unpaused, and answers /v2/. */
  async serving(timeoutMs: number): Promise<void> {
    await until(`${this.name} running, unpaused and answering`, timeoutMs, async () => {
      const state = await docker(['inspect', '-f', '{{.State.Running}} {{.State.Paused}}', this.name]);
      return state === 'true false' && (await answers(`${this.url}/v2/`)) ? true : undefined;
    });
  }

  async remove(): Promise<void> {
    await run('docker', ['rm', '-f', '-v', this.name]);
  }
}

/** The pids of regsweep watchdogs on `root` (their command line names watchdogMain.js and the root). */
function watchdogsOn(root: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (args.some((a) => a.endsWith('watchdogMain.js')) && args.includes(root)) out.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The trees

/** Every file under `dir`, relative, with a hash of its bytes; and every empty directory (with a trailing /). */
async function filesOf(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    const entries = await fs.readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(path.relative(dir, p), createHash('sha256').update(await fs.readFile(p)).digest('hex').slice(0, 16));
    }
  };
  await walk(dir);
  return out;
}

/** The files that differ between the reference's docker/ and the crashed one's, one line each. */
async function compareFiles(reference: string, crashed: string): Promise<string[]> {
  const [a, b] = [await filesOf(path.join(reference, 'docker')), await filesOf(path.join(crashed, 'docker'))];
  const out: string[] = [];
  for (const [file, hash] of b) {
    if (!a.has(file)) out.push(`only after the crash: docker/${file}`);
    else if (a.get(file) !== hash) out.push(`other content after the crash: docker/${file}`);
  }
  for (const file of a.keys()) if (!b.has(file)) out.push(`missing after the crash: docker/${file}`);
  return out.sort();
}

interface ManifestJson {
  manifests?: Array<{ digest: string }>;
  config?: { digest: string };
  layers?: Array<{ digest: string; urls?: string[] }>;
}

/**
 * Reads the tree as the registry would serve a tag, without regsweep's code:
 * for every tag, what is missing or wrong (an empty list: whole). Its
 * manifest's revision link and blob (hashed), each child's likewise in the
 * same repository, and each config and layer (foreign layers aside) with its
 * blob and `_layers` link.
 */
async function checkTags(root: string): Promise<Map<string, string[]>> {
  const v2 = path.join(root, 'docker/registry/v2');
  const read = async (file: string): Promise<Buffer | undefined> => fs.readFile(file).catch(() => undefined);
  const blob = async (digest: string): Promise<Buffer | undefined> => {
    const hex = digest.slice(7);
    const bytes = await read(path.join(v2, 'blobs/sha256', hex.slice(0, 2), hex, 'data'));
    return bytes && `sha256:${createHash('sha256').update(bytes).digest('hex')}` === digest ? bytes : undefined;
  };
  const link = async (file: string, digest: string): Promise<boolean> => (await read(file))?.toString('utf8') === digest;
  const tags = new Map<string, string[]>();
  const repositories: string[] = [];
  const findRepos = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(v2, 'repositories', rel), { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory()) continue;
      if (e.name === '_manifests') repositories.push(rel);
      else if (!e.name.startsWith('_')) await findRepos(rel ? `${rel}/${e.name}` : e.name);
    }
  };
  await findRepos('');
  for (const repo of repositories.sort()) {
    const base = path.join(v2, 'repositories', repo);
    const problems = (digest: string, seen: Set<string>): Promise<string[]> => manifestProblems(repo, base, digest, seen, { blob, link });
    for (const tag of (await fs.readdir(path.join(base, '_manifests/tags')).catch(() => [])).sort()) {
      const current = (await read(path.join(base, '_manifests/tags', tag, 'current/link')))?.toString('utf8');
      tags.set(`${repo}:${tag}`, current === undefined ? ['no current link'] : await problems(current, new Set()));
    }
  }
  return tags;
}

async function manifestProblems(
  repo: string,
  base: string,
  digest: string,
  seen: Set<string>,
  io: { blob: (d: string) => Promise<Buffer | undefined>; link: (file: string, d: string) => Promise<boolean> },
): Promise<string[]> {
  if (seen.has(digest)) return [];
  seen.add(digest);
  const hex = digest.slice(7);
  const out: string[] = [];
  if (!(await io.link(path.join(base, '_manifests/revisions/sha256', hex, 'link'), digest))) out.push(`${repo}@${digest}: no revision link`);
  const bytes = await io.blob(digest);
  if (!bytes) return [...out, `${repo}@${digest}: manifest blob missing or corrupt`];
  let json: ManifestJson;
  try {
    json = JSON.parse(bytes.toString('utf8')) as ManifestJson;
  } catch {
    return [...out, `${repo}@${digest}: manifest unreadable`];
  }
  for (const child of json.manifests ?? []) out.push(...(await manifestProblems(repo, base, child.digest, seen, io)));
  for (const d of [json.config, ...(json.layers ?? []).filter((l) => !l.urls?.length)]) {
    if (!d) continue;
    if (!(await io.blob(d.digest))) out.push(`${repo}@${digest}: blob ${d.digest} missing or corrupt`);
    if (!(await io.link(path.join(base, '_layers/sha256', d.digest.slice(7), 'link'), d.digest))) out.push(`${repo}@${digest}: no _layers link for ${d.digest}`);
  }
  return out;
}

// ---------------------------------------------------------------------------
// One seed in one shape

interface Work {
  dir: string;
  orig: string;
  reference: string;
  crashed: string;
  log: Record<string, string>;
}

/** The run's target: the root, or the container serving it. */
type Target = { args: string[]; container?: RegistryContainer };

async function targetFor(shape: Shape, root: string, name: string): Promise<Target> {
  if (shape === 'path') return { args: ['--path', root, '--no-in-use'] };
  const container = await RegistryContainer.start(name, root);
  return { args: [container.name], container };
}

const logOf = (ran: Ran): string => `exit ${ran.code ?? ran.signal}\n${ran.stderr}\n${ran.stdout}`;

function reportOf(ran: Ran): { recovered?: unknown } {
  try {
    return JSON.parse(ran.stdout) as { recovered?: unknown };
  } catch {
    return {};
  }
}

/** Waits for what the dead run's watchdog does (for a container: the registry serving again); what it left beside docker/. */
async function afterDeath(root: string, target: Target): Promise<string[]> {
  await until(`the watchdogs on ${root} to exit`, 60_000, async () => (watchdogsOn(root).length === 0 ? true : undefined));
  await target.container?.serving(60_000);
  return (await fs.readdir(root)).filter(besideData).sort();
}

async function points(file: string): Promise<string[]> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => line.slice(line.indexOf(' ') + 1));
}

/** Pulls every tag whole through `url`; the failures, each `ref: why`. */
async function pullTags(url: string, refs: readonly string[]): Promise<string[]> {
  const client = new RegistryClient(url);
  const failed: string[] = [];
  for (const ref of refs) {
    const at = ref.lastIndexOf(':');
    try {
      await client.pullWhole(ref.slice(0, at), ref.slice(at + 1));
    } catch (error) {
      failed.push(`${ref}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  return failed;
}

/**
 * How a kill point is picked, by the seed and shape: `uniform` among the run's
 * points (most are removals then), or `kinds`: a kind of point uniformly among
 * those the run passes (the lock, the pause, a swap's renames, the trash...),
 * then one of its occurrences, so that rare steps are hit as often as removals.
 */
type Pick = 'uniform' | 'kinds';

function pickBySeed(seed: number, shape: Shape, pick: Pick): (points: readonly string[]) => number {
  return (list) => {
    const rng = new Rng(seed * 2 + (shape === 'container' ? 1 : 0) + 1_000_003);
    if (pick === 'uniform') return rng.int(1, list.length);
    const kind = rng.pick([...new Set(list)].sort());
    return rng.pick(list.flatMap((p, i) => (p === kind ? [i + 1] : [])));
  };
}

export async function runCrash(opts: CrashOptions): Promise<CrashResult> {
  const started = Date.now();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `regsweep-crash-${opts.shape}-${opts.seed}-`));
  const w: Work = { dir, orig: path.join(dir, 'original'), reference: path.join(dir, 'reference'), crashed: path.join(dir, 'crashed'), log: {} };
  const containers: RegistryContainer[] = [];
  try {
    await fs.mkdir(w.orig);
    const summary = await buildTree(w.orig, opts.seed, opts.registry.bin, dir);
    const bulk = await addBulk(w.orig, opts.seed, opts.registry.bin, summary.repositories, summary.purgeArgs);
    await copyTree(w.orig, w.reference);
    await copyTree(w.orig, w.crashed);
    const result = { ...(await crashAndCompare(opts, w, summary, containers)), bulk };
    if (result.differences.length > 0 && opts.keepFailures) result.keptAt = await keep(opts, w, formatCrash(result));
    return { ...result, durationMs: Date.now() - started };
  } finally {
    for (const c of containers) await c.remove();
    // The registry container writes as root; a bind mount leaves nothing mounted here.
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Untagged revisions pushed into one repository: enough that the run swaps its revisions directory (storage/fs/swap.ts). */
const BULK = 14;

/**
 * Half the seeds: BULK untagged images more in one repository, so that the
 * purge removes many more revisions there than it keeps and swaps the
 * directory: the kill points inside a swap exist only then (a small tree
 * never has that many blobs in one prefix directory). The repository's name.
 */
async function addBulk(root: string, seed: number, bin: string, repositories: readonly string[], purgeArgs: readonly string[]): Promise<string | undefined> {
  const rng = new Rng(seed + 7_000_001);
  // -x alone touches only what it names: no untagged revision goes.
  if (!rng.chance(0.5) || purgeArgs[0] === '-x') return undefined;
  const repo = rng.pick(repositories);
  const registry = await startRegistry(root, { bin });
  try {
    const client = new RegistryClient(registry.url);
    for (let i = 0; i < BULK; i++) await pushImage(client, repo, { seed: `crash-${seed}/bulk-${i}`, layers: 1 });
  } finally {
    await registry.stop();
  }
  return repo;
}

async function crashAndCompare(opts: CrashOptions, w: Work, summary: TreeSummary, containers: RegistryContainer[]): Promise<CrashResult> {
  const quarantine = new Rng(opts.seed + 9_000_011).chance(0.25);
  const common = ['--yes', '--json', '--gc', 'builtin', '--grace', '0s', ...(quarantine ? ['--quarantine', '1h'] : []), ...summary.purgeArgs];
  const name = `regsweep-crash-${opts.shape}-${opts.seed}-${process.pid}`;
  const differences: string[] = [];

  const ref = await targetFor(opts.shape, w.reference, `${name}-ref`);
  if (ref.container) containers.push(ref.container);
  const refPoints = path.join(w.dir, 'points-reference');
  const reference = await regsweep([...ref.args, ...common], { REGSWEEP_CRASH_COUNT: refPoints });
  w.log['reference.txt'] = logOf(reference);
  const list = await points(refPoints);
  if (reference.code !== 0 && reference.code !== 1) differences.push(`the uninterrupted run exited ${reference.code ?? reference.signal}: ${reference.stderr.trim().split('\n').pop() ?? ''}`);
  if (list.length === 0) differences.push('the uninterrupted run passed no kill point');

  const killAt = Math.max(1, Math.min(list.length, (opts.killAt ?? pickBySeed(opts.seed, opts.shape, opts.pick ?? 'uniform'))(list)));
  const tgt = await targetFor(opts.shape, w.crashed, `${name}-crash`);
  if (tgt.container) containers.push(tgt.container);
  const crashPoints = path.join(w.dir, 'points-crashed');
  const crashed = await regsweep([...tgt.args, ...common], { REGSWEEP_CRASH_AT: String(killAt), REGSWEEP_CRASH_COUNT: crashPoints });
  w.log['crashed.txt'] = logOf(crashed);
  const passed = await points(crashPoints);
  const killedAt = crashed.signal === 'SIGKILL' ? passed[passed.length - 1] : undefined;
  if (!killedAt) differences.push(`the run to kill at point ${killAt} (${list[killAt - 1]}) was not killed: exit ${crashed.code}`);
  else if (killedAt !== list[killAt - 1]) w.log['note.txt'] = `killed at ${killedAt}, the reference's point ${killAt} is ${list[killAt - 1]}\n`;
  const leftBehind = await afterDeath(w.crashed, tgt);

  let after: Ran | undefined;
  if (!opts.skipRecovery) {
    after = await regsweep([...tgt.args, ...common]);
    w.log['after.txt'] = logOf(after);
    if (after.code !== reference.code) differences.push(`the run after the crash exited ${after.code ?? after.signal}, the uninterrupted one ${reference.code}: ${after.stderr.trim().split('\n').pop() ?? ''}`);
  }
  const recovered = after ? (reportOf(after).recovered ?? null) : null;
  if (after && leftBehind.length > 0 && recovered === null) differences.push(`the dead run left ${leftBehind.join(', ')}, and the next run's report says nothing recovered`);

  differences.push(...(await compareFiles(w.reference, w.crashed)));
  // With --quarantine, the dead run's quarantine stays beside the next run's: it holds what it removed.
  const beside = (await fs.readdir(w.crashed)).filter((n) => besideData(n) && !(quarantine && n.startsWith(QUARANTINE)));
  if (beside.length > 0) differences.push(`beside docker/ after the crash: ${beside.sort().join(', ')}`);
  const whole = await checkWhole(w);
  differences.push(...whole.broken);
  const pullFailures = tgt.container ? await pullTags(tgt.container.url, whole.refs) : (await pullAll(w.crashed, opts.registry.bin, whole.refs.map((r) => r))).failed;
  differences.push(...pullFailures.map((f) => `does not pull whole after the crash: ${f}`));
  if (quarantine) differences.push(...(await restoreCheck(w)));
  return {
    seed: opts.seed,
    shape: opts.shape,
    purgeArgs: summary.purgeArgs,
    quarantine,
    points: list,
    killAt,
    killedAt,
    leftBehind,
    recovered,
    exit: { reference: reference.code, after: after?.code ?? null },
    tagsWhole: whole.refs.length,
    pulls: whole.refs.length - pullFailures.length,
    differences,
    durationMs: 0,
  };
}

const QUARANTINE = '.regsweep-quarantine-';

/**
 * With --quarantine: `--restore` of every quarantine beside docker/, newest
 * first, must give back the original tree's files under docker/, on the
 * crashed tree (the dead run's quarantine and the next run's) as on the
 * reference. Changes both trees: the last check.
 */
async function restoreCheck(w: Work): Promise<string[]> {
  const out: string[] = [];
  for (const [label, root] of [['uninterrupted', w.reference], ['crashed', w.crashed]] as const) {
    const quarantines = (await fs.readdir(root)).filter((n) => n.startsWith(QUARANTINE)).sort().reverse();
    for (const q of quarantines) {
      const restored = await regsweep(['--path', root, '--restore', path.join(root, q)]);
      w.log[`restore-${label}-${q}.txt`] = logOf(restored);
      if (restored.code !== 0) out.push(`--restore ${q} on the ${label} tree exited ${restored.code ?? restored.signal}: ${restored.stderr.trim().split('\n').pop() ?? ''}`);
    }
    out.push(...(await compareFiles(w.orig, root)).map((d) => `${label}, restored from ${quarantines.length} quarantines, against the original: ${d.replace('after the crash', 'after the restore')}`));
  }
  return out;
}

/** Tags whole in the original tree and kept by the reference must be whole after the crash: the broken ones, and the refs to pull. */
async function checkWhole(w: Work): Promise<{ broken: string[]; refs: string[] }> {
  const [before, reference, crashed] = [await checkTags(w.orig), await checkTags(w.reference), await checkTags(w.crashed)];
  const broken: string[] = [];
  const refs: string[] = [];
  for (const [tag, problems] of reference) {
    if (before.get(tag)?.length !== 0) continue; // broken by the scenario itself (a child deleted through the API)
    if (problems.length > 0) broken.push(`the uninterrupted run broke ${tag}: ${problems.join('; ')}`);
    const after = crashed.get(tag);
    if (after === undefined) broken.push(`tag ${tag} is gone after the crash`);
    else if (after.length > 0) broken.push(`tag ${tag} is broken after the crash: ${after.join('; ')}`);
    else refs.push(tag);
  }
  for (const tag of crashed.keys()) if (!reference.has(tag)) broken.push(`tag ${tag} is there after the crash only`);
  return { broken, refs };
}

async function keep(opts: CrashOptions, w: Work, text: string): Promise<string> {
  const to = path.join(path.resolve(opts.keepFailures as string), `${opts.shape}-seed-${opts.seed}`);
  await fs.rm(to, { recursive: true, force: true });
  await fs.mkdir(to, { recursive: true });
  for (const [name, from] of [['original', w.orig], ['reference', w.reference], ['crashed', w.crashed]] as const) await copyTree(from, path.join(to, name));
  for (const [name, content] of Object.entries(w.log)) await fs.writeFile(path.join(to, name), content);
  await fs.writeFile(path.join(to, 'report.txt'), text);
  return to;
}

// ---------------------------------------------------------------------------
// Reporting and the loop

/** `watchdog` or `takeover`, with what it brought back: the containers and the swaps undone. */
function recoveredText(recovered: unknown): string {
  const r = recovered as { by?: string; containers?: string[]; swapsUndone?: number };
  const what = [...(r.containers?.length ? [`${r.containers.length} container(s) brought back`] : []), ...(r.swapsUndone ? [`${r.swapsUndone} swap(s) undone`] : [])];
  return `${r.by ?? '?'}${what.length > 0 ? ` (${what.join(', ')})` : ''}`;
}

export function formatCrash(r: CrashResult): string {
  const purge = `${r.purgeArgs.length > 0 ? r.purgeArgs.join(' ') : '(default purge)'}${r.quarantine ? ' --quarantine 1h' : ''}${r.bulk ? `, ${BULK} untagged more in ${r.bulk}` : ''}`;
  const rec = r.recovered === null ? 'nothing recovered' : `recovered by ${recoveredText(r.recovered)}`;
  const head =
    `${r.shape} seed ${r.seed}: ${r.differences.length === 0 ? 'converged' : 'DIFFERENT'} — killed at ${r.killAt}/${r.points.length} ${r.killedAt ?? '(not killed)'}; ` +
    `left ${r.leftBehind.length > 0 ? r.leftBehind.map((n) => n.replace(/-\d+-\d+$/, '-…')).join(', ') : 'nothing'}; ${rec}; exit ${r.exit.reference}/${r.exit.after}; ` +
    `${r.tagsWhole} tags whole, ${r.pulls} pulled; ${purge}; ${(r.durationMs / 1000).toFixed(1)} s`;
  return `${[head, ...r.differences.map((d) => `  ${d}`), ...(r.keptAt ? [`  trees kept in ${r.keptAt}`] : [])].join('\n')}\n`;
}

export interface CrashRunArgs {
  kills: number;
  first: number;
  shapes: Shape[];
  registry: RegistryBinary;
  pick: Pick;
  keepFailures?: string;
}

/** N kill points per shape, one seed each; one line per kill, a tally of the points hit; 1 on any difference. */
export async function crashMain(args: CrashRunArgs): Promise<number> {
  const snapshot = await snapshotRegsweep();
  regsweepBin = path.join(snapshot, path.relative(path.dirname(path.dirname(REGSWEEP)), REGSWEEP));
  try {
    return await crashLoop(args);
  } finally {
    regsweepBin = REGSWEEP;
    await fs.rm(snapshot, { recursive: true, force: true });
  }
}

async function crashLoop(args: CrashRunArgs): Promise<number> {
  const different: string[] = [];
  const started = Date.now();
  for (const shape of args.shapes) {
    if (shape === 'container' && !process.env['DOCKER_HOST']) {
      console.log('container shape: DOCKER_HOST is not set (scripts/docker-test-env.sh start DIR, then images): skipped');
      continue;
    }
    console.log(`${shape}: registry ${args.registry.version}; seeds ${args.first} … ${args.first + args.kills - 1}; kill points picked ${args.pick === 'kinds' ? 'by kind, then occurrence' : 'uniformly'}`);
    const hit = new Map<string, number>();
    let same = 0;
    for (let seed = args.first; seed < args.first + args.kills; seed++) {
      const result = await runCrash({ seed, shape, registry: args.registry, pick: args.pick, keepFailures: args.keepFailures }).catch((error: Error) => error);
      if (result instanceof Error) {
        console.log(`${shape} seed ${seed}: FAILED — ${result.message}`);
        different.push(`${shape} seed ${seed}`);
        continue;
      }
      process.stdout.write(formatCrash(result));
      hit.set(result.killedAt ?? '(not killed)', (hit.get(result.killedAt ?? '(not killed)') ?? 0) + 1);
      if (result.differences.length > 0) different.push(`${shape} seed ${seed}`);
      else same++;
    }
    console.log(`${shape}: ${same} of ${args.kills} kill points converged; points hit: ${[...hit].sort().map(([n, c]) => `${n} ${c}`).join(', ')}`);
  }
  console.log(`${different.length} different in ${((Date.now() - started) / 1000).toFixed(0)} s${different.length ? `: ${different.join(', ')}` : ''}`);
  return different.length > 0 ? 1 : 0;
}
