/**
 * Turns a SweepReport into text for people and JSON for machines. Pure: the
 * CLI decides where it goes.
 */
import { PackedList } from '../storage/digestTable.js';
import type { RepositoryReclaim } from '../plan/planTree.js';
import type { Totals } from '../model.js';
import type { GcMode, SweepReport } from '../sweep.js';
import { formatBytes } from '../util/bytes.js';

export { formatBytes };

function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

export function table(before: Totals, after: Totals, afterLabel: string): string[] {
  const rows: Array<[string, string, string]> = [
    ['', 'before', afterLabel],
    ['repositories', String(before.repositories), String(after.repositories)],
    ['tags', String(before.tags), String(after.tags)],
    ['manifests', String(before.manifests), String(after.manifests)],
    ['blobs', String(before.blobs), String(after.blobs)],
    ['bytes', formatBytes(before.bytes), formatBytes(after.bytes)],
  ];
  const width = (column: 0 | 1 | 2): number => Math.max(...rows.map((r) => r[column].length));
  const [w0, w1, w2] = [width(0), width(1), width(2)];
  return rows.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padStart(w1)}  ${c.padStart(w2)}`);
}

export interface HumanOptions {
  verbose?: boolean;
  /** Rows of the per-repository table (default 10). */
  top?: number;
}

const BAR_WIDTH = 24;

/** The largest reclaimable repositories, each with a bar proportional to the largest. */
function reclaimTable(rows: readonly RepositoryReclaim[], top: number): string[] {
  const shown = rows.filter((r) => r.predictedBytes > 0).slice(0, top);
  if (shown.length === 0) return [];
  const largest = shown[0]?.predictedBytes ?? 1;
  const nameWidth = Math.max(...shown.map((r) => r.repository.length));
  const sizes = shown.map((r) => formatBytes(r.predictedBytes));
  const sizeWidth = Math.max(...sizes.map((x) => x.length));
  const lines = shown.map((r, i) => {
    const bar = '█'.repeat(Math.max(1, Math.round((r.predictedBytes / largest) * BAR_WIDTH)));
    return `  ${r.repository.padEnd(nameWidth)}  ${(sizes[i] as string).padStart(sizeWidth)}  ${bar}`;
  });
  const rest = rows.filter((r) => r.predictedBytes > 0).slice(top);
  if (rest.length > 0) lines.push(`  … ${plural(rest.length, 'more repository', 'more repositories')}, ${formatBytes(rest.reduce((n, r) => n + r.predictedBytes, 0))}`);
  return lines;
}

/** What regsweep's own sweep left, beyond the prediction. */
function builtinNotes({ builtin }: SweepReport): string[] {
  if (!builtin) return [];
  const lines: string[] = [];
  if (builtin.recent.blobs > 0) lines.push(`  left ${plural(builtin.recent.blobs, 'unreferenced blob')}, ${formatBytes(builtin.recent.bytes)}, newer than the grace (a push may still need them)`);
  if (builtin.remarked > 0) lines.push(`  ${plural(builtin.remarked, 'revision')} pushed since the scan kept ${plural(builtin.spared.blobs, 'predicted blob')}, ${formatBytes(builtin.spared.bytes)}`);
  if (builtin.layerLinks > 0) lines.push(`  removed ${plural(builtin.layerLinks, '_layers link')} of swept blobs`);
  if (builtin.danglingLinks > 0) lines.push(`  removed ${plural(builtin.danglingLinks, '_layers link')} whose blobs were gone before this run (left by a run that died after its sweep)`);
  lines.push(...clockNote(builtin.clock));
  return lines;
}

/** A skew worth a word: this process's clock is not the storage's, and the grace counted on the storage's. */
function clockNote({ source, offsetMs }: NonNullable<SweepReport['builtin']>['clock']): string[] {
  if (source !== 'storage' || Math.abs(offsetMs) < 1000) return [];
  const skew = `${(Math.abs(offsetMs) / 1000).toFixed(0)} s ${offsetMs < 0 ? 'behind' : 'ahead of'}`;
  return [`  the storage's clock is ${skew} this process's: the grace counted on the storage's`];
}

