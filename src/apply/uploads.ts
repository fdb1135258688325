/** Stale uploads out of the tree, inside the window (`--stale-uploads`): each one rename into the trash. */
import fs from 'node:fs';
import { Layout } from '../storage/layout.js';
import type { StaleUpload } from '../storage/uploads.js';
import type { Remover } from './trash.js';

/** Removes the uploads found stale before the window; returns those it took (one gone meanwhile, e.g. with its repository, is not counted). */
export async function removeUploads(root: string, stale: readonly StaleUpload[], remover: Remover, signal?: AbortSignal): Promise<StaleUpload[]> {
  const layout = new Layout(root);
  const taken: StaleUpload[] = [];
  for (const upload of stale) {
    signal?.throwIfAborted();
    const dir = layout.pathFor({ kind: 'uploadDir', name: upload.repository, id: upload.id });
    if (!fs.existsSync(dir)) continue;
    await remover.tree(dir);
    taken.push(upload);
  }
  return taken;
}
