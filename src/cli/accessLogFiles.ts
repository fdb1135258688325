/**
 * `--access-log FILE...`: the registry's log read from files or stdin (`-`),
 * as a log shipper or `docker logs` left it. A file is gunzipped when its
 * first bytes are gzip's magic (a rotated `registry.log.2.gz`, or one renamed
 * without its suffix), whatever its name; concatenated gzip members are read
 * through. Read as a stream, so a log of any size costs a line's memory.
 *
 * Every file is read before anything changes: one that cannot be read
 * (missing, a directory, no permission, a gzip cut short) refuses the run
 * (UsageError, exit 2) before any engine is asked or any index written.
 */
import fs from 'node:fs/promises';
import { Readable, pipeline } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import { UsageError } from '../errors.js';
import { lineTime } from '../plan/accessLog.js';
import type { SourceRead } from '../plan/pullIndex.js';
import { errnoOf } from '../util/errno.js';

const GZIP_MAGIC = [0x1f, 0x8b];
/** A "line" longer than this is no registry's (a binary file): handed on in pieces, each counted as junk, so memory stays bounded. */
const MAX_LINE = 1 << 20;

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file',
  ENOTDIR: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory',
};

function unreadable(name: string, error: unknown): UsageError {
  const code = errnoOf(error) ?? '';
  const why = ERRNO_TEXT[code] ?? (code.startsWith('Z_') ? `not a whole gzip file (${(error as Error).message})` : (error as Error).message);
  return new UsageError(`cannot read --access-log ${name}: ${why}`, { cause: error });
}

/** The bytes of `source`, gunzipped when they start with gzip's magic. */
async function* plainBytes(source: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
  const chunks = source[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  let done = false;
  while (head.length < GZIP_MAGIC.length && !done) {
    const next = await chunks.next();
    if (next.done) done = true;
    else head = Buffer.concat([head, Buffer.from(next.value)]);
  }
  async function* all(): AsyncGenerator<Buffer> {
    if (head.length > 0) yield head;
    for (let next = done ? undefined : await chunks.next(); next && !next.done; next = await chunks.next()) yield Buffer.from(next.value);
  }
  if (head[0] !== GZIP_MAGIC[0] || head[1] !== GZIP_MAGIC[1]) return yield* all();
  // pipeline() destroys the gunzip with the source's error too: the loop below throws either.
  const gunzip = pipeline(Readable.from(all()), createGunzip(), () => {});
  for await (const chunk of gunzip) yield chunk as Buffer;
}

/** The earliest and the latest time of the lines read (ms), where any line had one. */
interface Span {
  first?: number;
  last?: number;
}

/** Hands each line of `source` to `onLine` (a last line without newline too); returns the span of the times its lines carried. */
async function readLines(source: AsyncIterable<Buffer | string>, onLine: (text: string) => void): Promise<Span> {
  const decoder = new StringDecoder('utf8');
  const span: Span = {};
  const line = (text: string): void => {
    const at = lineTime(text);
    if (at !== undefined && Number.isFinite(at)) {
      if (span.first === undefined || at < span.first) span.first = at;
      if (span.last === undefined || at > span.last) span.last = at;
    }
    onLine(text);
  };
  let carry = '';
  for await (const chunk of plainBytes(source)) {
    const parts = (carry + decoder.write(chunk)).split('\n');
    carry = parts.pop() as string;
    for (const part of parts) line(part);
    while (carry.length > MAX_LINE) {
      line(carry.slice(0, MAX_LINE));
      carry = carry.slice(MAX_LINE);
    }
  }
  carry += decoder.end();
  if (carry !== '') line(carry);
  return span;
}

async function readFile(name: string, onLine: (text: string) => void): Promise<Span> {
  const handle = await fs.open(name, 'r');
  try {
    return await readLines(handle.createReadStream({ autoClose: false }), onLine);
  } finally {
    await handle.close();
  }
}

/**
 * Reads each file (`-`: `stdin`, once) line by line into `onLine`, and says
 * for each what coverage needs: its name and the times of its earliest and
 * its latest line.
 */
export async function readAccessLogs(files: readonly string[], onLine: (text: string) => void, stdin: NodeJS.ReadableStream = process.stdin): Promise<SourceRead[]> {
  const reads: SourceRead[] = [];
  let stdinRead = false;
  for (const name of files) {
    if (name === '-' && stdinRead) continue;
    let span: Span;
    try {
      if (name === '-') {
        stdinRead = true;
        span = await readLines(stdin as AsyncIterable<Buffer | string>, onLine);
      } else {
        span = await readFile(name, onLine);
      }
    } catch (error) {
      // An error of onLine's own is not the file's.
      if (errnoOf(error) === undefined) throw error;
      throw unreadable(name === '-' ? 'stdin' : name, error);
    }
    reads.push({ kind: 'file', id: name === '-' ? 'stdin' : name, ...span });
  }
  return reads;
}
