/**
 * The command line: the only place that reads argv, prints, and sets exit codes.
 *   0 done (also when there was nothing to do)
 *   1 done with problems (a repository spared, garbage-collect failed)
 *   2 refused (usage, bad input, unsupported target, storage it cannot write); nothing changed
 *   130 interrupted
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import v8 from 'node:v8';
import { CommanderError } from 'commander';
import { restoreJournal } from '../apply/restore.js';
import { RegsweepError, UsageError } from '../errors.js';
import { parseSelector } from '../plan/selectors.js';
import { type ScanPool, openScanPool } from '../storage/fs/scanPool.js';
import { requireWritableStorage } from '../storage/fs/writable.js';
import { exclusively } from '../exclusiveRun.js';
import { type SweepOptions, type SweepPreview, type SweepReport, sweep } from '../sweep.js';
import { bucketStorage } from '../run/bucket.js';
import { filesystemStorage } from '../run/filesystem.js';
import { type CliOptions, program } from './program.js';
import { pinsFromFile, pinsInUse } from './inUse.js';
import { accessLogsFrom, engineLogReader, gatherPulls } from './pulls.js';
import { formatHuman, jsonChunks } from './report.js';
import { type RunState, namedInRefused, recordOnSignal, recordRun } from './metrics.js';
import { quietOnClosedPipes, writeStdout } from './pipes.js';
import { formatUsage } from './usage.js';
import { bringBackFor, policyFrom, resolveTarget, runtimeFor } from './runtime.js';
import { askOnTerminal, progressLine } from './terminal.js';

async function run(argv: string[], state: RunState): Promise<number> {
  const cmd = program();
  cmd.exitOverride();
  cmd.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    cmd.parse(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed as one line.
      if (error.exitCode !== 0) Object.assign(state, namedInRefused(cmd.opts<CliOptions>(), argv, cmd.options));
      return error.exitCode === 0 ? 0 : 2;
    }
    throw error;
  }
  const opts = cmd.opts<CliOptions>();
  // The metrics label is what the command line named, on a refusal as on a run (see RunState.target).
  Object.assign(state, { metricsFile: opts.metricsFile, target: opts.path ?? opts.volume ?? cmd.args[0] ?? '' });
  const log = opts.verbose ? (m: string) => process.stderr.write(`regsweep: ${m}\n`) : () => {};

  if (opts.restore) return restoreCommand(opts, opts.restore);
  if (opts.quarantine !== undefined && opts.gc === 'registry') {
    throw new UsageError("--quarantine goes with --gc builtin (the default) or --no-gc: the registry's garbage-collect deletes blobs itself, so a restore would bring back manifests without them");
  }
  if (opts.gc === 'builtin' && opts.registryImage) {
    throw new UsageError("--registry-image names the image the registry's garbage-collect runs from: give --gc registry too (the default, --gc builtin, runs no garbage-collect and creates no container)");
  }

  // --usage only reads: it is a dry run, --yes or not.
  const dryRun = (opts.dryRun || opts.usage) ?? false;
  if (!dryRun && !opts.yes && !process.stdin.isTTY) {
    throw new UsageError('refusing to change the registry without --yes: stdin is not a terminal');
  }
  // The scan threads start now, and load their code while the target is resolved and the registry's version asked.
  const pool = openScanPool(opts.concurrency ?? Math.min(4, os.availableParallelism()));
  try {
    return await sweepCommand(opts, cmd.args, { dryRun, pool, log, state });
  } finally {
    await pool.close();
  }
}

/** A storage root that a real run or a restore can write, else a refusal (exit 2) saying what to do. */
/** `--restore`: holding the registry's lock, puts back what a journal or a quarantine recorded. */
async function restoreCommand(opts: CliOptions, from: string): Promise<number> {
  const root = opts.path;
  if (!root) throw new UsageError('--restore needs --path ROOT');
  requireWritableStorage(root, 'restore');
  // A restore between a crash and the next real run leaves that run the watchdog's note to report.
  const lockOptions = { root, containers: [], target: { kind: 'path' as const, name: root }, bringBack: { restart: false }, waitMs: opts.wait, keepRecoveryNote: true };
  const restored = await exclusively(lockOptions, async (_lock, recovered) => {
    if (recovered) process.stderr.write(`regsweep: recovered a run that died (pid ${recovered.holder.pid} on ${recovered.holder.hostname}, started ${recovered.holder.startedAt})\n`);
    return restoreJournal(root, from);
  });
  if (!opts.quiet) {
    const moved = restored.moved > 0 || restored.missing.length > 0 ? `, ${restored.moved} directories from the quarantine` : '';
    process.stdout.write(`restored ${restored.restored} links${moved}, ${restored.present} already present\n`);
  }
  for (const c of restored.conflicts) process.stderr.write(`conflict: ${c} exists with other content; left as it is\n`);
  for (const m of restored.missing) process.stderr.write(`missing: ${m} is in neither the quarantine nor the tree\n`);
  return restored.conflicts.length + restored.missing.length > 0 ? 1 : 0;
}

async function printReport(report: SweepReport, opts: CliOptions): Promise<number> {
  const failed = report.problems.length > 0;
  if (opts.json) {
    for (const chunk of jsonChunks(report)) {
      await writeStdout(chunk);
    }
  } else if (!opts.quiet || failed) {
    const format = report.usage ? formatUsage : formatHuman;
    (opts.quiet ? process.stderr : process.stdout).write(format(report, { verbose: opts.verbose, top: opts.top }));
  }
  return failed ? 1 : 0;
}

