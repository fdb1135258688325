/**
 * `--metrics-file`: the last run as a Prometheus textfile for node_exporter's
 * textfile collector, written whatever the run's outcome: a dashboard sees a
 * cron job or a systemd timer that fails as surely as one that succeeds.
 */
import fs from 'node:fs';
import type { Option } from 'commander';
import os from 'node:os';
import path from 'node:path';
import type { SweepReport } from '../sweep.js';
import { errnoText } from '../util/errno.js';
import type { CliOptions } from './program.js';

/** What is known of a run when it ends: always its target, exit code and times; its report when it got that far. */
export interface RunOutcome {
  /** What the user named (TARGET, --volume or --path), as RunState.target. */
  target: string;
  exitCode: number;
  /** When the run ended, in milliseconds since the epoch. */
  endedAt: number;
  durationMs: number;
  report?: SweepReport;
}

type Gauge = [name: string, help: string, value: (o: RunOutcome) => number];

// A report's absence (a refusal, a failure before the plan) counts as 0 in every gauge that reads it.
const GAUGES: Gauge[] = [
  ['timestamp_seconds', 'When the last regsweep run ended, in seconds since the epoch.', (o) => o.endedAt / 1000],
  ['duration_seconds', 'How long the last regsweep run took, in seconds.', (o) => o.durationMs / 1000],
  ['paused_seconds', 'How long the last regsweep run kept the registry paused, in seconds.', (o) => (o.report?.pausedMs ?? 0) / 1000],
  ['freed_bytes', 'Bytes of blobs the last regsweep run freed, measured (0 on a dry run).', (o) => o.report?.freed?.bytes ?? 0],
  ['predicted_bytes', 'Bytes of blobs the last regsweep run predicted garbage-collect to free.', (o) => o.report?.predicted.bytes ?? 0],
  ['removed_manifests', 'Manifest revisions the last regsweep run removed (on a dry run: would remove).', (o) => o.report?.plan.manifests.length ?? 0],
  ['removed_tags', 'Tags the last regsweep run removed (on a dry run: would remove).', (o) => o.report?.plan.tags.length ?? 0],
  ['problems', 'Problems the last regsweep run reported (spared repositories, garbage-collect failures).', (o) => o.report?.problems.length ?? 0],
  ['exit_code', 'Exit code of the last regsweep run (0 done, 1 problems, 2 refused, 75 busy, 130 interrupted; 128+N killed by signal N).', (o) => o.exitCode],
];

