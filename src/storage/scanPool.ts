/**
 * Threads for the scan: this one and worker threads. Units of work wait in
 * one queue; each worker takes a few at a time, so none waits on a message
 * round trip, and results come back by structured clone. This thread takes a
 * unit whenever the workers have enough, between the messages it handles.
 * Used when --concurrency is above 1.
 */
import { Worker } from 'node:worker_threads';
import type { BlobPart } from '../plan/globalMark.js';
import type { RepositoryScan, ScanPool, ScanWork } from './scan.js';

export type ScanTask = ScanWork & { id: number };

type Reply = { id: number; result?: unknown; error?: { message: string; code?: string } };

const IN_FLIGHT_PER_WORKER = 4;

/**
 * `threads` threads in all: this one (running units with `local`, as a worker
 * does) and threads − 1 workers. This thread takes part because a
 * worker costs CPU of its own (starting, compiling the scanner again, cloning
 * results): side by side on the medium tree with 2 CPUs, two workers next to
 * an idle main thread ran no faster than this thread alone.
 *
 * The tree's root comes with each unit of work, so a pool can start before
 * the root is known and serve every walk of a run.
 */
export function workerPool(threads: number, local: (work: ScanWork) => unknown): ScanPool {
  const workers = Array.from({ length: threads - 1 }, () => new Worker(new URL('./scanWorker.js', import.meta.url), {
      // Not the parent's flags: `node -e` or --input-type would make the worker fail to start.
      execArgv: [],
      // Bounded, so each worker adds little to the peak RSS. Side by side on the medium tree, 16 MiB ran the
      // dry run about 10% faster than 4 MiB with the same peak RSS (fewer scavenges of short-lived objects).
      resourceLimits: { maxYoungGenerationSizeMb: 16 },
    }));
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const queue: ScanTask[] = [];
  const load = new Map<Worker, number>(workers.map((w) => [w, 0]));
  let nextId = 0;
  let failed: Error | undefined;
  let localTurn: NodeJS.Immediate | undefined;

  const settle = (id: number, outcome: { result: unknown } | { error: Error }): void => {
    const p = pending.get(id);
    pending.delete(id);
    if ('error' in outcome) p?.reject(outcome.error);
    else p?.resolve(outcome.result);
  };

  // One unit here, then back to the event loop: replies from the workers are handled (and the workers
  // given more) between units, so they never wait on this thread for long.
  const runLocal = (): void => {
    localTurn = undefined;
    const task = queue.shift();
    if (!task) return;
    let outcome: { result: unknown } | { error: Error };
    try {
      outcome = { result: local(task) };
    } catch (error) {
      outcome = { error: error as Error };
    }
    settle(task.id, outcome);
    pump();
  };

  const pump = (): void => {
    for (const worker of workers) {
      while (queue.length > 0 && (load.get(worker) ?? 0) < IN_FLIGHT_PER_WORKER) {
        const task = queue.shift() as ScanTask;
        load.set(worker, (load.get(worker) ?? 0) + 1);
        worker.postMessage(task);
      }
    }
    if (queue.length > 0 && !localTurn && !failed) localTurn = setImmediate(runLocal);
  };
  for (const worker of workers) {
    worker.on('message', (reply: Reply) => {
      load.set(worker, (load.get(worker) ?? 1) - 1);
      settle(reply.id, reply.error ? { error: Object.assign(new Error(reply.error.message), { code: reply.error.code }) } : { result: reply.result });
      pump();
    });
    worker.on('error', (error) => {
      failed = error;
      for (const p of pending.values()) p.reject(error);
      pending.clear();
    });
  }
  const submit = <T>(task: ScanWork): Promise<T> => {
    if (failed) return Promise.reject(failed);
    return new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      queue.push({ ...task, id } as ScanTask);
      pump();
    });
  };
  return {
    threads,
    repository: (root, found, times) => submit<RepositoryScan>({ kind: 'repository', root, found, times }),
    blobs: (root, prefixes) => submit<BlobPart>({ kind: 'blobs', root, prefixes }),
    close: async () => {
      failed ??= new Error('the scan threads are closed');
      if (localTurn) clearImmediate(localTurn);
      for (const p of pending.values()) p.reject(failed);
      pending.clear();
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
