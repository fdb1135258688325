/**
 * The pull index of a run: read from beside docker/, advanced by what this run
 * reads of the registry's log (`--access-log` files, read first of all, and
 * the engine's log of the registry's containers), handed to the planner, and
 * written back once the run has planned (dry runs too, unless the storage
 * cannot be written).
 */
import { readRegistryLogs, registryLogContainers } from '../docker/registryLog.js';
import { UsageError } from '../errors.js';
import { type LogTally, type Pull, emptyTally, tallyLine } from '../plan/accessLog.js';
import type { PullView } from '../plan/planner.js';
import type { SweepPulls } from '../sweep.js';
import { readAccessLogs } from './accessLogFiles.js';
import type { CliOptions } from './program.js';
import type { Resolved } from './runtime.js';
import type { PullIndexStore } from '../run/storage.js';
import { PullIndex, PullIndexCorrupt, type PullReport, type SourceMark, type SourceRead } from '../plan/pullIndex.js';

/** What `--access-log` gave, read before anything else: its pulls (latest of each), tallies and reads. */
export interface FileLogs {
  pulls: Map<string, Pull>;
  tally: LogTally;
  reads: SourceRead[];
}

function keep(pulls: Map<string, Pull>, pull: Pull): void {
  const key = `${pull.repository}\n${pull.tag ?? pull.digest}`;
  if ((pulls.get(key)?.at ?? -Infinity) < pull.at) pulls.set(key, pull);
}

/**
 * `--access-log FILE...`, read before any engine is asked or anything changes
 * (an unreadable file refuses the run), keeping the latest pull of each tag and digest.
 */
export async function accessLogsFrom(opts: CliOptions, dryRun: boolean): Promise<FileLogs> {
  const logs: FileLogs = { pulls: new Map(), tally: emptyTally(), reads: [] };
  const files = opts.accessLog ?? [];
  if (files.length === 0) return logs;
  if (files.includes('-') && opts.keepDigests === '-') throw new UsageError('--access-log - and --keep-digests - both read stdin: give one of them a file');
  // A real run without --yes asks its question on stdin.
  if (files.includes('-') && !dryRun && !opts.yes) throw new UsageError('--access-log - reads stdin, which the confirmation needs: add --yes or --dry-run');
  logs.reads = await readAccessLogs(files, (text) => tallyLine(logs.tally, text, (pull) => keep(logs.pulls, pull)));
  return logs;
}

/** Reads the engine's log of the registry's containers from each one's mark, handing each line with its time. */
type EngineLogReader = (marks: (id: string) => SourceMark | undefined, onLine: (text: string, at: number) => void) => Promise<SourceRead[]>;

/** The engine's log of a Docker target's registry containers; none for a path, a volume without containers or a bucket. */
export function engineLogReader({ engine, target }: Resolved): EngineLogReader | undefined {
  if (!engine) return undefined;
  return async (marks, onLine) => readRegistryLogs(engine, await registryLogContainers(engine, target), marks, onLine);
}

async function loadIndex(store: PullIndexStore): Promise<{ index: PullIndex; existed: boolean; damaged?: string }> {
  const text = await store.read();
  if (text === undefined) return { index: PullIndex.empty(), existed: false };
  try {
    return { index: PullIndex.parse(text), existed: true };
  } catch (error) {
    if (!(error instanceof PullIndexCorrupt)) throw error;
    return { index: PullIndex.empty(), existed: true, damaged: `the pull index at ${store.where} is damaged (${error.message})` };
  }
}

/**
 * Reads the index and adds what this run reads of the log; returns the view
 * the planner judges by, what the report says, and `save`, which the sweep
 * calls once it has planned to write the index back.
 */
export async function gatherPulls(store: PullIndexStore, files: FileLogs, engineLog: EngineLogReader | undefined, now: () => number): Promise<SweepPulls> {
  const { index, existed, damaged } = await loadIndex(store);
  const tally = { ...files.tally };
  for (const pull of files.pulls.values()) index.record(pull);
  const engineReads = engineLog ? await engineLog((id) => index.mark(id), (text, at) => tallyLine(tally, text, (pull) => index.record(pull), at)) : [];
  const reads = [...files.reads, ...engineReads];
  index.advance(reads, now());
  const failed = reads.filter((r) => r.failed !== undefined).map((r) => `${r.id}: ${r.failed}`);
  const coverage = index.coverage;
  const view: PullView = {
    index,
    ...(reads.length > 0 && coverage ? { coverage } : {}),
    ...(reads.length === 0 ? { why: 'this run read no registry log (a registry container or service target reads its log; --access-log reads files)' } : {}),
  };
  // Written once the plan is made (save): a run refused before then changes nothing, its index included.
  const save = async (): Promise<PullReport['index']> => {
    // A run that read no log leaves the storage as it is (a damaged index is rebuilt only from a log).
    const written = reads.length === 0 ? undefined : await store.write(index.serialize());
    const state = !written ? 'unchanged' : written.state !== 'written' ? written.state : damaged ? 'rebuilt' : existed ? 'written' : 'created';
    const rebuilt = written?.state === 'written' ? 'rebuilt from the log' : 'not trusted; a run that reads the log and can write rebuilds it';
    const problem = written?.state === 'failed' ? written.problem : damaged && `${damaged}: ${rebuilt}`;
    return { where: store.where, state, ...(problem ? { problem } : {}) };
  };
  return {
    view,
    save,
    report: {
      coverage: coverage ? { from: new Date(coverage.from).toISOString(), to: new Date(coverage.to).toISOString() } : null,
      read: { sources: reads.length, lines: tally.lines, pulls: tally.pulls, junk: tally.junk, failed },
    },
  };
}
