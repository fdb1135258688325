/**
 * Stale blob uploads on a filesystem: `_uploads/<id>/startedat` read as a file
 * (what a stale upload is: ../uploads.ts).
 */
import fs from 'node:fs';
import type { FoundRepository } from '../../model.js';
import { Layout } from '../layout.js';
import { type StaleUpload, parseStartedAt } from '../uploads.js';
import { names } from './read.js';

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
