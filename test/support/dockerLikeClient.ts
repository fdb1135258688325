import { type Descriptor, RegistryClient, digestOf } from '../../scripts/registryClient.js';

/**
 * A client that pushes like `docker push`: it asks for each blob first (HEAD)
 * and uploads only those the registry says it lacks. Against a blob cache that
 * still lists swept blobs, that is how a purged image pushed again ends up
 * with missing layers.
 */
export class DockerLikeClient extends RegistryClient {
  /** Blobs the registry claimed to have, so they were not uploaded. */
  readonly skipped: string[] = [];

  override async pushBlob(repo: string, data: Buffer): Promise<Descriptor> {
    const digest = digestOf(data);
    if ((await this.blobStatus(repo, digest, 'HEAD')) === 200) {
      this.skipped.push(digest);
      return { mediaType: 'application/octet-stream', digest, size: data.length };
    }
    return super.pushBlob(repo, data);
  }
}
