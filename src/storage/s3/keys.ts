/**
 * The registry's tree in a bucket. The s3 driver stores each file of the
 * filesystem layout (layout.ts) as one object whose key is its path below the
 * rootdirectory, with '/' separators: no directory objects, a "directory" is
 * there when some key starts with its path and '/'. This module turns layout
 * locations into keys and keys back into path components, and says how a key
 * is shown in a message (`s3://bucket/key`, as a filesystem scan shows a path).
 */
import { Layout, type PathSpec } from '../layout.js';
import { type S3Location, keyPrefix } from './location.js';

/** Only relativePathFor is used: it needs no root. */
const LAYOUT = new Layout('/');

export class BucketKeys {
  /** Every key of the tree starts with this ('' or `root/`). */
  readonly prefix: string;
  /** `<prefix>docker/registry/v2/blobs/sha256/`: blob prefix directories below it. */
  readonly blobs: string;
  /** `<prefix>docker/registry/v2/repositories/`: repository names below it. */
  readonly repositories: string;
  /** `<prefix>docker/registry/v2/` */
  readonly v2: string;

  constructor(readonly location: Pick<S3Location, 'bucket' | 'rootdirectory'>) {
    this.prefix = keyPrefix(location);
    this.v2 = this.dirFor({ kind: 'v2' });
    this.blobs = this.dirFor({ kind: 'blobAlgorithm' });
    this.repositories = this.dirFor({ kind: 'repositories' });
  }

  keyFor(spec: PathSpec): string {
    return `${this.prefix}${LAYOUT.relativePathFor(spec)}`;
  }

  /** A directory's key prefix: its key and '/'. */
  dirFor(spec: PathSpec): string {
    return `${this.keyFor(spec)}/`;
  }

  /** How a key (or a directory's path, without the trailing '/') is shown in problems. */
  display(key: string): string {
    return `s3://${this.location.bucket}/${key}`;
  }

  /** The components of a key below a directory prefix it starts with. */
  static below(dirPrefix: string, key: string): string[] {
    return key.slice(dirPrefix.length).split('/');
  }
}
