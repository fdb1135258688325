/**
 * `--access-log FILE...` (issue 25, point 1): the logs are the real
 * registry's. 2.8.2 and 3.0.0 each serve with `log.formatter: text` and with
 * `json`, their stdout and stderr captured to a file, while this test pushes
 * two images and pulls through the HTTP API by tag and by digest (GET and
 * HEAD), besides requests that are no pull (a 404 manifest, a blob, the
 * catalog). Read back plain and gzipped, with junk lines mixed in, from a file
 * or from stdin in small chunks, the reader finds exactly the pulls the test
 * requested; files it cannot read are refused with a UsageError.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registryBinary } from '../../scripts/registryClient.js';
import { readAccessLogs } from '../../src/cli/accessLogFiles.js';
import { UsageError } from '../../src/errors.js';
import { emptyTally, tallyLine } from '../../src/plan/accessLog.js';
import { type PullKey, type RealLog, keyOf, loggedPulls } from '../support/loggingRegistry.js';
import { tempDir } from '../support/tmp.js';
import { registryV3Bin } from '../support/registryV3.js';

const VERSIONS: Array<[string, string | undefined]> = [
  ['2.8.2', registryBinary()],
  ['3.0.0', registryV3Bin],
];
const FORMATS = ['text', 'json'] as const;
const DIST = fileURLToPath(new URL('../../dist/src', import.meta.url));

/** What the reader hands on from `files`: every line, the pulls, the tally and the reads. */
async function readBack(files: string[], stdin?: NodeJS.ReadableStream) {
  const lines: string[] = [];
  const found = new Set<PullKey>();
  const times: number[] = [];
  const tally = emptyTally();
  const reads = await readAccessLogs(
    files,
    (text) => {
      lines.push(text);
      tallyLine(tally, text, (p) => {
        found.add(keyOf(p));
        times.push(p.at);
      });
    },
    stdin,
  );
  return { lines, found, times, tally, reads };
}

/** The lines another program might print into the same stream: none is the registry's. */
const JUNK = ['', 'panic: not really', 'GET /v2/team/web/manifests/v1 HTTP/1.1', '{"msg":"not the registry","level":"info"}', 'time="yesterday" no message', '\u0000\u0001binary'];
const withJunk = (text: string): string =>
  text
    .split('\n')
    .flatMap((line, i) => (line === '' ? [line] : [line, JUNK[i % JUNK.length] as string]))
    .join('\n');
const junkLines = (text: string): number => text.split('\n').filter((line, i) => line !== '' && (JUNK[i % JUNK.length] as string) !== '').length;

