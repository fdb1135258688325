/**
 * One real run per registry: a lock file in the storage root, beside docker/,
 * so every regsweep that reaches the same storage sees it (on the host, and in
 * a container with `--volumes-from`). It also records what the run has done to
 * the registry (containers paused, the garbage-collect process), so whoever
 * finds the run dead can bring the registry back.
 *
 * Taking the lock is one link(2) of a fully written file (atomic, also on NFS);
 * taking over a dead holder's lock first claims it with a mkdir(2) named after
 * the dead holder's token, so two runs that find it dead never both take it.
 * Whether a holder is alive: in the same pid namespace of the same boot, its
 * process (or its watchdog) still runs with the start time recorded; anywhere
 * else, its heartbeat (the file's mtime, renewed every few seconds) is recent.
 *
 * A full disk is when people run this tool, and there a new file may find no
 * byte or no inode. So every run also holds a name that takes no room: an
 * abstract Unix socket named after the root's device and inode, which one
 * process on this host (in one network namespace) can hold at a time and the
 * kernel drops when it dies. Where the lock file cannot be written, that name
 * is the lock, the record lives in memory (and in the watchdog, which gets
 * every version of it), and it is written as soon as the run has made room.
 */
import crypto from 'node:crypto';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BusyError, RegsweepError } from '../errors.js';
import { errnoOf, isMissing, isNoSpace } from '../util/errno.js';
import { failpoint } from '../util/failpoint.js';
import { Layout } from './layout.js';
import { PROCESS_CLOCK, type StorageClock, clockOfWritten } from './storageClock.js';

const LOCK_FILE = '.regsweep.lock';
/** What a watchdog brought back after its run died, for the next run to report. */
const RECOVERY_NOTE = '.regsweep.recovered.json';
/** The holder renews the lock file's mtime this often. */
const HEARTBEAT_MS = 5_000;
/** Seen from another pid namespace or host, a holder whose heartbeat is older than this is dead. */
export const STALE_MS = 30_000;
/** A takeover claim older than this belongs to a run that died while taking over. */
const CLAIM_STALE_MS = 60_000;
const WAIT_POLL_MS = 1_000;

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

