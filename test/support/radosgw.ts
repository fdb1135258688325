/** The tests' radosgw is the bench's (`npm run bench -- --sizes s3` starts the same cluster): one module in scripts/. */
export * from '../../scripts/radosgw.js';
