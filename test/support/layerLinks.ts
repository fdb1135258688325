/** What sweepLayerLinks needs of a sweep's result when only the links of the blobs it took are in question. */
import type { BlobSweepResult, LayerLinks } from '../../src/apply/blobSweep.js';

export function linksOfTaken(result: BlobSweepResult): LayerLinks {
  return { taken: result.taken, repositories: result.repositories.map((r) => r.name), hadBlob: () => true, staleBefore: 0 };
}
