/**
 * scripts/fixtures.ts against the real registry: pushing the scenario again
 * writes byte for byte the committed test/fixtures (same files, same digests),
 * so the fixture is what the script makes and regenerating it changes nothing.
 * Skipped without a registry binary.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFixture } from '../../scripts/fixtures.js';
import { registryBinary } from '../../scripts/registryClient.js';
import { FIXTURE_ROOT } from '../support/fixture.js';
import { snapshot, tempDir } from '../support/tmp.js';

const bin = registryBinary();
const dirs: string[] = [];

afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

describe.skipIf(!bin)('npm run fixtures', () => {
  it('writes exactly the committed storage tree and scenario.json', async () => {
    const out = await tempDir('regsweep-fixtures-');
    dirs.push(out);
    const { files, scenario } = await writeFixture(out);
    const made = await snapshot(path.join(out, 'storage'));
    const committed = await snapshot(FIXTURE_ROOT);
    // Compare the listings first: a differing path reads better than a differing hash.
    expect(Object.keys(made).sort()).toEqual(Object.keys(committed).sort());
    expect(made).toEqual(committed);
    expect(await fs.readFile(path.join(out, 'scenario.json'), 'utf8')).toBe(await fs.readFile(path.join(FIXTURE_ROOT, '../scenario.json'), 'utf8'));
    // Small enough to commit, and every repository keeps a tag (so git keeps its _manifests/tags).
    expect(files).toBeLessThan(200);
    for (const repository of scenario.repositories) expect(scenario.tags.some((t) => t.repository === repository)).toBe(true);
  });
});
