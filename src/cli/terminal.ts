/** What regsweep draws on a terminal: the progress line, and the plan it asks about before a real run. */
import readline from 'node:readline/promises';
import type { ProgressEvent, ProgressSink } from '../model.js';
import type { SweepPreview } from '../sweep.js';
import { formatBytes, table } from './report.js';

function describePreview(p: SweepPreview): string {
  const { plan } = p;
  const lines = [`regsweep will change ${p.root}:`, ...table(p.before, p.after, 'after'), ''];
  if (plan.repositories.length > 0) lines.push(`  remove the repositories ${plan.repositories.map((r) => r.repository).join(', ')}`);
  if (plan.tags.length > 0) lines.push(`  remove ${plan.tags.length} tags`);
  lines.push(`  remove ${plan.manifests.length} manifests and ${plan.indexEntries.length} tag history entries`);
  lines.push(p.gc ? `  sweep blobs (${p.gc.why}), predicted to free ${p.predicted.blobs} blobs, ${formatBytes(p.predicted.bytes)}` : '  sweep no blobs (--no-gc)');
  lines.push(`  registry: ${p.window}`);
  return `${lines.join('\n')}\n`;
}

const PHASES: Record<ProgressEvent['phase'], string> = { scan: 'scanning', apply: 'removing', collect: 'garbage-collect', rescan: 'measuring' };

/** One line on stderr, redrawn at most ten times a second; only on a terminal, never under CI. */
export function progressLine(enabled: boolean): { sink?: ProgressSink; clear(): void } {
  if (!enabled) return { clear() {} };
  const started = Date.now();
  let last = 0;
  let drawn = false;
  return {
    sink(e) {
      const now = Date.now();
      if (now - last < 100 && e.done !== e.total) return;
      last = now;
      drawn = true;
      const count = e.total === undefined ? `${e.done}` : `${e.done}/${e.total}`;
      process.stderr.write(`\r\x1b[K${PHASES[e.phase]}: ${count} ${e.unit} (${((now - started) / 1000).toFixed(1)} s)`);
    },
    clear() {
      if (drawn) process.stderr.write('\r\x1b[K');
    },
  };
}

export async function askOnTerminal(preview: SweepPreview): Promise<boolean> {
  process.stderr.write(describePreview(preview));
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question('Proceed? [y/N] ');
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
