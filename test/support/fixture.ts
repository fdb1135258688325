/**
 * The committed storage tree test/fixtures/storage (pushed through the real
 * registry by scripts/fixtures.ts, `npm run fixtures`) and its
 * test/fixtures/scenario.json, which names every digest by role.
 *
 * git keeps neither empty directories nor mtimes: nothing here may depend on
 * either. Copy the tree (copyFixture) before anything that could write.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FixtureManifest, FixtureScenario } from '../../scripts/fixtures.js';
import { tempDir } from './tmp.js';

export type { FixtureManifest, FixtureScenario };

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures');

/** The committed storage root (the directory holding docker/registry/v2). Read it, never write it. */
export const FIXTURE_ROOT = path.join(fixtures, 'storage');

export async function loadScenario(): Promise<FixtureScenario> {
  return JSON.parse(await fs.readFile(path.join(fixtures, 'scenario.json'), 'utf8')) as FixtureScenario;
}

/** A copy of the fixture tree in a fresh temp dir; remove it with fs.rm(root, { recursive: true }). */
export async function copyFixture(): Promise<string> {
  const root = await tempDir('regsweep-fixture-');
  await fs.cp(FIXTURE_ROOT, root, { recursive: true });
  return root;
}

/** The manifest with this role; throws on an unknown role, so a typo never reads as "nothing". */
export function role(scenario: FixtureScenario, name: string): FixtureManifest {
  const m = scenario.manifests[name];
  if (!m) throw new Error(`scenario.json has no manifest role ${name}`);
  return m;
}

/** `repository@digest` of each role, sorted: the form plan comparisons use. */
export function refs(scenario: FixtureScenario, names: readonly string[]): string[] {
  return names.map((n) => `${role(scenario, n).repository}@${role(scenario, n).digest}`).sort();
}

/**
 * What garbage-collect sweeps once the manifests of `removed` roles are gone,
 * worked out from scenario.json alone: every blob some removed manifest
 * marked that no remaining manifest marks, plus the orphan upload.
 */
export function expectedSweep(scenario: FixtureScenario, removed: readonly string[]): string[] {
  const gone = new Set(removed.map((n) => role(scenario, n)));
  const stillMarked = new Set<string>();
  for (const m of Object.values(scenario.manifests)) if (!gone.has(m)) for (const b of m.blobs) stillMarked.add(b);
  const swept = new Set<string>([scenario.blobs.orphan.digest]);
  for (const m of gone) for (const b of m.blobs) if (!stillMarked.has(b)) swept.add(b);
  return [...swept].sort();
}
