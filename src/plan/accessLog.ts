/**
 * Pulls in the registry's own log. A pull is a GET or HEAD of
 * `/v2/<name>/manifests/<reference>` answered 200, the reference a tag or a
 * digest. The registry (2.8 and 3.0 alike) writes each request twice: as its
 * logger's `response completed` line (logrus text or JSON formatter) and as
 * an Apache combined access-log line. Both are understood; the same request
 * read twice records the same pull, which only the latest time matters for.
 * Pure: lines come from the engine or a file elsewhere.
 */
import type { Digest } from '../model.js';
import { isDigest, isRepositoryName, isTagName } from '../storage/layout.js';

export interface Pull {
  repository: string;
  /** A tag, or the digest pulled by digest. */
  tag?: string;
  digest?: Digest;
  /** Milliseconds since the epoch: the line's own time. */
  at: number;
}

/** What one line was: a pull, another request or log line of the registry, or not a registry line at all. */
export type LineKind = 'pull' | 'registry' | 'junk';

const MONTHS: Record<string, string> = { Jan: '01', Feb: '02', Mar: '03', Apr: '04', May: '05', Jun: '06', Jul: '07', Aug: '08', Sep: '09', Oct: '10', Nov: '11', Dec: '12' };
// 127.0.0.1 - - [04/Dec/2026:00:35:55 +0000] "GET /v2/team/web/manifests/v1 HTTP/1.1" 200 92 "" "curl/7.88.1"
const COMBINED = /^\S+ \S+ \S+ \[(\d{2})\/([A-Z][a-z]{2})\/(\d{4}):(\d{2}:\d{2}:\d{2}) ([+-]\d{2})(\d{2})\] "([A-Z]+) (\S+) [^"]*" (\d{3}) /;
// time="2026-12-04T00:35:54.401115037Z" level=info msg="response completed" … http.request.method=GET … http.request.uri=/v2/… http.response.status=200
const TEXT_TIME = /^time="([^"]+)" level=\w+ msg=/;
const MANIFEST_URI = /^\/v2\/(.+)\/manifests\/([^/?#]+)(?:[?#].*)?$/;

/** A request line's method, path and status into a pull, when it is one. */
function pullOf(method: string, uri: string, status: number, at: number): Pull | undefined {
  if ((method !== 'GET' && method !== 'HEAD') || status !== 200 || !Number.isFinite(at)) return undefined;
  const m = MANIFEST_URI.exec(uri);
  if (!m) return undefined;
  let repository: string;
  let reference: string;
  try {
    repository = decodeURIComponent(m[1] as string);
    reference = decodeURIComponent(m[2] as string);
  } catch {
    return undefined;
  }
  if (!isRepositoryName(repository)) return undefined;
  if (isDigest(reference)) return { repository, digest: reference as Digest, at };
  return isTagName(reference) ? { repository, tag: reference, at } : undefined;
}

/** `key=value` or `key="quoted value"` of a logrus text line. */
function textField(line: string, key: string): string | undefined {
  const at = line.indexOf(` ${key}=`);
  if (at < 0) return undefined;
  const start = at + key.length + 2;
  if (line[start] !== '"') {
    const end = line.indexOf(' ', start);
    return line.slice(start, end < 0 ? undefined : end);
  }
  let value = '';
  for (let i = start + 1; i < line.length; i++) {
    const c = line[i] as string;
    if (c === '\\') value += line[++i] ?? '';
    else if (c === '"') return value;
    else value += c;
  }
  return undefined;
}

function fromCombined(m: RegExpExecArray): Pull | undefined {
  const [, day, month, year, time, zoneHours, zoneMinutes, method, uri, status] = m as unknown as string[];
  const mm = MONTHS[month as string];
  if (!mm) return undefined;
  const at = Date.parse(`${year}-${mm}-${day}T${time}${zoneHours}:${zoneMinutes}`);
  return pullOf(method as string, uri as string, Number(status), at);
}

function fromJson(line: string): { kind: LineKind; pull?: Pull } {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return { kind: 'junk' };
  }
  if (!entry || typeof entry !== 'object') return { kind: 'junk' };
  const e = entry as Record<string, unknown>;
  if (typeof e.msg !== 'string' || typeof e.time !== 'string' || typeof e.level !== 'string') return { kind: 'junk' };
  const method = e['http.request.method'];
  const uri = e['http.request.uri'];
  const status = e['http.response.status'];
  if (typeof method !== 'string' || typeof uri !== 'string' || typeof status !== 'number') return { kind: 'registry' };
  const pull = pullOf(method, uri, status, Date.parse(e.time));
  return pull ? { kind: 'pull', pull } : { kind: 'registry' };
}

function fromText(line: string, time: string): { kind: LineKind; pull?: Pull } {
  const method = textField(line, 'http.request.method');
  const uri = textField(line, 'http.request.uri');
  const status = textField(line, 'http.response.status');
  if (method === undefined || uri === undefined || status === undefined) return { kind: 'registry' };
  const pull = pullOf(method, uri, Number(status), Date.parse(time));
  return pull ? { kind: 'pull', pull } : { kind: 'registry' };
}

/** One line of the registry's log (its trailing newline and a `\r` allowed). */
export function parseLogLine(raw: string): { kind: LineKind; pull?: Pull } {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  if (line.startsWith('{')) return fromJson(line);
  const text = TEXT_TIME.exec(line);
  if (text) return fromText(line, text[1] as string);
  const combined = COMBINED.exec(line);
  if (combined) {
    const pull = fromCombined(combined);
    return pull ? { kind: 'pull', pull } : { kind: 'registry' };
  }
  return { kind: 'junk' };
}

/** What a log read found: its pulls and how many lines of each kind, for the report. */
export interface LogTally {
  lines: number;
  pulls: number;
  /** Lines that are not the registry's (another program's output, a torn line): skipped. */
  junk: number;
  /** The earliest and the latest time of a registry line read (ms), where any had one. */
  first?: number;
  last?: number;
}

export function emptyTally(): LogTally {
  return { lines: 0, pulls: 0, junk: 0 };
}

const LINE_TIME = /^time="([^"]+)"|"time":"([^"]+)"|\[(\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\]/;

/** The time a registry line carries, for the coverage of a file (engine lines have the engine's). */
export function lineTime(line: string): number | undefined {
  const m = LINE_TIME.exec(line);
  if (!m) return undefined;
  if (m[1] ?? m[2]) return Date.parse((m[1] ?? m[2]) as string);
  const c = /^(\d{2})\/([A-Z][a-z]{2})\/(\d{4}):(\S+) ([+-]\d{2})(\d{2})$/.exec(m[3] as string);
  const mm = c ? MONTHS[c[2] as string] : undefined;
  return c && mm ? Date.parse(`${c[3]}-${mm}-${c[1]}T${c[4]}${c[5]}:${c[6]}`) : undefined;
}

/** Counts a line into the tally, handing a pull to `onPull`. `at` overrides the line's time (the engine's timestamp). */
export function tallyLine(tally: LogTally, line: string, onPull: (pull: Pull) => void, at?: number): void {
  if (line === '') return;
  tally.lines++;
  const { kind, pull } = parseLogLine(line);
  if (kind === 'junk') {
    tally.junk++;
    return;
  }
  const time = at ?? pull?.at ?? lineTime(line);
  if (time !== undefined && Number.isFinite(time)) {
    if (tally.first === undefined || time < tally.first) tally.first = time;
    if (tally.last === undefined || time > tally.last) tally.last = time;
  }
  if (pull) {
    tally.pulls++;
    onPull(at === undefined ? pull : { ...pull, at });
  }
}
