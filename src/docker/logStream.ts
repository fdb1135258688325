/**
 * The engine's log stream as lines. A container without a TTY has its
 * stdout and stderr multiplexed: each frame an 8-byte header (stream 0, 1 or
 * 2, three zero bytes, a big-endian length) and that many bytes. A TTY
 * container's log is the raw bytes. Either may split a frame, a header or a
 * line (or a UTF-8 character) across chunks anywhere; lines are cut on the
 * byte `\n`, so text is decoded only whole. Only the current frame and the
 * current line are held: a big log streams through.
 *
 * With `timestamps`, the engine begins each line with its RFC 3339 time and
 * one space: `onLine` gets the time and the rest, newline (and a TTY's `\r`)
 * removed. A line longer than 16 KiB is kept by the engine as partial
 * messages of 16 KiB, and given back with the time before each part: those
 * inner times are taken out, so the line arrives as it was written.
 */

const HEADER = 8;
/** The engine's log copier cuts a line into partial messages of this many bytes. */
const PARTIAL = 16 * 1024;
/** The engine's time before a partial message: RFC 3339 with nine fractional digits, and a space. */
const PART_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}(?:Z|[+-]\d{2}:\d{2}) /;

/** Cuts one stream's bytes into lines; what follows the last newline waits for more. */
class LineCutter {
  private pending: Buffer[] = [];

  constructor(private readonly emit: (line: Buffer) => void) {}

  push(bytes: Buffer): void {
    let start = 0;
    for (let nl = bytes.indexOf(10, start); nl >= 0; nl = bytes.indexOf(10, start)) {
      const piece = bytes.subarray(start, nl);
      if (this.pending.length > 0) {
        this.pending.push(piece);
        this.emit(Buffer.concat(this.pending));
        this.pending = [];
      } else {
        this.emit(piece);
      }
      start = nl + 1;
    }
    // A copy: the chunk underneath may be reused by the stream.
    if (start < bytes.length) this.pending.push(Buffer.from(bytes.subarray(start)));
  }

  /** The last line, when the log does not end with a newline. */
  end(): void {
    if (this.pending.length > 0) this.emit(Buffer.concat(this.pending));
    this.pending = [];
  }
}

/** A long line's parts joined again: the time the engine put before each part after the first is dropped. */
function joinPartials(body: Buffer): Buffer {
  if (body.length <= PARTIAL) return body;
  const parts: Buffer[] = [];
  let rest = body;
  for (let m = PART_TIME.exec(rest.subarray(PARTIAL, PARTIAL + 40).toString('latin1')); m; m = PART_TIME.exec(rest.subarray(PARTIAL, PARTIAL + 40).toString('latin1'))) {
    parts.push(rest.subarray(0, PARTIAL));
    rest = rest.subarray(PARTIAL + m[0].length);
  }
  return parts.length === 0 ? body : Buffer.concat([...parts, rest]);
}

function splitTimestamp(line: Buffer, onLine: (ts: string, text: string) => void): void {
  const space = line.indexOf(32);
  const ts = line.subarray(0, space < 0 ? line.length : space).toString('utf8');
  let text = space < 0 ? '' : joinPartials(line.subarray(space + 1)).toString('utf8');
  if (text.endsWith('\r')) text = text.slice(0, -1);
  onLine(ts.endsWith('\r') ? ts.slice(0, -1) : ts, text);
}

/**
 * Reads `stream` to its end, handing each line to `onLine` as it completes.
 * `tty`: the container has a TTY, so its log is not framed.
 */
export async function readLogLines(stream: AsyncIterable<Buffer | Uint8Array | string>, tty: boolean, onLine: (ts: string, text: string) => void): Promise<void> {
  const emit = (line: Buffer): void => splitTimestamp(line, onLine);
  // One cutter per stream: a line of stderr never runs into one of stdout.
  const cutters = new Map<number, LineCutter>();
  const cutterOf = (kind: number): LineCutter => {
    let cutter = cutters.get(kind);
    if (!cutter) cutters.set(kind, (cutter = new LineCutter(emit)));
    return cutter;
  };
  let header = Buffer.alloc(0);
  let kind = 0;
  let left = 0;
  for await (const raw of stream) {
    let chunk = typeof raw === 'string' ? Buffer.from(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    if (tty) {
      cutterOf(1).push(chunk);
      continue;
    }
    while (chunk.length > 0) {
      if (left > 0) {
        const body = chunk.subarray(0, left);
        cutterOf(kind).push(body);
        left -= body.length;
        chunk = chunk.subarray(body.length);
        continue;
      }
      const need = HEADER - header.length;
      header = Buffer.concat([header, chunk.subarray(0, need)]);
      chunk = chunk.subarray(need);
      if (header.length < HEADER) break;
      kind = header[0] as number;
      if (kind > 2 || header[1] !== 0 || header[2] !== 0 || header[3] !== 0) {
        throw new Error(`the log stream is not framed as the engine frames a container without a TTY (header ${header.toString('hex')})`);
      }
      left = header.readUInt32BE(4);
      header = Buffer.alloc(0);
    }
  }
  if (header.length > 0 || left > 0) throw new Error('the log stream ended inside a frame');
  for (const cutter of cutters.values()) cutter.end();
}
