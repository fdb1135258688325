/**
 * Every error regsweep can end with, in one place. The core throws these and
 * never prints or exits; the CLI prints one line (`regsweep: message`, with the
 * cause) and exits with the class's code. Callers tell errors apart by class,
 * never by message text.
 *
 *   1    done with problems, or a failure after work began
 *   2    refused: bad input or an unsupported target, nothing changed
 *   75   busy: another regsweep run holds this registry (EX_TEMPFAIL: try again later)
 *   130  interrupted by SIGINT or SIGTERM, after the registry was brought back
 */
export class RegsweepError extends Error {
  readonly exitCode: number = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad input or an unsupported target: nothing was changed. Exit code 2. */
export class UsageError extends RegsweepError {
  override readonly exitCode = 2;
}

/** A repository name, tag or digest that cannot be a path component of the storage tree. Exit code 2. */
export class LayoutError extends UsageError {}

/** A journal given to `--restore` that is not one, or that names a path outside the tree. Exit code 2. */
export class JournalError extends UsageError {}

/**
 * A real run (or `--restore`) on storage it cannot write: a read-only mount, or
 * directories this user may not write. Refused before the lock, the scan or any
 * pause: nothing changed. Exit code 2.
 */
export class StorageNotWritableError extends UsageError {}

/** A real run that was not confirmed at the prompt: nothing changed. Exit code 2. */
export class NotConfirmedError extends UsageError {}

/** Tags moved between the plan and the apply: nothing was removed. Exit code 1. */
export class TreeChangedError extends RegsweepError {}

/** The Docker engine failed a call regsweep made (inspect, pause, run a helper…). Exit code 1. */
export class EngineError extends RegsweepError {}

/** The registry could not be restarted or unpaused after the window. Exit code 1. */
export class RollbackError extends RegsweepError {}

/** Another regsweep run holds this registry's lock: nothing was changed. Exit code 75. */
export class BusyError extends RegsweepError {
  override readonly exitCode = 75;
}

/** Stopped by SIGINT or SIGTERM after the registry was brought back. Exit code 130. */
export class InterruptedError extends RegsweepError {
  override readonly exitCode = 130;
}

/**
 * A manifest whose bytes regsweep does not understand. Never reaches the user
 * as an error: the scan turns it into a Problem that spares its repository.
 */
export class ManifestError extends Error {}
