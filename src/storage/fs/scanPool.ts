/**
 * Threads for the scan: this one and worker threads. Units of work wait in
 * one queue; each worker takes a few at a time, so none waits on a message
 * round trip, and results come back by structured clone. This thread takes a
 * unit whenever the workers have enough, between the messages it handles.
 *
 * The tree's root comes with each unit of work, so a pool can start before
 * the root is known and serve every walk of a run. `runHere` runs a unit in
 * this thread (tests count its turns).
 */
import { Worker } from 'node:worker_threads';
import type { BlobPart, FoundRepository } from '../../model.js';
import type { RepositoryScan } from '../source.js';
import { type ScanWork, runScanWork, scanBlobPrefixes, scanRepository } from './scan.js';

/** Runs the units of work, in worker threads when asked for more than one. */
export interface ScanPool {
  readonly threads: number;
  repository(root: string, found: FoundRepository, times: boolean): Promise<RepositoryScan>;
  /** `recentAfter`: note blobs whose data is newer (ms since the epoch; Infinity: none). */
  blobs(root: string, prefixes: string[], recentAfter: number): Promise<BlobPart>;
  /** Between walks: the worker threads end (their memory goes), and start again on the next unit of work. */
  rest(): Promise<void>;
  close(): Promise<void>;
}

/** A unit of work as a worker receives it. */
export type ScanTask = ScanWork & { id: number };

/** A worker's answer to one task. */
export type ScanReply = { id: number; result?: unknown; error?: { message: string; code?: string } };

/** Units a worker holds at once: enough that it never waits for the next message. */
const IN_FLIGHT_PER_WORKER = 4;

const inlinePool: ScanPool = {
  threads: 1,
  repository: async (root, found, times) => scanRepository(root, found, times),
  blobs: async (root, prefixes, recentAfter) => scanBlobPrefixes(root, prefixes, recentAfter),
  rest: async () => {},
  close: async () => {},
};

type Outcome = { result: unknown } | { error: Error };

/**
 * `threads` threads in all: this one (running units as a worker does) and
 * threads − 1 workers. This thread takes part because a worker costs CPU of
 * its own (starting, compiling the scanner again, cloning results): side by
 * side on the medium tree with 2 CPUs, two workers next to an idle main
 * thread ran no faster than this thread alone.
 */
class WorkerPool implements ScanPool {
  private workers: Worker[];
  /** The workers were ended by rest(): they start again with the next task. */
  private resting = false;
  /** Tasks not yet given to a thread. */
  private readonly queue: ScanTask[] = [];
  /** Tasks given out and not yet answered, by id. */
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  /** Tasks each worker holds. */
  private readonly load = new Map<Worker, number>();
  private nextId = 0;
  /** Set once a worker fails or the pool closes: every later task is refused with it. */
  private failed: Error | undefined;
  /** This thread's next turn, when one is due. */
  private localTurn: NodeJS.Immediate | undefined;

  constructor(
    readonly threads: number,
    private readonly runHere: (work: ScanWork) => unknown,
  ) {
    this.workers = Array.from({ length: threads - 1 }, () => this.startWorker());
  }

  repository(root: string, found: FoundRepository, times: boolean): Promise<RepositoryScan> {
    return this.submit<RepositoryScan>({ kind: 'repository', root, found, times });
  }

  blobs(root: string, prefixes: string[], recentAfter: number): Promise<BlobPart> {
    return this.submit<BlobPart>({ kind: 'blobs', root, prefixes, recentAfter });
  }

  async rest(): Promise<void> {
    if (this.resting || this.failed || this.pending.size > 0 || this.queue.length > 0) return;
    this.resting = true;
    const ending = this.workers;
    this.workers = [];
    this.load.clear();
    await Promise.all(ending.map((w) => w.terminate()));
  }

  async close(): Promise<void> {
    this.failed ??= new Error('the scan threads are closed');
    if (this.localTurn) clearImmediate(this.localTurn);
    this.rejectPending(this.failed);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private startWorker(): Worker {
    const worker = new Worker(new URL('./scanWorker.js', import.meta.url), {
      // Not the parent's flags: `node -e` or --input-type would make the worker fail to start.
      execArgv: [],
      // Bounded, so each worker adds little to the peak RSS. Side by side on the medium tree, 16 MiB ran the
      // dry run about 10% faster than 4 MiB with the same peak RSS (fewer scavenges of short-lived objects).
      resourceLimits: { maxYoungGenerationSizeMb: 16 },
    });
    this.load.set(worker, 0);
    worker.on('message', (reply: ScanReply) => {
      this.load.set(worker, (this.load.get(worker) ?? 1) - 1);
      const error = reply.error && Object.assign(new Error(reply.error.message), { code: reply.error.code });
      this.settle(reply.id, error ? { error } : { result: reply.result });
      this.pump();
    });
    worker.on('error', (error) => {
      this.failed = error;
      this.rejectPending(error);
    });
    return worker;
  }

  private submit<T>(work: ScanWork): Promise<T> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.resting) {
      this.resting = false;
      this.workers = Array.from({ length: this.threads - 1 }, () => this.startWorker());
    }
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.queue.push({ ...work, id });
      this.pump();
    });
  }

  /** Gives each worker tasks up to its share, and this thread a turn when some are left. */
  private pump(): void {
    for (const worker of this.workers) {
      while (this.queue.length > 0 && (this.load.get(worker) ?? 0) < IN_FLIGHT_PER_WORKER) {
        this.load.set(worker, (this.load.get(worker) ?? 0) + 1);
        worker.postMessage(this.queue.shift());
      }
    }
    if (this.queue.length > 0 && !this.localTurn && !this.failed) this.localTurn = setImmediate(() => this.runLocal());
  }

  /**
   * One unit here, then back to the event loop: replies from the workers are
   * handled (and the workers given more) between units, so they never wait on
   * this thread for long.
   */
  private runLocal(): void {
    this.localTurn = undefined;
    const task = this.queue.shift();
    if (!task) return;
    let outcome: Outcome;
    try {
      outcome = { result: this.runHere(task) };
    } catch (error) {
      outcome = { error: error as Error };
    }
    this.settle(task.id, outcome);
    this.pump();
  }

  private settle(id: number, outcome: Outcome): void {
    const p = this.pending.get(id);
    this.pending.delete(id);
    if ('error' in outcome) p?.reject(outcome.error);
    else p?.resolve(outcome.result);
  }

  private rejectPending(error: Error): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

/**
 * Threads to scan with: this one, and concurrency − 1 workers. The workers
 * start at once and load their code while the caller goes on, so a run that
 * opens them before resolving its target does not wait for them later.
 */
export function openScanPool(concurrency: number, runHere: (work: ScanWork) => unknown = runScanWork): ScanPool {
  return concurrency > 1 ? new WorkerPool(concurrency, runHere) : inlinePool;
}
