/**
 * `npm run bench -- --pulls`: what retention by last pull costs.
 *
 * - **Reading the pull index**, at three sizes a factor of ten apart: time
 *   and retained heap per entry (a tag's or a digest's last pull), against
 *   the floor of reading the same file and `JSON.parse` of its body, and the
 *   largest against the smallest (the index reads in time and memory
 *   proportional to what it holds).
 * - **Reading a registry log**, at two lengths five times apart, with the
 *   same tags pulled throughout: lines per second parsed into an index,
 *   against the floor of only cutting the same file into lines; and the heap
 *   kept, which must not grow with the log (a log streams through, only the
 *   index stays).
 *
 * Each measurement is a fresh node (`--expose-gc`) running one child mode of
 * this script: its time is taken around the read alone, its heap after a
 * full collection with the result still held. Cases alternate and repeat;
 * medians.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readAccessLogs } from '../src/cli/accessLogFiles.js';
import type { Digest } from '../src/model.js';
import { emptyTally, tallyLine } from '../src/plan/accessLog.js';
import { PullIndex } from '../src/plan/pullIndex.js';
import { readPullIndexFile, writePullIndexFile } from '../src/storage/fs/pullIndexFile.js';
import { median } from './benchRuns.js';

const run = promisify(execFile);
const self = fileURLToPath(import.meta.url);

/** What one child measured. */
interface Sample {
  ms: number;
  /** Heap retained by the result (after a full collection, less the heap before the read). */
  heapMiB: number;
  /** Index entries (index modes) or lines (log modes). */
  count: number;
}

type Mode = 'index' | 'index-floor' | 'log' | 'log-floor';

const heapNow = (): number => {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
};

