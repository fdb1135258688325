/**
 * Where the tree crosses into another filesystem. Admins move `blobs/`, all of
 * `repositories/` or one big repository to a bigger disk with a symlink or a
 * bind mount; a rename from there into a trash beside docker/ fails (EXDEV),
 * and a copy across filesystems inside the window would take as long as the
 * data is large. So each such directory gets a trash of its own, inside it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Layout } from '../layout.js';

/**
 * The directories of the tree that sit on another filesystem than the one
 * above them (following symlinks), deepest first: `v2`, `blobs`, `blobs/sha256`,
 * `repositories` and each repository directory (with the namespaces above it)
 * are looked at; a mount deeper than those is met as EXDEV, and what it holds
 * is removed in place.
 */
export function otherFilesystems(root: string, repositories: readonly string[]): string[] {
  const layout = new Layout(root);
  const devices = new Map<string, number | undefined>();
  const tops: string[] = [];
  const deviceOf = (dir: string, parent: string): number | undefined => {
    if (devices.has(dir)) return devices.get(dir);
    const above = devices.get(parent);
    const device = fs.statSync(dir, { throwIfNoEntry: false })?.dev;
    if (device !== undefined && above !== undefined && device !== above) tops.push(dir);
    devices.set(dir, device);
    return device;
  };
  devices.set(layout.root, fs.statSync(layout.root).dev);
  const v2 = layout.pathFor({ kind: 'v2' });
  let parent = layout.root;
  // docker/, docker/registry/, docker/registry/v2/: each can be the mount point.
  for (const step of path.relative(layout.root, v2).split(path.sep)) {
    const dir = path.join(parent, step);
    deviceOf(dir, parent);
    parent = dir;
  }
  const blobs = layout.pathFor({ kind: 'blobs' });
  deviceOf(blobs, v2);
  deviceOf(layout.pathFor({ kind: 'blobAlgorithm' }), blobs);
  const repositoriesDir = layout.pathFor({ kind: 'repositories' });
  deviceOf(repositoriesDir, v2);
  for (const name of repositories) {
    const parts = name.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const dir = layout.pathFor({ kind: 'repository', name: parts.slice(0, i).join('/') });
      deviceOf(dir, i === 1 ? repositoriesDir : layout.pathFor({ kind: 'repository', name: parts.slice(0, i - 1).join('/') }));
    }
  }
  return tops.sort((a, b) => b.length - a.length);
}

/** The deepest of `tops` (otherFilesystems) that holds `file`, or undefined when it lies on the root's filesystem. */
export function filesystemTop(tops: readonly string[], file: string): string | undefined {
  return tops.find((top) => file.startsWith(top) && file[top.length] === path.sep);
}