describe.each(VERSIONS)('--access-log with the real registry %s', (version, bin) => {
  const logs = new Map<string, RealLog>();
  let dir = '';

  beforeAll(async () => {
    if (!bin) return;
    dir = await tempDir('regsweep-accesslog-');
    for (const formatter of FORMATS) logs.set(formatter, await loggedPulls(bin, formatter, dir));
  }, 120_000);
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(!bin).each(FORMATS)('finds exactly the pulls requested by tag and by digest, GET and HEAD, in the %s format', async (formatter) => {
    const log = logs.get(formatter) as RealLog;
    const { found, times, reads, tally } = await readBack([log.file]);
    expect([...found].sort()).toEqual([...log.requested.keys()].sort());
    // The combined access line has whole seconds.
    for (const at of times) expect(at >= Math.floor(log.from / 1000) * 1000 && at <= log.to).toBe(true);
    expect(reads).toHaveLength(1);
    expect(reads[0]?.kind).toBe('file');
    expect(reads[0]?.id).toBe(log.file);
    // Its earliest line is the registry's start, before the first pull.
    expect(reads[0]?.first).toBeLessThanOrEqual(log.from);
    expect(reads[0]?.first).toBeGreaterThan(log.from - 60_000);
    // Its latest line is no earlier than its last pull: where what it says ends.
    expect(reads[0]?.last).toBeGreaterThanOrEqual(Math.max(...times));
    expect(reads[0]?.last).toBeLessThan(log.to + 60_000);
    expect(tally.pulls).toBeGreaterThanOrEqual(log.requested.size);
  });

  // 3.0.0 writes no `response completed` line for a HEAD answered 200, only the access line: with the access log disabled, its HEAD pulls are not seen.
  it.skipIf(!bin).each(FORMATS)('finds every pull in the combined access lines alone, and the GETs (2.8.2: also the HEADs) in the %s formatter lines alone', async (formatter) => {
    const log = logs.get(formatter) as RealLog;
    const { lines } = await readBack([log.file]);
    const pullsOf = (kept: string[]): string[] => {
      const found = new Set<PullKey>();
      for (const line of kept) tallyLine(emptyTally(), line, (p) => found.add(keyOf(p)));
      return [...found].sort();
    };
    expect(pullsOf(lines.filter((line) => /^\S+ \S+ \S+ \[/.test(line)))).toEqual([...log.requested.keys()].sort());
    const own = lines.filter((line) => (formatter === 'json' ? line.startsWith('{') : line.startsWith('time="')));
    const expected = [...log.requested].filter(([, method]) => method === 'GET' || version === '2.8.2').map(([key]) => key);
    expect(pullsOf(own)).toEqual(expected.sort());
  });

  it.skipIf(!bin).each(FORMATS)('finds the same pulls gzipped (whatever the name) as plain, in the %s format', async (formatter) => {
    const log = logs.get(formatter) as RealLog;
    const plain = await readBack([log.file]);
    const gz = path.join(dir, `${formatter}-rotated.1`);
    fs.writeFileSync(gz, gzipSync(fs.readFileSync(log.file)));
    const zipped = await readBack([gz]);
    expect(zipped.lines).toEqual(plain.lines);
    expect([...zipped.found].sort()).toEqual([...log.requested.keys()].sort());
    expect(zipped.reads[0]?.first).toBe(plain.reads[0]?.first);
    expect(zipped.reads[0]?.last).toBe(plain.reads[0]?.last);
  });

  it.skipIf(!bin).each(FORMATS)('skips and counts junk lines mixed into the %s format, plain and gzipped, the pulls unchanged', async (formatter) => {
    const log = logs.get(formatter) as RealLog;
    const clean = await readBack([log.file]);
    const text = fs.readFileSync(log.file, 'utf8');
    const mixed = withJunk(text);
    const plainFile = path.join(dir, `${formatter}-junk.log`);
    const gzFile = path.join(dir, `${formatter}-junk.log.gz`);
    fs.writeFileSync(plainFile, mixed);
    fs.writeFileSync(gzFile, gzipSync(mixed));
    for (const file of [plainFile, gzFile]) {
      const { found, tally } = await readBack([file]);
      expect([...found].sort()).toEqual([...log.requested.keys()].sort());
      expect(tally.pulls).toBe(clean.tally.pulls);
      expect(tally.junk).toBe(clean.tally.junk + junkLines(text));
    }
  });

  it.skipIf(!bin)('reads stdin (-) once, whole lines across chunks of any size, and a last line without newline', async () => {
    const log = logs.get('json') as RealLog;
    const text = fs.readFileSync(log.file, 'utf8').replace(/\n+$/, '');
    const expected = text.split('\n');
    // Chunks of 1 to 7 bytes: lines and multi-byte characters cut anywhere.
    const bytes = Buffer.from(`${text}`);
    const chunks: Buffer[] = [];
    for (let i = 0, n = 1; i < bytes.length; i += n, n = (n % 7) + 1) chunks.push(bytes.subarray(i, i + n));
    const { lines, found, reads } = await readBack(['-', '-'], Readable.from(chunks));
    expect(lines).toEqual(expected);
    expect([...found].sort()).toEqual([...log.requested.keys()].sort());
    expect(reads).toEqual([{ kind: 'file', id: 'stdin', first: expect.any(Number), last: expect.any(Number) }]);
    expect((reads[0]?.last as number) - (reads[0]?.first as number)).toBeGreaterThanOrEqual(0);
  });

  it.skipIf(!bin)('reads a gzip of text and JSON logs concatenated (two members), and several files in order', async () => {
    const text = fs.readFileSync((logs.get('text') as RealLog).file);
    const json = fs.readFileSync((logs.get('json') as RealLog).file);
    const both = path.join(dir, 'both.gz');
    fs.writeFileSync(both, Buffer.concat([gzipSync(text), gzipSync(json)]));
    const all = new Set([...(logs.get('text') as RealLog).requested.keys(), ...(logs.get('json') as RealLog).requested.keys()]);
    const member = await readBack([both]);
    expect([...member.found].sort()).toEqual([...all].sort());
    const files = await readBack([(logs.get('text') as RealLog).file, (logs.get('json') as RealLog).file]);
    expect(files.lines).toEqual(member.lines);
    expect(files.reads.map((r) => r.id)).toEqual([(logs.get('text') as RealLog).file, (logs.get('json') as RealLog).file]);
  });

  it.skipIf(!bin || process.getuid?.() !== 0)('refuses a file this user may not read (nobody, EACCES) with a UsageError naming the file', () => {
    const log = logs.get('text') as RealLog;
    const secret = path.join(dir, 'secret.log');
    fs.copyFileSync(log.file, secret);
    fs.chmodSync(secret, 0o600);
    fs.chmodSync(dir, 0o755);
    const script = `
import { readAccessLogs } from '${DIST}/cli/accessLogFiles.js';
try { await readAccessLogs([process.argv[1]], () => {}); console.log('read'); } catch (e) { console.log(JSON.stringify({ name: e.name, exitCode: e.exitCode, message: e.message })); }
`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script, secret], { uid: 65534, gid: 65534, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ name: 'UsageError', exitCode: 2, message: `cannot read --access-log ${secret}: permission denied` });
  });

  it.skipIf(!bin)('refuses a missing path, a directory and a gzip cut short with a UsageError naming the file', async () => {
    const log = logs.get('text') as RealLog;
    const truncated = path.join(dir, 'cut.gz');
    const gz = gzipSync(fs.readFileSync(log.file));
    fs.writeFileSync(truncated, gz.subarray(0, gz.length >> 1));
    const cases: Array<[string, RegExp]> = [
      [path.join(dir, 'missing.log'), /no such file/],
      [dir, /is a directory/],
      [truncated, /not a whole gzip file/],
    ];
    for (const [file, why] of cases) {
      const refused = readBack([log.file, file]);
      await expect(refused).rejects.toBeInstanceOf(UsageError);
      await expect(refused).rejects.toThrow(`cannot read --access-log ${file}: `);
      await expect(refused).rejects.toThrow(why);
    }
  });
});
