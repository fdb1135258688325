/**
 * Blob uploads the registry started and nobody finished: `_uploads/<id>/`
 * with the time it began in `startedat` (RFC 3339, as the registry writes
 * it) and the bytes received so far in `data`. garbage-collect never removes
 * them; `--stale-uploads AGE` does, for those started longer ago than AGE.
 * One whose start cannot be read is left alone.
 */
import fs from 'node:fs';
import type { FoundRepository } from '../model.js';
import { Layout } from './layout.js';
import { names } from './read.js';

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

/** When the upload began (ms since the epoch), or undefined when its `startedat` is missing or unreadable. */
function startedAt(layout: Layout, repository: string, id: string): number | undefined {
  try {
    return parseStartedAt(fs.readFileSync(layout.pathFor({ kind: 'uploadStartedAt', name: repository, id }), 'utf8'));
  } catch {
    return undefined;
  }
}

/** The uploads of `repositories` started before `before` (ms since the epoch). */
export function findStaleUploads(root: string, repositories: readonly FoundRepository[], before: number): StaleUpload[] {
  const layout = new Layout(root);
  const stale: StaleUpload[] = [];
  for (const { name } of repositories) {
    for (const id of names(layout.pathFor({ kind: 'uploads', name })).sort()) {
      const began = startedAt(layout, name, id); // undefined too for a name that is no upload id
      if (began === undefined || began >= before) continue;
      const data = fs.statSync(layout.pathFor({ kind: 'uploadData', name, id }), { throwIfNoEntry: false });
      stale.push({ repository: name, id, startedAt: new Date(began).toISOString(), bytes: data?.size ?? 0 });
    }
  }
  return stale;
}
