/**
 * The registry's own `garbage-collect`: the flags regsweep gives it, what its
 * output says, and the interface of whatever runs it (the local binary here,
 * a helper container in docker/).
 */
import type { ProgressSink } from '../model.js';
import { isV3 } from './version.js';

export interface GcDecision {
  args: string[];
  why: string;
}

/**
 * `--delete-untagged` on 2.x deletes the untagged children of tagged lists and
 * breaks multi-arch images, and on every version deletes untagged referrers.
 * regsweep has already removed what is untagged and unneeded, so it is used
 * only on 3.0.0+ and only when the plan keeps no untagged manifest on purpose.
 */
export function chooseGcFlags(version: string, keepsUntagged: boolean): GcDecision {
  if (!isV3(version)) {
    return { args: [], why: `registry ${version} (2.x): plain garbage-collect; --delete-untagged would break multi-arch images` };
  }
  if (keepsUntagged) {
    return { args: [], why: `registry ${version}: plain garbage-collect; the plan keeps untagged children or referrers that --delete-untagged would remove` };
  }
  return { args: ['--delete-untagged'], why: `registry ${version}: garbage-collect --delete-untagged; every kept manifest is tagged` };
}

export interface GcSummary {
  marked: number;
  blobsEligible: number;
  manifestsEligible: number;
}

export interface GcResult {
  ran: boolean;
  command: string[];
  exitCode: number | null;
  summary?: GcSummary;
  output: string;
  /** Why it did not run, when it did not. */
  skipped?: string;
}

export function parseGcSummary(output: string): GcSummary | undefined {
  const m = /(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion/.exec(output);
  if (!m) return undefined;
  return { marked: Number(m[1]), blobsEligible: Number(m[2]), manifestsEligible: Number(m[3]) };
}


export interface CollectOptions {
  args: string[];
  /** Stops it (SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Its output as it comes, for progress. */
  onOutput?: (text: string) => void;
  /** A process started on this host, so a watchdog can stop it if regsweep dies. */
  onStarted?: (pid: number) => void;
}

/** Runs garbage-collect somewhere: the local registry binary, or a helper container. */
export interface GcRunner {
  /** The registry version garbage-collect runs as. */
  readonly version: string;
  /** Where it runs, for the report. */
  readonly where: string;
  collect(options: CollectOptions): Promise<GcResult>;
}

/** Counts garbage-collect's own output lines into progress: blobs marked, then blobs swept. */
export function gcLineCounter(sink: ProgressSink | undefined): (text: string) => void {
  let marked = 0;
  let swept = 0;
  let partial = '';
  return (text) => {
    if (!sink) return;
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (/: marking (manifest|blob) /.test(line)) marked++;
      else if (line.startsWith('blob eligible for deletion')) swept++;
    }
    sink(swept > 0 ? { phase: 'collect', done: swept, unit: 'blobs swept' } : { phase: 'collect', done: marked, unit: 'blobs marked' });
  };
}
