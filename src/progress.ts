/**
 * What the core reports while it works. The core only calls a sink; the CLI
 * decides whether anything is drawn (a terminal, not CI, not --quiet).
 */
export type Phase = 'scan' | 'apply' | 'collect' | 'rescan';

export interface ProgressEvent {
  phase: Phase;
  /** Items done so far in this phase (repositories, removals, marked blobs). */
  done: number;
  total?: number;
  /** A short word on what is counted. */
  unit: string;
}

export type ProgressSink = (event: ProgressEvent) => void;

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
