/** Settles a promise that must reject, and returns its reason (with the exit code regsweep's errors carry). */
export async function rejection(promise: Promise<unknown>): Promise<Error & { exitCode?: number }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { exitCode?: number };
  }
  throw new Error('expected a rejection, but it resolved');
}
