/**
 * A scan worker thread: runs units of scanning work (a repository, or some
 * blob prefixes) with synchronous I/O, so several threads read the tree at once.
 */
import { parentPort } from 'node:worker_threads';
import type { BlobPart } from '../../model.js';
import { runScanWork } from './scan.js';
import type { ScanReply, ScanTask } from './scanPool.js';

parentPort?.on('message', (task: ScanTask) => {
  let reply: ScanReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const result = runScanWork(task);
    reply = { id: task.id, result };
    // A part of blobs is handed over, not copied: its arrays are their own buffers (scanBlobPrefixes).
    if (task.kind === 'blobs') transfer = [(result as BlobPart).digests.buffer as ArrayBuffer, (result as BlobPart).sizes.buffer as ArrayBuffer];
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    reply = { id: task.id, error: { message: e.message, code: e.code } };
  }
  parentPort?.postMessage(reply, transfer);
});
