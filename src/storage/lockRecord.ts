/**
 * What a run's lock records, on a filesystem (fs/lock.ts) or in a bucket
 * (s3/lock.ts): who holds it and where, what the run has done to the registry
 * (for whoever finds the run dead to bring it back), and whether a holder is
 * still alive.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import type { StorageClock } from './storageClock.js';

/** Seen from another pid namespace or host, a holder whose heartbeat is older than this is dead. */
export const STALE_MS = 30_000;
/** A process as the kernel knows it: its pid, and its start time so a reused pid is never taken for it. */
export interface ProcessRef {
  pid: number;
  /** Clock ticks after boot (field 22 of /proc/PID/stat). */
  startTicks: number;
}

/** Where a holder runs: a pid means something only within one pid namespace of one boot. */
export interface Place {
  hostname: string;
  bootId: string;
  pidNamespace: string;
}

/** What a run records while it holds the lock. */
export interface HolderRecord {
  regsweep: 'lock';
  token: string;
  startedAt: string;
  place: Place;
  process: ProcessRef;
  /** The watchdog that brings the registry back if this process dies in the window. */
  watchdog?: ProcessRef;
  target: { kind: string; name: string };
  /** The registry containers this run paused (recorded before each pause). */
  paused: Array<{ id: string; name: string }>;
  /** Swarm services this run set read-only (on a bucket), each with the variable's value before (null: unset); recorded before each update. */
  readOnly?: Array<{ service: string; previous: string | null }>;
  /** How this run brings them back: restart (default), unpause only, or replace a swarm service's tasks. */
  bringBack: { restart: boolean; service?: string };
  /** A garbage-collect process this run started on this host. */
  gc?: ProcessRef;
  trash?: string;
  /** Every trash the run may make, that one and those on the tree's other filesystems. */
  trashes?: string[];
  journal?: string;
}

export function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/** The start time of a process, or undefined when there is no such process here (or only its zombie). */
export function processStart(pid: number): number | undefined {
  const stat = readOr(`/proc/${pid}/stat`, '');
  // Fields after the command name, which may hold spaces and parentheses: state is field 3, starttime field 22.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[19]);
  return stat && fields[0] !== 'Z' && Number.isFinite(ticks) ? ticks : undefined;
}

export function processRef(pid: number): ProcessRef {
  return { pid, startTicks: processStart(pid) ?? 0 };
}

export function placeHere(): Place {
  let pidNamespace = '';
  try {
    pidNamespace = fs.readlinkSync('/proc/self/ns/pid');
  } catch {
    // No /proc: pids are never compared, heartbeats decide.
  }
  return { hostname: os.hostname(), bootId: readOr('/proc/sys/kernel/random/boot_id', ''), pidNamespace };
}

function samePlace(a: Place, b: Place): boolean {
  return a.bootId !== '' && a.pidNamespace !== '' && a.bootId === b.bootId && a.pidNamespace === b.pidNamespace;
}

function running(ref: ProcessRef | undefined): boolean {
  return ref !== undefined && processStart(ref.pid) === ref.startTicks;
}

/** Is this process, recorded at `place`, running where this process can signal it? */
export function runningHere(place: Place, ref: ProcessRef | undefined): boolean {
  return samePlace(place, placeHere()) && running(ref);
}

/** Is the holder (or its watchdog) still at work? `mtimeMs` is the lock file's last heartbeat. */
export function holderAlive(record: HolderRecord, mtimeMs: number, here: Place = placeHere(), now = Date.now()): boolean {
  if (samePlace(record.place, here)) return running(record.process) || running(record.watchdog);
  return now - mtimeMs < STALE_MS;
}

function describeHolder(record: HolderRecord): string {
  return `pid ${record.process.pid} on ${record.place.hostname}, started ${record.startedAt}`;
}

export function busyMessage(record: HolderRecord): string {
  return `busy: another regsweep run, ${describeHolder(record)}, holds this registry`;
}

export interface AcquireOptions {
  target: HolderRecord['target'];
  bringBack: HolderRecord['bringBack'];
  /** Wait up to this long for a live holder to finish (`--wait`); 0 refuses at once. */
  waitMs?: number;
  token?: string;
}

/** This run's record as a lock holds it (on a filesystem or in a bucket), with nothing paused yet. */
export function holderRecord(options: AcquireOptions): HolderRecord {
  return {
    regsweep: 'lock',
    token: options.token ?? crypto.randomUUID(),
    startedAt: new Date().toISOString(),
    place: placeHere(),
    process: processRef(process.pid),
    target: options.target,
    paused: [],
    bringBack: options.bringBack,
  };
}

/** A lock as another run holds it, as a dry run reports it. */
export interface LockState {
  record: HolderRecord;
  alive: boolean;
  /** Milliseconds since the holder last renewed the lock. */
  heartbeatAgeMs: number;
}

/** What changes in a holder's record as its run goes. */
export type RecordChange = Partial<Pick<HolderRecord, 'watchdog' | 'paused' | 'readOnly' | 'gc' | 'trash' | 'trashes' | 'journal'>>;

/**
 * What a run needs of the lock it holds, on a filesystem (RunLock) or a
 * bucket (s3/lock.ts): a record updated before each step, told at once to a
 * listener (the watchdog), and where the watchdog finds it.
 */
export interface HeldLock {
  /** Where the lock is: a storage root, or a bucket (`s3://…`). */
  readonly root: string;
  readonly token: string;
  /** The storage's clock, where the lock could read it. */
  readonly clock?: StorageClock;
  /** Set while the maintenance window runs. */
  inWindow: boolean;
  watch(listener: ((record: Readonly<HolderRecord>) => void) | undefined): void;
  update(change: RecordChange): void;
  /** A lock taken on a full disk: its record written once there is room (true where it is). */
  persist(): boolean;
}
