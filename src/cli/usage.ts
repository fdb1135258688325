/**
 * The human form of `--usage`: where the disk goes, one row per repository,
 * largest first, each with a bar. Pure, like report.ts; the JSON form is the
 * report's own `usage` field.
 */
import type { RepositoryUsage, UsageReport } from '../plan/usage.js';
import type { SweepReport } from '../sweep.js';
import { type HumanOptions, formatBytes, pullNotes } from './report.js';

const BAR_WIDTH = 24;

/** A bar proportional to the largest row; a repository that takes no disk has none. */
function bar(bytes: number, largest: number): string {
  return bytes > 0 ? '█'.repeat(Math.max(1, Math.round((bytes / largest) * BAR_WIDTH))) : '';
}

/** Cells padded to their column: the first (names) to the left, the numbers to the right; the bar last, as it is. */
function aligned(rows: ReadonlyArray<readonly string[]>): string[] {
  const columns = Math.max(...rows.map((r) => r.length));
  const widths = Array.from({ length: columns - 1 }, (_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => {
    const cells = widths.map((w, c) => (c === 0 ? (r[c] ?? '').padEnd(w) : (r[c] ?? '').padStart(w)));
    const last = r[columns - 1];
    return `  ${[...cells, ...(last ? [last] : [])].join('  ')}`.trimEnd();
  });
}

/** A last pull as a table cell: the day, or the time within the last day. */
function pulledCell(iso: string | null | undefined): string {
  if (iso === undefined) return '';
  return iso === null ? 'never' : iso.slice(0, 19).replace('T', ' ');
}

function usageRow(r: RepositoryUsage, largest: number, pulls: boolean): string[] {
  const cells = [r.repository, String(r.tags), String(r.manifests), formatBytes(r.bytes), formatBytes(r.uniqueBytes), formatBytes(r.reclaimableBytes)];
  return [...cells, ...(pulls ? [pulledCell(r.lastPulled)] : []), bar(r.bytes, largest)];
}

/** With --verbose and a pull index: each tag of each row shown and its last pull. */
function tagRows(r: RepositoryUsage): string[][] {
  return (r.tagsPulled ?? []).map((t) => [`  :${t.tag}`, '', '', '', '', '', pulledCell(t.lastPulled), '']);
}

/** The table: the `top` largest repositories, how many more there are, and the totals (each blob once). */
function usageTable({ repositories, totals }: UsageReport, top: number, verbose: boolean): string[] {
  const shown = repositories.slice(0, top);
  const largest = shown[0]?.bytes ?? 0;
  const pulls = repositories.some((r) => r.lastPulled !== undefined);
  const header = ['repository', 'tags', 'manifests', 'bytes', 'unique', 'reclaimable', ...(pulls ? ['last pull'] : []), ''];
  const total = ['total', String(totals.tags), String(totals.manifests), formatBytes(totals.bytes), '', formatBytes(totals.reclaimableBytes), ...(pulls ? [''] : []), ''];
  const rows = shown.flatMap((r) => [usageRow(r, largest, pulls), ...(pulls && verbose ? tagRows(r) : [])]);
  const lines = aligned([header, ...rows, total]);
  const rest = repositories.length - shown.length;
  // The total row stays last; the note on the rows not shown goes above it.
  if (rest > 0) lines.splice(lines.length - 1, 0, `  … ${rest} more ${rest === 1 ? 'repository' : 'repositories'} (--top N shows more)`);
  return lines;
}

export function formatUsage(report: SweepReport, options: HumanOptions = {}): string {
  const usage = report.usage as UsageReport;
  const { target, plan, problems } = report;
  const version = target.registryVersion ? ` (registry ${target.registryVersion})` : '';
  const where = target.kind === 'path' ? target.root : `${target.kind} ${target.name}, storage at ${target.root}`;
  const lines = [`Where the disk goes in ${where}${version}`, ''];
  if (usage.repositories.length === 0) lines.push('  no repositories');
  else lines.push(...usageTable(usage, options.top ?? 10, options.verbose ?? false));
  lines.push(
    '',
    'bytes: its manifests and the blobs they reference; unique: those no other repository references; reclaimable: those the purge would free.',
    'A blob several repositories reference counts in each of their rows, and once in the total.',
    `Blobs no manifest references: ${formatBytes(usage.totals.unreferencedBytes)}.`,
    ...pullNotes(report, options.verbose),
    `The purge these options make (see --dry-run) would remove ${plan.manifests.length} ${plan.manifests.length === 1 ? 'manifest' : 'manifests'}; garbage-collect would then free ${formatBytes(report.predicted.bytes)}.`,
  );
  if (problems.length > 0) {
    lines.push('', `${problems.length} ${problems.length === 1 ? 'problem' : 'problems'} (a purge would leave those repositories untouched):`);
    for (const p of problems) lines.push(`  ${p.repository ? `${p.repository}: ` : ''}${p.message}${p.path ? ` [${p.path}]` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}
