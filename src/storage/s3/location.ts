/**
 * Where a registry keeps its data, read from its config file and environment
 * by the registry's own rules: which storage driver the config names and, for
 * the `s3` driver, the bucket, how to reach it and the key prefix its tree
 * sits under. Parameters as distribution's s3-aws driver reads them (2.8 and
 * 3.0, `FromParameters` and `New`); `REGISTRY_STORAGE_S3_*` variables override
 * the file (util/registryEnv.ts, shared with gc/registryConfig.ts).
 */
import { UsageError } from '../../errors.js';
import { yaml } from '../../util/lazy.js';
import { DEFAULT_ROOTDIRECTORY, type Environment, STORAGE_PARAMETERS, effectiveStorage, isMap } from '../../util/registryEnv.js';

/** A bucket as the registry's s3 driver reaches it. */
export interface S3Location {
  bucket: string;
  region: string;
  /** `regionendpoint` with a scheme (`http://` when not `secure`, as the driver's SDK adds one); undefined: AWS's own endpoint for the region. */
  endpoint?: string;
  /** `forcepathstyle`; unset, path style when `regionendpoint` is set (2.x always does so there; 3.x defaults to virtual hosts, which an IP endpoint cannot serve). */
  forcePathStyle: boolean;
  /** `rootdirectory` as configured ('' when unset). */
  rootdirectory: string;
  /** `accesskey` and `secretkey`; undefined when either is empty: the SDK's default chain (env, shared files, instance role), as the driver does. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** `secure` (default true): https to AWS's endpoint, or to a `regionendpoint` given without a scheme. */
  secure: boolean;
  /** `skipverify`: TLS certificates are not verified. */
  skipVerify: boolean;
}

export type StorageDriver = { driver: 'filesystem'; rootdirectory: string } | { driver: 's3'; location: S3Location } | { driver: 'other'; name: string };

/**
 * The prefix every key of the registry's tree starts with: the driver's
 * s3Path is `TrimLeft(TrimRight(rootdirectory, "/") + "/docker/...", "/")`,
 * so '' and '/' give '' and '/a/b/' gives 'a/b/'.
 */
export function keyPrefix(location: Pick<S3Location, 'rootdirectory'>): string {
  return `${location.rootdirectory.replace(/\/+$/, '')}/`.replace(/^\/+/, '');
}

/** A parameter as the driver's `fmt.Sprint` makes it a string: absent is ''. */
function text(params: Record<string, unknown>, key: string): string {
  const value = params[key];
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : String(value);
}

/** Go's strconv.ParseBool, as the driver applies it to a string; a YAML boolean as it is. */
function flag(params: Record<string, unknown>, key: string, fallback: boolean, source: string): boolean {
  const value = params[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
    if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  }
  throw new UsageError(`${source}: storage.s3.${key} must be a boolean, not ${JSON.stringify(value)}`);
}

/** The s3 driver's parameters as a location; refuses what the driver itself refuses to start with. */
export function s3Location(params: Record<string, unknown>, source = 'config'): S3Location {
  const bucket = text(params, 'bucket');
  const region = text(params, 'region');
  if (!bucket) throw new UsageError(`${source}: storage.s3 names no bucket`);
  if (!region) throw new UsageError(`${source}: storage.s3 names no region`);
  const secure = flag(params, 'secure', true, source);
  const regionEndpoint = text(params, 'regionendpoint');
  const endpoint = !regionEndpoint ? undefined : /^[a-z][a-z0-9+.-]*:\/\//i.test(regionEndpoint) ? regionEndpoint : `${secure ? 'https' : 'http'}://${regionEndpoint}`;
  const accessKeyId = text(params, 'accesskey');
  const secretAccessKey = text(params, 'secretkey');
  return {
    bucket,
    region,
    endpoint,
    forcePathStyle: flag(params, 'forcepathstyle', endpoint !== undefined, source),
    rootdirectory: text(params, 'rootdirectory'),
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
    secure,
    skipVerify: flag(params, 'skipverify', false, source),
  };
}

/**
 * Which storage driver a registry with this config file (or none) and
 * environment uses, and where its data is: the filesystem's rootdirectory, an
 * s3 bucket's location, or the name of another driver. Refuses (exit 2) text
 * that is not YAML and a storage section without exactly one driver.
 */
export function storageDriver(configText: string | undefined, env: Environment, source = 'config'): StorageDriver {
  let doc: unknown = {};
  try {
    doc = configText === undefined ? {} : (yaml().load(configText) ?? {});
  } catch (error) {
    throw new UsageError(`${source} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  const storage = effectiveStorage(isMap(doc) ? doc : {}, env);
  const drivers = Object.keys(storage).filter((k) => !STORAGE_PARAMETERS.has(k.toLowerCase()));
  if (drivers.length !== 1) {
    throw new UsageError(drivers.length === 0 ? `${source} configures no storage driver` : `${source} configures more than one storage driver: ${drivers.join(', ')}`);
  }
  const name = drivers[0] as string;
  const params = isMap(storage[name]) ? storage[name] : {};
  switch (name.toLowerCase()) {
    case 'filesystem':
      return { driver: 'filesystem', rootdirectory: text(params, 'rootdirectory') || DEFAULT_ROOTDIRECTORY };
    case 's3':
    case 's3aws':
      // The s3-aws driver registers itself under both names (2.x and 3.x).
      return { driver: 's3', location: s3Location(params, source) };
    default:
      return { driver: 'other', name };
  }
}