function readOr(file: string, fallback: string): string {
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

export interface LockState {
  record: HolderRecord;
  alive: boolean;
  /** Milliseconds since the holder last renewed the lock. */
  heartbeatAgeMs: number;
}

function lockPath(root: string): string {
  return path.join(new Layout(root).root, LOCK_FILE);
}

function parseRecord(text: string): HolderRecord | undefined {
  try {
    const value = JSON.parse(text) as Partial<HolderRecord>;
    return value?.regsweep === 'lock' && typeof value.token === 'string' ? (value as HolderRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** The lock as it is now, or undefined when no run holds it. Reads only: what a dry run reports. */
export function inspectLock(root: string): LockState | undefined {
  const file = lockPath(root);
  let text: string;
  let mtimeMs: number;
  try {
    text = fs.readFileSync(file, 'utf8');
    mtimeMs = fs.statSync(file).mtimeMs;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  const record = parseRecord(text);
  // Unreadable: a holder that died between link and rename cannot leave one (the file is linked whole), so it is foreign.
  if (!record) throw new BusyError(`${file} is not a regsweep lock; remove it if no regsweep run is at work`);
  return { record, alive: holderAlive(record, mtimeMs), heartbeatAgeMs: Date.now() - mtimeMs };
}

/** Removes the lock if `token` still holds it: a watchdog releasing its dead run's lock. */
export function releaseLock(root: string, token: string): void {
  const file = lockPath(root);
  if (parseRecord(readOr(file, ''))?.token === token) fs.rmSync(file, { force: true });
}

/** Leaves a note of what was recovered for the next run to report; none where the disk has no room for it (it only informs). */
export function saveRecoveryNote(root: string, note: object): void {
  const file = path.join(new Layout(root).root, RECOVERY_NOTE);
  try {
    fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(note, null, 2)}\n`);
    fs.renameSync(`${file}.tmp`, file);
  } catch (error) {
    fs.rmSync(`${file}.tmp`, { force: true });
    if (!isNoSpace(error)) throw error;
  }
}

/** The note a watchdog left, if any; `consume` removes it (a real run reports it once). */
export function readRecoveryNote(root: string, consume: boolean): unknown {
  const file = path.join(new Layout(root).root, RECOVERY_NOTE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  if (consume) fs.rmSync(file, { force: true });
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function describeHolder(record: HolderRecord): string {
  return `pid ${record.process.pid} on ${record.place.hostname}, started ${record.startedAt}`;
}

export function busyMessage(record: HolderRecord): string {
  return `busy: another regsweep run, ${describeHolder(record)}, holds this registry`;
}

/** Writes `record` to a fresh file beside the lock, whole, for link or rename to put in place; nothing is left when it fails. */
function writeTemp(file: string, record: HolderRecord): string {
  const temp = `${file}.${record.token}.tmp`;
  try {
    fs.writeFileSync(temp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
  return temp;
}

/** Puts `record` in place of the lock file, whole (a temp file renamed over it). */
function replaceRecord(file: string, record: HolderRecord): true {
  fs.renameSync(writeTemp(file, record), file);
  return true;
}

/**
 * Holds the host-wide name of the storage at `root` (see the top of this
 * file): the server holding it, undefined when another process holds it, or
 * null where there is no such name to hold (not Linux).
 */
async function holdHostName(root: string): Promise<net.Server | undefined | null> {
  if (process.platform !== 'linux') return null;
  const { dev, ino } = fs.statSync(root);
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', (error) => resolve(errnoOf(error) === 'EADDRINUSE' ? undefined : null));
    server.listen(`\0regsweep-lock-${dev}-${ino}`, () => {
      server.unref();
      resolve(server);
    });
  });
}

/** Puts the record in place if no lock exists: true when taken. */
function tryCreate(file: string, record: HolderRecord): boolean {
  const temp = writeTemp(file, record);
  try {
    fs.linkSync(temp, file);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return false;
    throw error;
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

/**
 * Replaces a dead holder's record with ours. The claim directory, named after
 * the dead token, lets one run through; the others see it and count as busy.
 */
function tryTakeOver(file: string, dead: HolderRecord, record: HolderRecord): boolean {
  const claim = `${file}.takeover-${dead.token}`;
  try {
    fs.mkdirSync(claim);
  } catch (error) {
    if (errnoOf(error) !== 'EEXIST') throw error;
    const age = Date.now() - (fs.statSync(claim, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age > CLAIM_STALE_MS) fs.rmSync(claim, { recursive: true, force: true });
    return false;
  }
  try {
    if (parseRecord(readOr(file, ''))?.token !== dead.token) return false; // someone finished a takeover first
    return replaceRecord(file, record);
  } finally {
    fs.rmSync(claim, { recursive: true, force: true });
  }
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

/** Runs `take`; 'no room' when the disk is full (ENOSPC, EDQUOT). */
function orNoRoom(take: () => boolean): boolean | 'no room' {
  try {
    return take();
  } catch (error) {
    if (isNoSpace(error)) return 'no room';
    throw error;
  }
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

/** The lock this run holds: updated as the run goes, renewed by a heartbeat, released at its end. */
export class RunLock implements HeldLock {
  private timer: NodeJS.Timeout | undefined;
  /** Set while the maintenance window runs: its own signal handling brings the registry back first. */
  inWindow = false;
  /** Told every version of the record (the watchdog: it must know the record that may not be on disk). */
  private listener: ((record: Readonly<HolderRecord>) => void) | undefined;
  /**
   * The storage's clock, read from the lock file's mtime as this run wrote it
   * (before any heartbeat, which sets it by this process's clock); this
   * process's own where the file could not be written (a full disk).
   */
  readonly clock: StorageClock;

  private constructor(
    /** The storage root it locks. */
    readonly root: string,
    readonly file: string,
    private record: HolderRecord,
    /** The record of the dead run this one took the lock over from, for recovery. */
    readonly previous: HolderRecord | undefined,
    private readonly hostName: net.Server | null,
    /** Is this record in the lock file? Not yet when the lock was taken on a full disk. */
    private onDisk: boolean,
  ) {
    this.clock = onDisk ? clockOfWritten(file) : PROCESS_CLOCK;
    this.timer = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
    this.timer.unref();
    failpoint('lock.taken');
  }

  /**
   * Takes the lock, taking it over from a dead holder (see `previous`).
   * A live holder: waits up to `waitMs`, then BusyError (exit 75).
   */
  static async acquire(root: string, options: AcquireOptions): Promise<RunLock> {
    const file = lockPath(root);
    const record = holderRecord(options);
    const deadline = Date.now() + (options.waitMs ?? 0);
    for (;;) {
      const name = await holdHostName(new Layout(root).root);
      const taken = name === undefined ? inspectLock(root) : RunLock.tryAcquire(root, file, record, name);
      if (taken instanceof RunLock) return taken;
      name?.close();
      if (!taken && name !== undefined) continue; // released in between: try again at once
      // Dead but claimed by another run: it takes over in a moment and then counts as a live holder.
      const alive = taken?.alive ?? true;
      if (alive && Date.now() >= deadline) throw new BusyError(taken ? busyMessage(taken.record) : `busy: another regsweep run on this host holds this registry`);
      if (!alive && Date.now() >= deadline + CLAIM_STALE_MS) throw new BusyError(`busy: another run is taking over the lock at ${file}`);
      await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
    }
  }

  /**
   * One try, holding the host name: the lock, or the holder in the way
   * (undefined when the lock is free again). On a full disk the lock is the
   * name alone until the record can be written.
   */
  private static tryAcquire(root: string, file: string, record: HolderRecord, name: net.Server | null): RunLock | LockState | undefined {
    const created = orNoRoom(() => tryCreate(file, record));
    if (created === true) return new RunLock(root, file, record, undefined, name, true);
    const state = inspectLock(root);
    if (!state && created === 'no room') {
      if (!name) throw new RegsweepError(`no room for the lock file at ${file}: its disk is full`);
      return new RunLock(root, file, record, undefined, name, false);
    }
    if (!state) return undefined;
    if (state.alive) return state;
    const over = orNoRoom(() => tryTakeOver(file, state.record, record));
    if (over === true) return new RunLock(root, file, record, state.record, name, true);
    if (over === 'no room' && name) return new RunLock(root, file, record, state.record, name, false);
    return state;
  }

  get token(): string {
    return this.record.token;
  }

  get current(): Readonly<HolderRecord> {
    return this.record;
  }

  /** `listener` is told the record now and at every update, until the run releases the lock. */
  watch(listener: ((record: Readonly<HolderRecord>) => void) | undefined): void {
    this.listener = listener;
    listener?.(this.record);
  }

  /**
   * Records more of what the run did, before it does it: in the lock file
   * where there is room, and always with the listener (the watchdog).
   */
  update(change: RecordChange): void {
    this.record = { ...this.record, ...change };
    this.listener?.(this.record);
    if (!this.onDisk) {
      this.persist();
      return;
    }
    this.checkHeld();
    // No room on a disk that filled since: the file keeps the record before, the watchdog has this one.
    orNoRoom(() => replaceRecord(this.file, this.record));
    failpoint('lock.updated');
  }

  /**
   * A lock taken on a full disk: writes its record to the lock file once
   * there is room (the run calls this as soon as it has freed some). False
   * while there is none: the record stays in memory and with the watchdog.
   */
  persist(): boolean {
    if (this.onDisk) return true;
    const written = orNoRoom(() => {
      if (!this.previous) return tryCreate(this.file, this.record);
      if (parseRecord(readOr(this.file, ''))?.token !== this.previous.token) return false;
      return replaceRecord(this.file, this.record);
    });
    if (written === false) throw new BusyError(`the lock at ${this.file} was taken by another run while this one held it: stopping`);
    this.onDisk = written === true;
    return this.onDisk;
  }

  /** Gives the lock up: the run's cleanup is done. */
  release(): void {
    this.stopHeartbeat();
    this.listener = undefined;
    this.hostName?.close();
    if (parseRecord(readOr(this.file, ''))?.token === this.record.token) fs.rmSync(this.file, { force: true });
  }

  /** Keeps the lock (and its record) for whoever finds this run dead: the registry could not be brought back. */
  abandon(): void {
    this.stopHeartbeat();
  }

  private stopHeartbeat(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private heartbeat(): void {
    const now = new Date();
    try {
      fs.utimesSync(this.file, now, now);
    } catch {
      // A missed beat is retried by the next one; a lost lock is found by checkHeld.
    }
  }

  private checkHeld(): void {
    const token = parseRecord(readOr(this.file, ''))?.token;
    if (token !== this.record.token) throw new BusyError(`the lock at ${this.file} was taken over by another run (token ${token ?? 'none'}): stopping`);
  }
}
