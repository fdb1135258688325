/**
 * How the bench times a contender: a child process from spawn to exit, its
 * peak RSS when it reports one, and rounds that interleave the contenders so
 * drift on a shared machine hits each alike. Shared by the filesystem sizes
 * (bench.ts) and the bucket (benchS3.ts).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Run {
  ms: number;
  maxRssKiB?: number;
  /** The child's stdout, when asked for. */
  stdout?: string;
}

export interface TimedOptions {
  /** The child reports its peak RSS (KiB) on fd 3. */
  withRss?: boolean;
  /** Keep its stdout (a JSON report); otherwise it is discarded. */
  stdout?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Wall time of a child process from spawn to exit; its peak RSS when it reports one on fd 3. */
export function timed(command: string, argv: string[], options: TimedOptions = {}): Promise<Run> {
  const { withRss = false } = options;
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, argv, { stdio: ['ignore', options.stdout ? 'pipe' : 'ignore', 'pipe', withRss ? 'pipe' : 'ignore'], env: options.env });
    let out = '';
    let err = '';
    let rss = '';
    child.stdout?.on('data', (c) => (out += c));
    child.stderr?.on('data', (c) => (err += c));
    (child.stdio[3] as NodeJS.ReadableStream | null)?.on('data', (c) => (rss += c));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0 || (withRss && !/^\d+$/.test(rss.trim()))) {
        return reject(new Error(`${path.basename(command)} exited ${code}${withRss ? ` (peak RSS ${JSON.stringify(rss)})` : ''}: ${err.slice(0, 400)}`));
      }
      resolve({ ms, ...(withRss ? { maxRssKiB: Number(rss.trim()) } : {}), ...(options.stdout ? { stdout: out } : {}) });
    });
  });
}

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
// From scripts/ (the tests) or dist/scripts/ (the bench).
const here = path.dirname(fileURLToPath(import.meta.url));
const bin = [path.join(here, '../bin/regsweep.js'), path.join(here, '../../bin/regsweep.js')].find((p) => fs.existsSync(p)) ?? 'bin/regsweep.js';

/** The node flags `bin/regsweep.js` starts node with (its `exec node … "$0"` line), so the bench measures what users run. */
export function binNodeFlags(text = fs.readFileSync(bin, 'utf8')): string[] {
  const exec = /^":" \/\/# ; exec node (.*) "\$0" "\$@"$/m.exec(text);
  if (!exec?.[1]) throw new Error('bin/regsweep.js: no `exec node … "$0" "$@"` line');
  return exec[1].split(' ');
}

// The real CLI, in a fresh process started with the bin's node flags; after it finishes it reports its peak RSS (KiB) on fd 3.
const RUNNER = `import { main } from ${JSON.stringify(cli)};
import fs from 'node:fs';
await main(process.argv);
fs.writeSync(3, String(process.resourceUsage().maxRSS));`;

/** regsweep (the built CLI) with these arguments: its time and peak RSS. */
export const regsweep = (argv: string[], options: Omit<TimedOptions, 'withRss'> = {}): Promise<Run> =>
  timed(process.execPath, [...binNodeFlags(), '--input-type=module', '-e', RUNNER, 'regsweep', ...argv], { ...options, withRss: true });

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

export const medianMs = (runs: Run[]): number => median(runs.map((r) => r.ms));
export const medianRssMiB = (runs: Run[]): number => median(runs.map((r) => (r.maxRssKiB ?? 0) / 1024));

/**
 * Each contender's runs (none for one left undefined): one unmeasured round
 * first, which warms the page cache for all alike, then `reps` rounds.
 * `warmUp` may instead name the contenders to call in that round (the bucket
 * counts requests through a proxy there).
 */
export async function rounds<K extends string>(
  name: string,
  reps: number,
  contenders: Record<K, (() => Promise<Run>) | undefined>,
  warmUp: boolean | Partial<Record<K, () => Promise<unknown>>> = true,
): Promise<Record<K, Run[]>> {
  const runs = {} as Record<K, Run[]>;
  const entries: Array<[K, () => Promise<Run>]> = [];
  for (const [key, run] of Object.entries(contenders) as Array<[K, (() => Promise<Run>) | undefined]>) {
    runs[key] = [];
    if (run) entries.push([key, run]);
  }
  if (warmUp) for (const [key, run] of entries) await (warmUp === true ? run : (warmUp[key] ?? run))();
  for (let rep = 0; rep < reps; rep++) {
    // Interleaved, and the order rotates, so drift on a shared machine hits every contender.
    for (let k = 0; k < entries.length; k++) {
      const [key, run] = entries[(rep + k) % entries.length] as [K, () => Promise<Run>];
      runs[key].push(await run());
    }
    process.stderr.write(`  ${name}: round ${rep + 1}/${reps}\n`);
  }
  return runs;
}
