/**
 * Registry versions: read from `registry --version`, compared, and the rules
 * that hang on them. One comparison serves every rule.
 */
import { UsageError } from '../errors.js';

/** The oldest registry whose storage layout regsweep knows. */
const MIN_REGISTRY_VERSION = '2.4.0';

/** `registry github.com/docker/distribution 2.8.2+ds1` → `2.8.2`; `… v2.8.1+unknown` → `2.8.1`. */
export function parseRegistryVersion(output: string): string | undefined {
  const last = output.trim().split(/\s+/).pop() ?? '';
  const version = last.replace(/^v/, '').replace(/\+.*$/, '');
  return /^\d+\.\d+(\.\d+)?/.test(version) ? version : undefined;
}

/** Compares dotted numeric versions; pre-release suffixes (`3.0.0-rc.1`) count as their release. */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string): number[] => v.split(/[.-]/).slice(0, 3).map((p) => Number.parseInt(p, 10) || 0);
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Registry 3.x: garbage-collect enumerates repositories by `_manifests` (2.x
 * by `_layers`), cannot read schema1, keeps its config in /etc/distribution,
 * and its `--delete-untagged` spares the children of tagged indexes.
 */
export function isV3(version: string): boolean {
  return compareVersions(version, '3.0.0') >= 0;
}

export function checkSupportedVersion(version: string): void {
  if (compareVersions(version, MIN_REGISTRY_VERSION) < 0) {
    throw new UsageError(`registry ${version} is older than ${MIN_REGISTRY_VERSION}, which regsweep does not support`);
  }
}