/** What this run found of other runs: one that holds the registry now, one that died and what was brought back. */
function runNotes(report: SweepReport): string[] {
  const lines: string[] = [];
  const { lock, recovered } = report;
  if (lock?.alive) lines.push(`Another regsweep run (pid ${lock.holder.pid} on ${lock.holder.hostname}, started ${lock.holder.startedAt}) holds this registry now.`);
  if (recovered) {
    const { holder } = recovered;
    const what = [
      ...(recovered.containers.length > 0 ? [`brought back ${recovered.containers.join(', ')}`] : []),
      ...(recovered.services?.length ? [`took ${recovered.services.join(', ')} out of read-only mode`] : []),
      ...(recovered.containers.length + (recovered.services?.length ?? 0) === 0 ? ['found nothing paused'] : []),
      ...(recovered.helpersRemoved > 0 ? [`removed ${plural(recovered.helpersRemoved, 'helper container')}`] : []),
      ...(recovered.gcStopped ? ['stopped its garbage-collect'] : []),
    ];
    const by = recovered.by === 'watchdog' ? 'its watchdog' : 'this run';
    lines.push(`Recovered a regsweep run that died (pid ${holder.pid} on ${holder.hostname}, started ${holder.startedAt}): ${by} ${what.join(', ')} at ${recovered.at}.`);
  }
  return lines.length > 0 ? [...lines, ''] : lines;
}

/** The manifests kept because something uses them, that would otherwise have gone: a line each, with its users. */
function inUseNotes({ inUse }: SweepReport): string[] {
  if (inUse.length === 0) return [];
  const them = inUse.length === 1 ? 'it' : 'they';
  return [`Kept ${plural(inUse.length, 'manifest')} in use (${them} would otherwise go):`, ...inUse.map((u) => `  + ${u.repository}@${u.digest}: ${u.users.join(', ')}`)];
}

/**
 * The pull index: why pull rules selected nothing (always), a damaged index or
 * a log it could not read (always), and with --verbose what it read and covers.
 */
