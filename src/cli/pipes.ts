/**
 * Output to a reader that went away (`regsweep --help | head -1`): the next
 * write fails with EPIPE, which Node emits as an 'error' event on the stream,
 * and unhandled that ends the process with a stack trace. Here such a stream
 * is marked closed and written no more. The run itself goes on to its end and
 * exits with its own code: a real run must never stop inside its window
 * because a reader left, and the exit code (and `--metrics-file`) should say
 * how the sweep went, not that nobody read the report to the end.
 */
const closed = new WeakSet<NodeJS.WriteStream>();
let installed = false;

/** Ends the output of stdout and stderr quietly when their reader closes the pipe; other errors stay fatal. */
export function quietOnClosedPipes(): void {
  if (installed) return;
  installed = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      closed.add(stream);
    });
  }
}

/**
 * Writes to stdout and waits while the pipe is full; writes nothing once the
 * reader has gone. A pipe closed meanwhile emits 'error' and 'close' (Node's
 * stdout is never really destroyed), which end a wait for 'drain' that would
 * never come.
 */
export async function writeStdout(chunk: string): Promise<void> {
  const out = process.stdout;
  if (closed.has(out) || out.write(chunk)) return;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      for (const event of ['drain', 'close', 'error']) out.off(event, done);
      resolve();
    };
    for (const event of ['drain', 'close', 'error']) out.on(event, done);
  });
}
