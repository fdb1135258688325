/**
 * Blob uploads the registry started and nobody finished: `_uploads/<id>/`
 * with the time it began in `startedat` (RFC 3339, as the registry writes
 * it) and the bytes received so far in `data`. garbage-collect never removes
 * them; `--stale-uploads AGE` does, for those started longer ago than AGE.
 * One whose start cannot be read is left alone. What an upload is, on any
 * storage; finding them is the backend's (fs/uploads.ts, s3/uploads.ts).
 */
export interface StaleUpload {
  repository: string;
  id: string;
  startedAt: string;
  /** The size of its `data` so far (0 without one). */
  bytes: number;
}

/** A `startedat` as ms since the epoch, or undefined when it is no RFC 3339 time with a zone (which Date.parse reads exactly; anything else it might guess at is refused). */
export function parseStartedAt(content: string): number | undefined {
  const text = content.trim();
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}
