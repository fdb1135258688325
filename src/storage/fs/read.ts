/**
 * The scan's file reads: directory listings that treat a missing directory as
 * empty, and link and manifest reads with as few system calls as a file can
 * take, since a large tree has hundreds of thousands of them. Synchronous, so
 * several threads (scanPool.ts) read the tree at once.
 */
import type { Dirent } from 'node:fs';
import fs from 'node:fs';
import type { Digest } from '../../model.js';
import { isMissing } from '../../util/errno.js';
import { parseDigest } from '../layout.js';

/** A directory listing, or [] when the directory does not exist (an empty repository has no revisions dir). */
function listOrEmpty<T>(list: () => T[]): T[] {
  try {
    return list();
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
}

export function entries(dir: string): Dirent[] {
  return listOrEmpty(() => fs.readdirSync(dir, { withFileTypes: true }));
}

/**
 * Is this entry of `dir` a directory, or a symlink to one? Admins move a
 * large repository (or more) to another disk behind a symlink, and the
 * registry follows it: a scan that did not would miss what it holds, and
 * sweep the blobs its tags need.
 */
export function isDirectoryEntry(dir: string, entry: Dirent): boolean {
  if (entry.isDirectory()) return true;
  return entry.isSymbolicLink() && fs.statSync(`${dir}/${entry.name}`, { throwIfNoEntry: false })?.isDirectory() === true;
}

/** Names only, where the type is never looked at: a Dirent each is garbage by the hundred thousand. */
export function names(dir: string): string[] {
  return listOrEmpty(() => fs.readdirSync(dir));
}

export type LinkRead = { digest: Digest } | { missing: true } | { corrupt: string };

/**
 * One buffer per thread for the small files the scan reads by the hundred
 * thousand. readFileSync costs an fstat and a second read to find the end;
 * one read into a buffer larger than the file finds it at once, since a
 * regular file's read is short only at its end. That is two syscalls of five
 * per file, and the scan is bound by them.
 */
const readBuffer = Buffer.allocUnsafe(64 * 1024);

/** A descriptor to read `file` with, or undefined when it does not exist. */
function openIfExists(file: string): number | undefined {
  try {
    return fs.openSync(file, 'r');
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

/**
 * The bytes of a file; undefined when it does not exist. A view of readBuffer
 * when they fit there, valid until the next read; when they fill it, the rest
 * is read through the same descriptor.
 */
export function readBytes(file: string): Buffer | undefined {
  const fd = openIfExists(file);
  if (fd === undefined) return undefined;
  try {
    // Position null: from the current offset, so readFileSync(fd) goes on where this read stopped.
    const start = readBuffer.subarray(0, fs.readSync(fd, readBuffer, 0, readBuffer.length, null));
    if (start.length < readBuffer.length) return start;
    return Buffer.concat([start, fs.readFileSync(fd)]);
  } finally {
    fs.closeSync(fd);
  }
}

/** Longer than a link can be: its content is corrupt, and no more of it is needed to say so. */
const LINK_READ_LIMIT = 128;

export function readLink(file: string): LinkRead {
  const fd = openIfExists(file);
  if (fd === undefined) return { missing: true };
  let length: number;
  try {
    length = fs.readSync(fd, readBuffer, 0, LINK_READ_LIMIT, null);
  } finally {
    fs.closeSync(fd);
  }
  // Decoded straight from the shared buffer: no Buffer view per link, and there are tens of thousands.
  const content = readBuffer.toString('utf8', 0, length);
  const digest = parseDigest(content);
  return digest ? { digest } : { corrupt: content };
}

export function mtimeOf(file: string): number | undefined {
  return fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs;
}