async function sweepCommand(
  opts: CliOptions,
  args: string[],
  { dryRun, pool, log, state }: { dryRun: boolean; pool: ScanPool; log: (m: string) => void; state: RunState },
): Promise<number> {
  // Everything the user wrote is checked before any engine is asked or anything is paused.
  const remove = (opts.remove ?? []).map(parseSelector);
  const policy = await policyFrom(opts);
  const keptDigests = await pinsFromFile(opts, dryRun);
  const fileLogs = await accessLogsFrom(opts, dryRun);
  const resolved = await resolveTarget(opts, args, log);
  // The one place that knows which storage is below.
  const storage = resolved.source ? bucketStorage(resolved.source) : filesystemStorage(resolved.target.root, pool);
  // A real run writes in the tree it found: one it cannot write is refused before the lock, the scan or a pause.
  if (!dryRun) storage.requireWritable();
  // On a bucket, a registry the window cannot hold would serve (and take pushes) while the sweep runs.
  if (!dryRun && resolved.target.unholdable) throw new UsageError(resolved.target.unholdable);
  const selectors = resolved.repositories.map(parseSelector);
  const runId = randomUUID();
  const { target, engine } = resolved;
  const progress = progressLine(opts.progress && !opts.quiet && process.stderr.isTTY === true && !process.env.CI);
  const confirm = async (preview: SweepPreview): Promise<boolean> => {
    progress.clear();
    return askOnTerminal(preview);
  };
  // The registry's version and its cache are asked under the lock: another run may hold the registry paused until then.
  const sweepWith = async (extra: Partial<SweepOptions>): Promise<SweepReport> => {
    // What the engine's containers and services run, asked before the scan (and outside the window).
    const pinned = await pinsInUse(resolved, opts, keptDigests, log);
    // The registry's log into the pull index, dry runs too (written unless the storage cannot be).
    const pulls = await gatherPulls(storage.pullIndex, fileLogs, opts.pullLog ? engineLogReader(resolved) : undefined, Date.now);
    const runtime = await runtimeFor(resolved, opts, dryRun, runId);
    try {
      return await sweep({
        target,
        selectors,
        remove,
        policy,
        pinned,
        pulls,
        dryRun,
        gcRunner: runtime.gcRunner,
        registryVersion: runtime.registryVersion,
        window: runtime.window,
        builtin: opts.gc === 'builtin' ? { graceMs: opts.grace } : undefined,
        gcMode: opts.gc === false ? 'none' : opts.gc,
        blobCache: runtime.blobCache,
        journal: opts.journal,
        quarantineMs: opts.quarantine,
        staleUploadsMs: opts.staleUploads,
        storage: storage.run,
        confirm: dryRun || opts.yes ? undefined : confirm,
        onProgress: progress.sink,
        usage: opts.usage,
        clock: await storage.clock(),
        ...extra,
      });
    } finally {
      await runtime.blobCache?.close();
    }
  };
  const lockOptions = { root: target.root, engine, containers: target.containers, target: { kind: target.kind, name: target.name }, bringBack: bringBackFor(opts, target), waitMs: opts.wait, token: runId };
  const run = dryRun ? sweepWith(storage.findings(target.containers)) : storage.exclusively(lockOptions, (lock, recovered) => sweepWith({ lock, recovered, docker: engine !== undefined }));
  state.report = await run.finally(() => {
    progress.clear();
    storage.close();
  });
  // The scan threads are done (the rescan is part of the run): their memory goes before the report is written.
  await pool.close();
  return printReport(state.report, opts);
}

export async function main(argv: string[]): Promise<void> {
  // A scan allocates a stream of short-lived objects per repository; by default V8 lets the heap grow
  // several times past what is live before collecting. Measured on a 100k-revision tree: peak RSS 201 → 152 MiB.
  // Workers started later get it too.
  v8.setFlagsFromString('--optimize-for-size');
  // A run is a few seconds of the same hot functions in each thread's isolate, and 15–18% of its CPU went to
  // TurboFan compiling them with inlining (perf). Without inlining, side by side (11 rounds, medium tree):
  // 1.37 s against 1.54 s, 2.39 against 2.75 CPU-seconds; the large tree 2.40 s against 2.95 s.
  v8.setFlagsFromString('--no-turbo-inlining');
  const debug = argv.includes('--debug');
  quietOnClosedPipes();
  const state: RunState = { target: '', startedAt: performance.now() };
  const unhook = recordOnSignal((exitCode) => recordRun(state, exitCode));
  try {
    process.exitCode = await run(argv, state);
  } catch (error) {
    if (error instanceof RegsweepError) {
      const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
      process.stderr.write(`regsweep: ${error.message}${cause}\n`);
      if (debug) process.stderr.write(`${error.stack}\n`);
      process.exitCode = error.exitCode;
      return;
    }
    process.stderr.write(`regsweep: ${(error as Error).message ?? String(error)}\n`);
    if (debug) process.stderr.write(`${(error as Error).stack}\n`);
    process.exitCode = 1;
  } finally {
    // The exit code is known here, however the run ended: --metrics-file records it.
    unhook();
    process.exitCode = recordRun(state, Number(process.exitCode ?? 0));
  }
}
