/**
 * Which container this process runs in, from what the kernel shows it. The
 * hostname is no answer: `--hostname X` sets it to X and `--network host` to
 * the host's own. What every container has is its own /etc/hostname, /etc/hosts
 * and /etc/resolv.conf, bind-mounted by the engine from the container's
 * directory (`<data-root>/containers/<id>/hostname`; Podman:
 * `…/overlay-containers/<id>/userdata/hostname`), and /proc/self/mountinfo shows
 * that path as the mount's root. Without it, /proc/self/cgroup names the
 * container when the cgroup namespace is the host's. No evidence, no container:
 * a host is never taken for one.
 */
import fs from 'node:fs';
import os from 'node:os';
import { errnoOf, isMissing } from '../util/errno.js';

/** What the process can see of itself; every field may be missing. */
export interface SelfEvidence {
  /** `REGSWEEP_SELF_CONTAINER`: a container name or id, taken as said. */
  override?: string;
  /** The text of /proc/self/mountinfo. */
  mountinfo?: string;
  /** The text of /proc/self/cgroup. */
  cgroup?: string;
  /** Whether /.dockerenv exists. */
  dockerenv?: boolean;
  hostname?: string;
}

/** The container to look up, and how it was found: a `hostname` is only an id prefix, to be checked against the id found. */
interface SelfRef {
  ref: string;
  how: 'override' | 'mountinfo' | 'cgroup' | 'hostname';
}

const ID = '[0-9a-f]{64}';
const ENGINE_ETC_FILES = new Set(['/etc/hostname', '/etc/hosts', '/etc/resolv.conf']);
const FROM_CONTAINER_DIR = new RegExp(`/(?:containers/(${ID})|overlay-containers/(${ID})/userdata)/(?:hostname|hosts|resolv\\.conf)$`);
/** cgroupfs `/docker/<id>`, systemd `docker-<id>.scope`, Podman `libpod-<id>.scope`; the last one in a path is the innermost. */
const CGROUP_ID = new RegExp(`(?:^|/)(?:docker/|docker-|libpod-)(${ID})(?:\\.scope)?(?=/|$)`, 'g');

/** The one value all of `ids` agree on; none, or a disagreement, is no answer. */
function agreed(ids: Array<string | undefined>): string | undefined {
  const distinct = new Set(ids.filter((id): id is string => id !== undefined));
  return distinct.size === 1 ? [...distinct][0] : undefined;
}

/** mountinfo's fields: `id parent major:minor root mount-point options … - fstype source super-options`. */
export function containerIdFromMountinfo(text: string): string | undefined {
  const ids: string[] = [];
  for (const line of text.split('\n')) {
    const [, , , root, mountPoint] = line.split(' ');
    if (!root || !mountPoint || !ENGINE_ETC_FILES.has(mountPoint)) continue;
    const match = FROM_CONTAINER_DIR.exec(root);
    if (match) ids.push((match[1] ?? match[2]) as string);
  }
  return agreed(ids);
}

/** /proc/self/cgroup's lines: `hierarchy-id:controllers:path`. */
export function containerIdFromCgroup(text: string): string | undefined {
  const ids = text.split('\n').map((line) => {
    const cgroupPath = line.split(':').slice(2).join(':');
    return [...cgroupPath.matchAll(CGROUP_ID)].at(-1)?.[1];
  });
  return agreed(ids);
}

/**
 * The container this process runs in: the override, else the mountinfo
 * evidence, else the cgroup one; last, where /.dockerenv says Docker and the
 * hostname has the shape of Docker's default (a 12-hex id prefix), that prefix.
 */
export function selfContainer(evidence: SelfEvidence): SelfRef | undefined {
  if (evidence.override) return { ref: evidence.override, how: 'override' };
  const fromMounts = evidence.mountinfo === undefined ? undefined : containerIdFromMountinfo(evidence.mountinfo);
  if (fromMounts) return { ref: fromMounts, how: 'mountinfo' };
  const fromCgroup = evidence.cgroup === undefined ? undefined : containerIdFromCgroup(evidence.cgroup);
  if (fromCgroup) return { ref: fromCgroup, how: 'cgroup' };
  if (evidence.dockerenv && evidence.hostname && /^[0-9a-f]{12}$/.test(evidence.hostname)) return { ref: evidence.hostname, how: 'hostname' };
  return undefined;
}

function readIfThere(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    // No /proc, or one this process may not read: no evidence.
    if (isMissing(error) || errnoOf(error) === 'EACCES' || errnoOf(error) === 'EPERM') return undefined;
    throw error;
  }
}

/** The evidence, read from this process's environment, /proc and /. */
export function readSelfEvidence(env: NodeJS.ProcessEnv = process.env): SelfEvidence {
  const override = env.REGSWEEP_SELF_CONTAINER;
  if (override) return { override };
  return {
    mountinfo: readIfThere('/proc/self/mountinfo'),
    cgroup: readIfThere('/proc/self/cgroup'),
    dockerenv: fs.existsSync('/.dockerenv'),
    hostname: os.hostname(),
  };
}
