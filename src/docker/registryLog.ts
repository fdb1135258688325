/**
 * The registry containers' own logs, as the engine keeps them: where the
 * pulls are. Each read starts at the container's mark (the last line an
 * earlier run read) and tells whether it found that line again: only then
 * did it see the log without a gap (the pull index's coverage depends on it).
 * Reads only; the lines go to the caller, which parses them (plan/accessLog).
 */
import { type SourceMark, type SourceRead, hashLine } from '../plan/pullIndex.js';
import type { ContainerInfo, Engine } from './engine.js';
import { SERVICE_LABEL, type Target } from './locator.js';

const ENGINE_TIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

function parts(ts: string): { seconds: number; fraction: string } {
  const m = ENGINE_TIME.exec(ts);
  const ms = m ? Date.parse(`${m[1]}${m[3]}`) : Number.NaN;
  if (!m || !Number.isFinite(ms)) throw new Error(`the engine gave a log line an unreadable time ${JSON.stringify(ts)}`);
  return { seconds: ms / 1000, fraction: (m[2] ?? '').padEnd(9, '0') };
}

/**
 * An engine timestamp (RFC 3339, up to nine fractional digits) as the unix
 * time `since` takes (`1733270400.123456789`), exactly: the nanoseconds are
 * kept as digits, never through a float, so the marked line itself is
 * returned again.
 */
export function engineSince(ts: string): string {
  const { seconds, fraction } = parts(ts);
  return `${seconds}.${fraction}`;
}

/** An engine timestamp in milliseconds since the epoch. */
function msOf(ts: string): number {
  const { seconds, fraction } = parts(ts);
  return seconds * 1000 + Number(fraction.slice(0, 3));
}

/** An engine timestamp in nanoseconds since the epoch, exactly. */
function nanosOf(ts: string): bigint {
  return BigInt(engineSince(ts).replace('.', ''));
}

/**
 * How far before its mark a read begins. The engine copies stdout and stderr
 * apart and stamps each line as it takes it, so the log's order is not quite
 * the order of its times: a line of one stream can follow the marked line of
 * the other with an earlier time. Reading from the mark's time exactly
 * would skip it; reading from a little before, and skipping what comes up to
 * the marked line, does not.
 */
const STREAM_LAG_NS = 2_000_000_000n;

const sinceOf = (nanos: bigint): string => `${nanos / 1_000_000_000n}.${(nanos % 1_000_000_000n).toString().padStart(9, '0')}`;

/**
 * Decides, line by line, whether a read from a mark found the marked line
 * again. What comes before it in the log was read last time; what comes
 * after it is new. Lines before it are held (a few seconds' worth) until it
 * shows up, or until a line well past its time shows it is gone (rotated
 * away): then they are new after all, and passed on.
 */
class MarkFinder {
  continued = false;
  private decided: boolean;
  private held: Array<{ ts: string; text: string }> = [];
  private readonly markNanos: bigint | undefined;

  constructor(
    private readonly mark: SourceMark | undefined,
    private readonly pass: (ts: string, text: string) => void,
  ) {
    this.decided = mark === undefined;
    this.markNanos = mark && nanosOf(mark.ts);
  }

  /** Where the engine should begin: a little before the mark (see STREAM_LAG_NS), or at the start. */
  get since(): string | undefined {
    return this.markNanos === undefined ? undefined : sinceOf(this.markNanos > STREAM_LAG_NS ? this.markNanos - STREAM_LAG_NS : 0n);
  }

  line(ts: string, text: string): void {
    if (this.decided) return this.pass(ts, text);
    const nanos = nanosOf(ts);
    if (nanos === this.markNanos && hashLine(text) === this.mark?.line) {
      this.continued = true;
      this.decided = true;
      this.held = []; // read last time, before the marked line
      return;
    }
    this.held.push({ ts, text });
    if (nanos > (this.markNanos as bigint) + STREAM_LAG_NS) this.end();
  }

  /** No marked line among what came: what was held is new after all. */
  end(): void {
    if (this.decided) return;
    this.decided = true;
    for (const h of this.held) this.pass(h.ts, h.text);
    this.held = [];
  }
}

async function readOne(engine: Engine, c: ContainerInfo, mark: SourceMark | undefined, onLine: (text: string, at: number) => void): Promise<SourceRead> {
  const base = { kind: 'container' as const, id: c.id, created: c.created };
  let first: number | undefined;
  let last: { ts: string; text: string } | undefined;
  const finder = new MarkFinder(mark, (ts, text) => {
    const at = msOf(ts);
    first ??= at;
    last = { ts, text };
    onLine(text, at);
  });
  try {
    const since = finder.since;
    await engine.containerLogs(c.id, { ...(since !== undefined ? { since } : {}), onLine: (ts, text) => finder.line(ts, text) });
    finder.end();
  } catch (error) {
    return { ...base, failed: (error as Error).message };
  }
  // The marked line found again and nothing after it: the old mark, as running as the container is now.
  const newMark = last ? { ts: last.ts, line: hashLine(last.text), running: c.running } : mark && { ...mark, running: c.running };
  return { ...base, ...(first !== undefined ? { first } : {}), continued: finder.continued, ...(newMark ? { mark: newMark } : {}) };
}

/**
 * Reads each container's log from its mark (or from its start; from a
 * little before the mark's time, see STREAM_LAG_NS), handing
 * every new line to `onLine` with the engine's time of it (ms). One read per
 * container: a container whose log cannot be read is a failed read, and the
 * others are read all the same.
 */
export async function readRegistryLogs(
  engine: Engine,
  containers: readonly ContainerInfo[],
  marks: (id: string) => SourceMark | undefined,
  onLine: (text: string, at: number) => void,
): Promise<SourceRead[]> {
  const reads: SourceRead[] = [];
  for (const c of containers) reads.push(await readOne(engine, c, marks(c.id), onLine));
  return reads;
}

/**
 * The containers whose logs hold the target's pulls: its registry
 * containers, and for swarm services (the target's, those serving its
 * bucket, those its containers are tasks of) also their ended task
 * containers still on this host. Swarm keeps
 * a task's container after it is replaced (a window replaces tasks), and its
 * log with it: reading it keeps its pulls. None for a path or a bucket
 * without containers.
 */
export async function registryLogContainers(engine: Engine, target: Target): Promise<ContainerInfo[]> {
  const services = new Set(target.services ?? []);
  if (target.kind === 'service') services.add(target.name);
  for (const c of target.containers) if (c.labels[SERVICE_LABEL]) services.add(c.labels[SERVICE_LABEL]);
  const found = new Map(target.containers.map((c) => [c.id, c]));
  for (const service of [...services].sort()) {
    for (const c of await engine.serviceTaskContainers(service)) if (!found.has(c.id)) found.set(c.id, c);
  }
  return [...found.values()];
}
