/**
 * Appending a whole line to an open file, or nothing. On a full disk a write
 * can stop short (the kernel writes what fits, and the next call fails with
 * ENOSPC); a cut line in a journal or a swap log would be read back as a
 * corrupt one, so whatever part of it went in is cut off again.
 */
import fs from 'node:fs';

export function appendWhole(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  let written = 0;
  try {
    while (written < bytes.length) written += fs.writeSync(fd, bytes, written);
  } catch (error) {
    // Truncating needs no room: the file goes back to where the line began.
    if (written > 0) fs.ftruncateSync(fd, fs.fstatSync(fd).size - written);
    throw error;
  }
}
