import { describe, expect, it } from 'vitest';
import { readLogLines } from '../../src/docker/logStream.js';

/** A frame as the engine writes one for a container without a TTY. */
function frame(stream: 1 | 2, text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

/** The bytes cut into chunks at the given sizes, cycling. */
function chunks(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length] as number;
    out.push(bytes.subarray(at, at + size));
    at += size;
  }
  return out;
}

async function* streamOf(parts: Buffer[]): AsyncIterable<Buffer> {
  for (const p of parts) yield p;
}

async function lines(parts: Buffer[], tty: boolean): Promise<Array<[string, string]>> {
  const found: Array<[string, string]> = [];
  await readLogLines(streamOf(parts), tty, (ts, text) => found.push([ts, text]));
  return found;
}

const TS1 = '2026-12-04T00:35:54.401115037Z';
const TS2 = '2026-12-04T00:35:55.000000001Z';
const TS3 = '2026-12-04T00:35:56.123456789Z';
const expected: Array<[string, string]> = [
  [TS1, 'time="x" level=info msg="response completed" é'],
  [TS2, '127.0.0.1 - - [04/Dec/2026:00:35:55 +0000] "GET /v2/a/manifests/v1 HTTP/1.1" 200 92 "" "curl"'],
  [TS3, ''],
];

describe('readLogLines: the engine log stream as lines', () => {
  const framed = Buffer.concat([frame(2, `${TS1} ${expected[0]?.[1]}\n`), frame(1, `${TS2} ${expected[1]?.[1]}\n`), frame(1, `${TS3} \n`)]);

  it('a framed (non-TTY) log whole in one chunk', async () => {
    expect(await lines([framed], false)).toEqual(expected);
  });

  for (const sizes of [[1], [3], [7, 1], [8], [9, 2, 30], [13, 64]]) {
    it(`the same log cut into chunks of ${sizes.join(', ')} bytes: headers, lines and UTF-8 split anywhere`, async () => {
      expect(await lines(chunks(framed, sizes), false)).toEqual(expected);
    });
  }

  it('one line spread over several frames of its stream, a line of the other stream between', async () => {
    const parts = [frame(1, `${TS1} first `), frame(2, `${TS2} other\n`), frame(1, 'half\n')];
    expect(await lines(parts, false)).toEqual([[TS2, 'other'], [TS1, 'first half']]);
  });

  it('a line over 16 KiB, which the engine gives back as parts each after its time, arrives as written', async () => {
    const long = `${'a'.repeat(16 * 1024 - 1)}é${'b'.repeat(16 * 1024)}c`; // é spans the first cut
    const bytes = Buffer.from(long);
    const parted = Buffer.concat([
      Buffer.from(`${TS1} `),
      bytes.subarray(0, 16 * 1024),
      Buffer.from(`${TS1} `),
      bytes.subarray(16 * 1024, 32 * 1024),
      Buffer.from(`${TS1} `),
      bytes.subarray(32 * 1024),
      Buffer.from('\n'),
    ]);
    expect(await lines(chunks(parted, [1000]), true)).toEqual([[TS1, long]]);
    // A line of 16 KiB and more whose text merely goes on is left as it is.
    const plain = `${'x'.repeat(16 * 1024)}not a time, just more text`;
    expect(await lines([Buffer.from(`${TS2} ${plain}\n`)], true)).toEqual([[TS2, plain]]);
  });

  it('a TTY log: raw bytes, CR LF line ends, the last line without a newline', async () => {
    const raw = Buffer.from(`${TS1} one\r\n${TS2} two\r\n${TS3} three`);
    expect(await lines(chunks(raw, [5]), true)).toEqual([[TS1, 'one'], [TS2, 'two'], [TS3, 'three']]);
  });

  it('a stream that is not framed, read as framed, is an error, not lines of garbage', async () => {
    await expect(lines([Buffer.from(`${TS1} one\n`)], false)).rejects.toThrow(/not framed/);
  });

  it('a stream cut inside a frame is an error', async () => {
    await expect(lines([framed.subarray(0, framed.length - 3)], false)).rejects.toThrow(/inside a frame/);
  });
});