export function pullNotes({ pulls }: SweepReport, verbose = false): string[] {
  if (!pulls) return [];
  const lines = pulls.held.map((h) => `Pull rule held: ${h}.`);
  if (pulls.index.problem) lines.push(`Pull index: ${pulls.index.problem}.`);
  for (const f of pulls.read.failed) lines.push(`Registry log not read: ${f}.`);
  if (verbose || pulls.held.length > 0) {
    const coverage = pulls.coverage ? `covers the log since ${pulls.coverage.from}` : 'has seen no log yet';
    const state = pulls.index.state === 'read-only' ? 'not written: this run cannot write the storage' : pulls.index.state;
    const read = `read ${plural(pulls.read.sources, 'log')}: ${plural(pulls.read.lines, 'line')}, ${plural(pulls.read.pulls, 'pull line')}, ${plural(pulls.read.junk, 'line')} not the registry's skipped`;
    lines.push(`Pull index ${pulls.index.where} (${state}) ${coverage}; ${read}.`);
  }
  return lines;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** Who sweeps the blobs, as the report names it. */
const SWEEPER: Record<GcMode, string> = { builtin: "regsweep's own sweep", registry: "the registry's garbage-collect", none: 'no sweep' };

/** Which sweep ran (or would run), with `--gc`, and what it freed against the prediction. */
function sweepLine({ gc, dryRun, predicted: p, freed: f }: SweepReport): string {
  const predicted = `${plural(p.blobs, 'blob')}, ${formatBytes(p.bytes)}`;
  if (gc.mode === 'none') return `No blobs swept (--no-gc); a sweep would free ${predicted}.`;
  // The line's first word: "regsweep" stays lower case, "the" does not.
  const who = `${gc.mode === 'registry' ? "The registry's garbage-collect" : SWEEPER[gc.mode]} (--gc ${gc.mode}`;
  if (dryRun) return `${who}) would then free ${predicted}.`;
  if (!gc.ran) return `${who}) not run (${gc.skipped}); it would free ${predicted}.`;
  const freed = f ? `${plural(f.blobs, 'blob')}, ${formatBytes(f.bytes)}` : 'unknown';
  const exit = gc.mode === 'registry' ? `, exit ${gc.exitCode}` : '';
  return `${who}${exit}): predicted ${predicted}; freed ${freed}.`;
}

export function formatHuman(report: SweepReport, options: HumanOptions = {}): string {
  const lines: string[] = [];
  const { target } = report;
  const version = target.registryVersion ? ` (registry ${target.registryVersion})` : '';
  const where = target.kind === 'path' || target.kind === 'bucket' ? target.root : `${target.kind} ${target.name}, storage at ${target.root}`;
  const requests = report.requests ? `, read in ${plural(report.requests.total, 'request')}` : '';
  lines.push(`${report.dryRun ? 'Dry run on' : 'Purged'} ${where}${version}${requests}`, '');
  lines.push(...runNotes(report));
  lines.push(...table(report.before, report.after, report.dryRun ? 'after (predicted)' : 'after'), '');

  const { repositories, manifests, indexEntries, tags } = report.plan;
  const repos = new Set(tags.map((t) => t.repository));
  for (const m of manifests) repos.add(m.repository);
  for (const e of indexEntries) repos.add(e.repository);
  if (manifests.length + indexEntries.length + tags.length === 0) {
    lines.push('Nothing to remove: every revision is needed by a tag.');
  } else {
    const parts = [plural(manifests.length, 'manifest'), plural(indexEntries.length, 'tag history entry', 'tag history entries')];
    if (tags.length > 0) parts.unshift(plural(tags.length, 'tag'));
    if (repositories.length > 0) parts.unshift(plural(repositories.length, 'whole repository', 'whole repositories'));
    lines.push(`${report.dryRun ? 'Would remove' : 'Removed'} ${parts.join(', ')} in ${plural(repos.size, 'repository', 'repositories')}.`);
  }
  for (const r of repositories) lines.push(`  - repository ${r.repository}${r.nested.length > 0 ? ` (its nested ${r.nested.join(', ')} stay)` : ''}`);
  for (const t of tags.filter((t) => t.reason !== 'repository-removed')) lines.push(`  - tag ${t.repository}:${t.tag}: ${t.detail}`);
  lines.push(...inUseNotes(report));
  lines.push(...pullNotes(report, options.verbose));
  if (options.verbose) {
    for (const m of manifests) lines.push(`  - ${m.repository}@${m.digest} (${m.reason})`);
    for (const e of indexEntries) lines.push(`  - ${e.repository}:${e.tag} history ${e.digest} (${e.reason})`);
    for (const p of report.removedPaths) lines.push(`  removed ${p}`);
  }

  const reclaim = reclaimTable(report.perRepository, options.top ?? 10);
  if (reclaim.length > 0) lines.push('', 'Reclaimable by repository (predicted):', ...reclaim);
  lines.push('', sweepLine(report));
  if (report.gc.decision) lines.push(`  ${report.gc.decision}`);
  lines.push(...builtinNotes(report));
  if (report.quarantine) lines.push(`What was removed is kept until ${report.quarantine.until} in ${report.quarantine.path}; \`regsweep --path ${target.root} --restore ${report.quarantine.path}\` puts it back.`);
  if (report.staleUploads) lines.push(`${report.dryRun ? 'Would remove' : 'Removed'} ${plural(report.staleUploads.uploads, 'stale upload')}, ${formatBytes(report.staleUploads.bytes)} (--stale-uploads).`);
  if (report.blobCache) lines.push(`Redis blob cache at ${report.blobCache.where}: ${plural(report.blobCache.cleared, 'entry', 'entries')} of removed blobs and revisions cleared.`);
  if (options.verbose && report.gc.output) lines.push(...report.gc.output.trimEnd().split('\n').map((l) => `  | ${l}`));
  if (!report.dryRun) {
    const gcTime = report.gc.ran && report.gc.durationMs !== null ? ` (${SWEEPER[report.gc.mode]} ${seconds(report.gc.durationMs)})` : '';
    const back = report.broughtBack ? `, then ${report.broughtBack.how}${report.broughtBack.order ? ` ${report.broughtBack.order}` : ''} (${report.broughtBack.why})` : '';
    const held = report.broughtBack?.readOnly ? 'read-only' : 'paused';
    const paused = report.pausedMs > 0 || report.broughtBack ? `registry ${held} ${seconds(report.pausedMs)}${back}; ` : '';
    lines.push(`Maintenance window ${seconds(report.windowMs)}${gcTime}; ${paused}total ${seconds(report.durationMs)}.`);
  }
  if (report.problems.length > 0) {
    const spared = report.problems.some((p) => p.repository) ? ' (those repositories were left untouched)' : '';
    lines.push('', `${plural(report.problems.length, 'problem')}${spared}:`);
    for (const p of report.problems) lines.push(`  ${p.repository ? `${p.repository}: ` : ''}${p.message}${p.path ? ` [${p.path}]` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

const JSON_SCHEMA_VERSION = 1;

function jsonDocument(report: SweepReport): object {
  // The removed paths and garbage-collect's output are for --verbose; the plan already names every item.
  const { gc, removedPaths: _paths, ...rest } = report;
  const { output: _output, ...gcFields } = gc;
  return { schemaVersion: JSON_SCHEMA_VERSION, ...rest, gc: gcFields };
}

const CHUNK_CHARS = 1 << 16;

/**
 * The JSON report in pieces of about 64 KiB, the same text as
 * `JSON.stringify(document, null, 2)`: a plan with a million entries is
 * written entry by entry, never held as one string (or one array of objects).
 */
export function* jsonChunks(report: SweepReport): Generator<string> {
  let pending = '';
  for (const piece of pretty(jsonDocument(report), '')) {
    pending += piece;
    if (pending.length >= CHUNK_CHARS) {
      yield pending;
      pending = '';
    }
  }
  yield `${pending}\n`;
}

/** Whether a plain object holds a PackedList, at any depth through plain objects: those are written piece by piece. */
function holdsPackedList(value: object): boolean {
  for (const v of Object.values(value)) {
    if (v instanceof PackedList) return true;
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof (v as { toJSON?: unknown }).toJSON !== 'function' && holdsPackedList(v)) return true;
  }
  return false;
}

/**
 * JSON.stringify's own text, indented to sit at `indent`. A newline can only
 * be layout in it (one inside a string is escaped), so re-indenting is a
 * replace; this is what makes a million plan entries cheap to write.
 */
function stringified(value: unknown, indent: string): string {
  const text = JSON.stringify(value, null, 2) ?? 'null';
  return indent === '' ? text : text.replace(/\n/g, `\n${indent}`);
}

/**
 * A PackedList's entries as JSON.stringify would indent them, written from its
 * columns without making each entry's object: the report of a large plan is
 * mostly these, and it is written while nothing else can happen.
 */
function* packedItems(list: PackedList<object>, indent: string): Generator<string> {
  const inner = `${indent}  `;
  const keyPrefixes = list.keys.map((key) => `${inner}  ${JSON.stringify(key)}: `);
  for (let i = 0; i < list.length; i++) {
    let entry = '';
    for (let k = 0; k < keyPrefixes.length; k++) {
      const value = list.jsonAt(i, k);
      if (value === undefined) continue;
      entry += `${entry === '' ? '{\n' : ',\n'}${keyPrefixes[k]}${value}`;
    }
    entry = entry === '' ? '{}' : `${entry}\n${inner}}`;
    yield `${i === 0 ? '[\n' : ',\n'}${inner}${entry}`;
  }
  yield list.length === 0 ? '[]' : `\n${indent}]`;
}

/**
 * The document piece by piece: a PackedList entry by entry, an array element
 * by element, the plain objects that hold one field by field, and everything
 * else in one JSON.stringify.
 */
function* pretty(value: unknown, indent: string): Generator<string> {
  if (value instanceof PackedList) {
    yield* packedItems(value, indent);
    return;
  }
  // Element by element: a million-revision plan checks some 100,000 tags, 10 MB of text in one string.
  if (Array.isArray(value) && value.length > 0) {
    for (const [i, v] of value.entries()) {
      yield `${i === 0 ? '[\n' : ',\n'}${indent}  `;
      yield* pretty(v, `${indent}  `);
    }
    yield `\n${indent}]`;
    return;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || typeof (value as { toJSON?: unknown }).toJSON === 'function' || !holdsPackedList(value)) {
    yield stringified(value, indent);
    return;
  }
  const fields = Object.entries(value).filter(([, v]) => v !== undefined && typeof v !== 'function' && typeof v !== 'symbol');
  const inner = `${indent}  `;
  for (const [i, [key, v]] of fields.entries()) {
    yield `${i === 0 ? '{\n' : ',\n'}${inner}${JSON.stringify(key)}: `;
    yield* pretty(v, inner);
  }
  yield `\n${indent}}`;
}

export function toJson(report: SweepReport): string {
  return [...jsonChunks(report)].join('');
}
