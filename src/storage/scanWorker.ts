/**
 * A scan worker thread: runs units of scanning work (a repository, or some
 * blob prefixes) with synchronous I/O, so several threads read the tree at once.
 */
import { parentPort } from 'node:worker_threads';
import { runScanWork } from './scan.js';
import type { ScanReply, ScanTask } from './scanPool.js';

parentPort?.on('message', (task: ScanTask) => {
  let reply: ScanReply;
  try {
    reply = { id: task.id, result: runScanWork(task) };
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    reply = { id: task.id, error: { message: e.message, code: e.code } };
  }
  parentPort?.postMessage(reply);
});
