/**
 * Known failures, printed by the CLI as one line. The core throws these and
 * never prints or exits; the exit code belongs to the class.
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

/** Stopped by SIGINT or SIGTERM after the registry was brought back. Exit code 130. */
export class InterruptedError extends RegsweepError {
  override readonly exitCode = 130;
}