/** A label value as the text format writes it between double quotes: backslash, double quote and line feed escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Go's float syntax, which Prometheus parses: JavaScript's own, but for the infinities. */
function sample(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** The run as Prometheus text exposition format: each gauge with its HELP and TYPE lines and a `target` label. */
export function formatMetrics(outcome: RunOutcome): string {
  const label = `{target="${escapeLabelValue(outcome.target)}"}`;
  const lines = GAUGES.flatMap(([suffix, help, value]) => {
    const name = `regsweep_last_run_${suffix}`;
    return [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name}${label} ${sample(value(outcome))}`];
  });
  return `${lines.join('\n')}\n`;
}

/**
 * Replaces `file` atomically: the text goes to a temporary file in the same
 * directory (same filesystem, so the rename is atomic), is flushed, and is
 * renamed over `file`, so the collector never reads half a file. The temporary
 * name does not end in `.prom`, so the collector never reads it either.
 * Synchronous: it also runs from a signal handler just before the process ends.
 */
function writeMetricsFile(file: string, text: string): void {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(temporary, 'w', 0o644);
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temporary, file);
  } catch (error) {
    fs.rmSync(temporary, { force: true });
    throw error;
  }
}

/**
 * A run that SIGINT or SIGTERM ends where regsweep lets the signal end the
 * process (a dry run; a real run before or after its window) records its
 * outcome too, with the code a shell reports for it (128 + the signal's
 * number), and then ends by the signal as it would have. While another
 * handler is installed (the window's, the lock's), that one decides: the run
 * then ends with an exit code that `main` records, or the handler raises the
 * signal again once it is gone, and this one sees it then. Returns the
 * function that removes the handler.
 */
export function recordOnSignal(record: (exitCode: number) => void): () => void {
  const handler = (signal: NodeJS.Signals): void => {
    if (process.listenerCount(signal) > 1) return;
    remove();
    record(128 + os.constants.signals[signal]);
    process.kill(process.pid, signal);
  };
  const remove = (): void => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return remove;
}

/** What `main` learns of a run as it goes, for `--metrics-file`. */
export interface RunState {
  metricsFile?: string;
  /**
   * What the user named (TARGET, --volume or --path), however the run ends. Not
   * the name the engine resolves: a refusal before the target is found (a bad
   * option, an engine that does not answer, no such container) knows only the
   * command line, and one target must keep one series, so a container named by
   * its id is labelled by that id on every run.
   */
  target: string;
  report?: SweepReport;
  /** `performance.now()` when the run began. */
  startedAt: number;
}

/** The value of the last `--name VALUE` or `--name=VALUE` in argv. */
function lastValue(argv: readonly string[], names: readonly string[]): string | undefined {
  for (let i = argv.length - 1; i >= 2; i--) {
    const word = argv[i] as string;
    for (const name of names) {
      if (word === name && i + 1 < argv.length) return argv[i + 1];
      if (word.startsWith(`${name}=`)) return word.slice(name.length + 1);
    }
  }
  return undefined;
}

/**
 * The first operand of argv as commander reads it (a run's TARGET): options
 * and their values are skipped by the program's own definitions, so it is the
 * same word wherever the TARGET stands. Reading stops at an unknown option.
 */
function firstOperand(argv: readonly string[], options: readonly Option[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const word = argv[i] as string;
    if (word === '--') return argv[i + 1];
    if (!word.startsWith('-') || word === '-') return word;
    if (word.startsWith('--') && word.includes('=')) continue;
    const option = options.find((o) => o.long === word || o.short === word);
    if (!option) return undefined;
    const takesNext = (): boolean => i + 1 < argv.length && !(argv[i + 1] as string).startsWith('-');
    if (option.variadic) while (takesNext()) i++;
    else if (option.required || (option.optional && takesNext())) i++;
  }
  return undefined;
}

/**
 * The metrics file and target of a command line commander refused. It stops
 * at an unknown option or a bad value, so what lies beyond is read from argv
 * itself; the TARGET is the word a run of the same command line takes for it.
 */
export function namedInRefused(parsed: Partial<CliOptions>, argv: readonly string[], options: readonly Option[]): Pick<RunState, 'metricsFile' | 'target'> {
  const target = parsed.path ?? parsed.volume ?? lastValue(argv, ['--path']) ?? lastValue(argv, ['--volume', '-v']) ?? firstOperand(argv, options) ?? '';
  return { metricsFile: parsed.metricsFile ?? lastValue(argv, ['--metrics-file']), target };
}

/**
 * Writes the metrics file when the run asked for one, and returns the exit
 * code to end with: a file that cannot be written is one line on stderr, and a
 * run that would have ended with 0 ends with 1 (a timer's unit then fails,
 * where a dashboard would only see the file go stale).
 */
export function recordRun(state: RunState, exitCode: number): number {
  if (!state.metricsFile) return exitCode;
  const outcome = { target: state.target, exitCode, endedAt: Date.now(), durationMs: performance.now() - state.startedAt, report: state.report };
  try {
    writeMetricsFile(state.metricsFile, formatMetrics(outcome));
    return exitCode;
  } catch (error) {
    process.stderr.write(`regsweep: cannot write --metrics-file ${state.metricsFile}: ${errnoText(error)}\n`);
    return exitCode === 0 ? 1 : exitCode;
  }
}