/** A child: measures one mode on `target` (a storage root for the index, a log file for the log) and prints a Sample. */
async function child(mode: Mode, target: string): Promise<void> {
  const before = heapNow();
  const started = process.hrtime.bigint();
  let held: unknown;
  let count = 0;
  if (mode === 'index') {
    const index = PullIndex.parse((await readPullIndexFile(target)) as string);
    count = index.size();
    held = index;
  } else if (mode === 'index-floor') {
    const text = await fs.promises.readFile(path.join(target, '.regsweep-pulls'), 'utf8');
    const body = JSON.parse(text.slice(text.indexOf('\n') + 1)) as { repositories: Record<string, { tags: object; digests: object }> };
    for (const r of Object.values(body.repositories)) count += Object.keys(r.tags).length + Object.keys(r.digests).length;
    held = body;
  } else if (mode === 'log') {
    const index = PullIndex.empty();
    const tally = emptyTally();
    await readAccessLogs([target], (text) => tallyLine(tally, text, (pull) => index.record(pull)));
    count = tally.lines;
    held = index;
  } else {
    await readAccessLogs([target], () => count++);
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const heapMiB = (heapNow() - before) / 2 ** 20;
  // `held` is used after the heap is measured, so the result is still alive then.
  process.stdout.write(JSON.stringify({ ms, heapMiB, count, held: held === undefined ? 0 : 1 }));
}

async function measure(mode: Mode, target: string): Promise<Sample> {
  const { stdout } = await run(process.execPath, ['--expose-gc', self, '--child', mode, target], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as Sample;
}

const digestOf = (s: string): Digest => `sha256:${createHash('sha256').update(s).digest('hex')}` as Digest;

/** An index of `entries` last pulls: repositories of 10 tags and 10 digests each. */
function writeIndex(dir: string, entries: number): Promise<unknown> {
  const index = PullIndex.empty();
  const at = Date.UTC(2026, 0, 1);
  for (let i = 0; i < entries / 20; i++) {
    const repository = `team-${i % 50}/app-${i}`;
    for (let t = 0; t < 10; t++) {
      index.record({ repository, tag: `v1.${t}.${i % 7}`, at: at + i * 1000 + t });
      index.record({ repository, digest: digestOf(`${i}/${t}`), at: at + i * 1000 + t });
    }
  }
  fs.mkdirSync(path.join(dir, 'docker'), { recursive: true });
  return writePullIndexFile(dir, index.serialize());
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * A registry log of `lines` lines in the shapes 2.8 and 3.0 write (the
 * logger's text and JSON lines, the combined access line), pulls by tag and
 * by digest of 1,000 repositories' 10 tags, other requests, and a junk line
 * in a hundred; written in chunks, never held whole.
 */
function writeLog(file: string, lines: number): void {
  const fd = fs.openSync(file, 'w');
  const start = Date.UTC(2026, 0, 1);
  let chunk: string[] = [];
  for (let i = 0; i < lines; i++) {
    const at = new Date(start + i * 10);
    const iso = at.toISOString();
    const pad = (n: number): string => String(n).padStart(2, '0');
    const clf = `${pad(at.getUTCDate())}/${MONTHS[at.getUTCMonth()]}/${at.getUTCFullYear()}:${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())} +0000`;
    const repo = `team/app-${i % 1000}`;
    const ref = i % 3 === 0 ? digestOf(`${i % 1000}/${i % 10}`) : `v${i % 10}`;
    const method = i % 2 === 0 ? 'GET' : 'HEAD';
    switch (i % 5) {
      case 0:
        chunk.push(`time="${iso}" level=info msg="response completed" go.version=go1.19.8 http.request.host="registry:5000" http.request.id=6766ec1a http.request.method=${method} http.request.remoteaddr="10.0.0.7:59662" http.request.uri=/v2/${repo}/manifests/${ref} http.request.useragent="docker/24.0.7 go/go1.20.10" http.response.contenttype="application/vnd.docker.distribution.manifest.v2+json" http.response.duration=1.327823ms http.response.status=200 http.response.written=529`);
        break;
      case 1:
        chunk.push(`10.0.0.7 - - [${clf}] "${method} /v2/${repo}/manifests/${ref} HTTP/1.1" 200 529 "" "docker/24.0.7 go/go1.20.10"`);
        break;
      case 2:
        chunk.push(`{"go.version":"go1.23.5","http.request.host":"registry:5000","http.request.method":"${method}","http.request.uri":"/v2/${repo}/manifests/${ref}","http.response.status":200,"level":"info","msg":"response completed","service":"registry","time":"${iso}","version":"v3.0.0"}`);
        break;
      case 3:
        chunk.push(`10.0.0.7 - - [${clf}] "GET /v2/${repo}/blobs/${digestOf(String(i))} HTTP/1.1" 200 2811 "" "docker/24.0.7 go/go1.20.10"`);
        break;
      default:
        chunk.push(i % 100 === 4 ? 'panic: a line that is not the registry\'s' : `time="${iso}" level=info msg="response completed" http.request.method=GET http.request.uri=/v2/${repo}/manifests/nope http.response.status=404`);
    }
    if (chunk.length === 10_000) {
      fs.writeSync(fd, `${chunk.join('\n')}\n`);
      chunk = [];
    }
  }
  if (chunk.length > 0) fs.writeSync(fd, `${chunk.join('\n')}\n`);
  fs.closeSync(fd);
}

/** The median of each mode over `reps` rounds, the modes alternating within a round. */
async function rounds(modes: Array<[Mode, string]>, reps: number): Promise<Sample[]> {
  const samples: Sample[][] = modes.map(() => []);
  for (let r = 0; r < reps; r++) {
    for (const [i, [mode, target]] of modes.entries()) samples[i]?.push(await measure(mode, target));
  }
  return samples.map((s) => ({ ms: median(s.map((x) => x.ms)), heapMiB: median(s.map((x) => x.heapMiB)), count: s[0]?.count ?? 0 }));
}

interface PullTarget {
  what: string;
  measured: string;
  ok: boolean;
}

export interface PullsBench {
  markdown: string;
  targets: PullTarget[];
}

const us = (ms: number, n: number): string => `${((ms * 1000) / n).toFixed(2)} µs`;
const bytes = (mib: number, n: number): string => `${Math.round((mib * 2 ** 20) / n)} B`;

/** The pull benchmarks in `dir`, `scale` times the default sizes (the smoke test runs them small). */
export async function measurePulls(dir: string, reps: number, scale = 1): Promise<PullsBench> {
  const entries = [10_000, 100_000, 1_000_000].map((n) => Math.max(20, Math.round(n * scale)));
  const lines = [200_000, 1_000_000].map((n) => Math.max(100, Math.round(n * scale)));
  const out: string[] = [];
  const targets: PullTarget[] = [];

  out.push('### Reading the pull index', '', '| entries | file | read | per entry | floor (read + JSON.parse) | ratio | heap kept | per entry | floor heap |', '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const perEntry: Array<{ ms: number; heap: number }> = [];
  for (const n of entries) {
    const root = path.join(dir, `pull-index-${n}`);
    await writeIndex(root, n);
    const size = fs.statSync(path.join(root, '.regsweep-pulls')).size;
    const [index, floor] = (await rounds([['index', root], ['index-floor', root]], reps)) as [Sample, Sample];
    perEntry.push({ ms: index.ms / index.count, heap: index.heapMiB / index.count });
    out.push(`| ${index.count.toLocaleString('en-US')} | ${(size / 2 ** 20).toFixed(1)} MiB | ${index.ms.toFixed(0)} ms | ${us(index.ms, index.count)} | ${floor.ms.toFixed(0)} ms | ${(index.ms / floor.ms).toFixed(2)}× | ${index.heapMiB.toFixed(1)} MiB | ${bytes(index.heapMiB, index.count)} | ${floor.heapMiB.toFixed(1)} MiB |`);
  }
  const [small, , large] = perEntry as [{ ms: number; heap: number }, unknown, { ms: number; heap: number }];
  const timeGrowth = large.ms / small.ms;
  const heapGrowth = large.heap / small.heap;
  out.push('', `Per entry, ${entries[2]?.toLocaleString('en-US')} against ${entries[0]?.toLocaleString('en-US')} entries: time ${timeGrowth.toFixed(2)}×, heap ${heapGrowth.toFixed(2)}×.`);
  targets.push({ what: 'pull index: time per entry at 100× the entries ≤ 2× (proportional)', measured: `${timeGrowth.toFixed(2)}×`, ok: timeGrowth <= 2 });
  targets.push({ what: 'pull index: heap per entry at 100× the entries ≤ 1.5× (proportional)', measured: `${heapGrowth.toFixed(2)}×`, ok: heapGrowth <= 1.5 });

  out.push('', '### Reading a registry log into the index', '', '| lines | file | parsed into the index | lines/s | floor (cut into lines) | ratio | heap kept |', '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const kept: number[] = [];
  for (const n of lines) {
    const file = path.join(dir, `registry-${n}.log`);
    if (!fs.existsSync(file)) writeLog(file, n);
    const size = fs.statSync(file).size;
    const [log, floor] = (await rounds([['log', file], ['log-floor', file]], reps)) as [Sample, Sample];
    kept.push(log.heapMiB);
    out.push(`| ${log.count.toLocaleString('en-US')} | ${(size / 2 ** 20).toFixed(0)} MiB | ${log.ms.toFixed(0)} ms | ${Math.round(log.count / (log.ms / 1000)).toLocaleString('en-US')} | ${floor.ms.toFixed(0)} ms | ${(log.ms / floor.ms).toFixed(2)}× | ${log.heapMiB.toFixed(1)} MiB |`);
  }
  const logGrowth = (kept[1] as number) / Math.max(kept[0] as number, 0.01);
  out.push('', `Heap kept, ${lines[1]?.toLocaleString('en-US')} against ${lines[0]?.toLocaleString('en-US')} lines of the same pulls: ${logGrowth.toFixed(2)}×.`);
  targets.push({ what: 'log read: heap kept at 5× the lines of the same pulls ≤ 1.5× (the log streams through)', measured: `${logGrowth.toFixed(2)}×`, ok: logGrowth <= 1.5 });
  return { markdown: `${out.join('\n')}\n`, targets };
}

if (process.argv[2] === '--child') await child(process.argv[3] as Mode, process.argv[4] as string);
