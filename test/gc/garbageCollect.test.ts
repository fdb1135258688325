import { describe, expect, it } from 'vitest';
import { chooseGcFlags, parseGcSummary } from '../../src/gc/garbageCollect.js';
import { compareVersions, isV3, parseRegistryVersion } from '../../src/gc/version.js';

describe('registry versions and garbage-collect flags', () => {
  it.each([
    ['registry github.com/docker/distribution 2.8.2+ds1', '2.8.2'],
    ['registry github.com/docker/distribution v2.8.1+unknown', '2.8.1'],
    ['registry github.com/distribution/distribution/v3 3.0.0', '3.0.0'],
    ['registry github.com/distribution/distribution/v3 v3.1.1', '3.1.1'],
  ])('%s → %s', (output, version) => {
    expect(parseRegistryVersion(output)).toBe(version);
  });
  it('orders versions numerically, and tells 3.x apart', () => {
    expect(isV3('2.8.3')).toBe(false);
    expect(isV3('3.0.0-rc.1')).toBe(true);
    expect(compareVersions('2.10.0', '2.8.2')).toBeGreaterThan(0);
    expect(compareVersions('2.3.9', '2.4.0')).toBeLessThan(0);
    expect(compareVersions('3.0.0', '3.0.0')).toBe(0);
  });
  it('never passes --delete-untagged on 2.x, and on 3.x only when nothing untagged is kept', () => {
    expect(chooseGcFlags('2.8.3', false).args).toEqual([]);
    expect(chooseGcFlags('2.7.0', true).args).toEqual([]);
    expect(chooseGcFlags('3.0.0', true).args).toEqual([]);
    expect(chooseGcFlags('3.1.1', false).args).toEqual(['--delete-untagged']);
  });
  it('reads the summary line', () => {
    expect(parseGcSummary('x\n\n12 blobs marked, 3 blobs and 0 manifests eligible for deletion\n')).toEqual({ marked: 12, blobsEligible: 3, manifestsEligible: 0 });
  });
});
