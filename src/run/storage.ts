/**
 * A registry's storage as the CLI drives a run on it: chosen once, where the
 * target is resolved (filesystemStorage, bucketStorage), then asked without
 * knowing which: whether it can be written, its lock, what a dry run reports
 * of other runs, and what the sweep works on (RunStorage).
 */
import type { ContainerInfo } from '../docker/engine.js';
import type { Recovery } from '../docker/recovery.js';
import type { ExclusiveOptions, Findings } from '../exclusiveRun.js';
import type { HeldLock } from '../storage/lockRecord.js';
import type { PullIndexWrite } from '../storage/pullIndexStore.js';
import type { StorageClock } from '../storage/storageClock.js';
import type { RunStorage } from '../sweep.js';

export interface Storage {
  /** What the sweep reads and changes. */
  readonly run: RunStorage;
  /** A real run writes in it: storage it cannot write is refused before the lock, the scan or a pause (exit 2). */
  requireWritable(): void;
  /** The storage's clock where it is known before any lock (a bucket's server, from its responses). */
  clock(): Promise<StorageClock | undefined>;
  /** What a dry run reports of other runs, changing nothing. */
  findings(containers: readonly ContainerInfo[]): Partial<Findings>;
  /** One real run per registry: `body` holding the storage's lock, after what a dead run left is recovered. */
  exclusively<T>(options: Omit<ExclusiveOptions, 'root' | 'keepRecoveryNote'>, body: (lock: HeldLock, recovered: Recovery | undefined) => Promise<T>): Promise<T>;
  /** The pull index beside docker/ (plan/pullIndex.ts keeps its text): where it is, its text (undefined: none yet), and a write that lands whole or not at all. */
  readonly pullIndex: PullIndexStore;
  /** Lets go of its connections, if it has any. */
  close(): void;
}

/** Where a storage keeps its pull index. Reading throws where it is there but cannot be read; writing never throws. */
export interface PullIndexStore {
  /** The file or the object, for the report (`pulls.index.where`). */
  readonly where: string;
  read(): Promise<string | undefined>;
  write(text: string): Promise<PullIndexWrite>;
}
