/** The command line's words: every option, its parsing and its help. */
import { createRequire } from 'node:module';
import { InvalidArgumentError, Option, Command } from 'commander';
import { DEFAULT_KEEP_TAGS, parseDuration } from '../plan/policy.js';

const require = createRequire(import.meta.url);
const { version } = require('../../../package.json') as { version: string };

export interface CliOptions {
  path?: string;
  volume?: string;
  unpauseOnly?: boolean;
  registryImage?: string;
  dryRun?: boolean;
  yes?: boolean;
  /** Who sweeps the blobs: regsweep itself (the default), the registry's garbage-collect, or nobody (`--no-gc`). */
  gc: 'registry' | 'builtin' | false;
  /** `--gc builtin`: blobs newer than this many milliseconds before the scan stay. */
  grace: number;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  debug?: boolean;
  journal?: string;
  /** `--metrics-file FILE`: the run's outcome as a Prometheus textfile, written however the run ends. */
  metricsFile?: string;
  /** `--quarantine DURATION` in milliseconds. */
  quarantine?: number;
  restore?: string;
  registryBin?: string;
  config?: string;
  concurrency?: number;
  /** Milliseconds to wait for another run's lock (`--wait DURATION`). */
  wait?: number;
  redisUrl?: string;
  /** `--stale-uploads AGE` in milliseconds. */
  staleUploads?: number;
  remove?: string[];
  keep?: number;
  olderThan?: string;
  tags?: string;
  keepTags?: string;
  history?: number;
  policy?: string;
  top?: number;
  /** `--usage`: where the disk goes, per repository; a dry run. */
  usage?: boolean;
  progress: boolean;
  /** `--keep-digests FILE` (`-`: stdin): digests kept as if tagged. */
  keepDigests?: string;
  /** False with `--no-in-use`: the Docker engine's containers and services pin nothing. */
  inUse: boolean;
  unpulledFor?: string;
  keepPulledWithin?: string;
  /** `--access-log FILE...` (`-`: stdin): the registry's log, read into the pull index. */
  accessLog?: string[];
  /** False with `--no-pull-log`: the engine's log of the registry is not read. */
  pullLog: boolean;
}

function wholeNumber(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a whole number');
  return Number(value);
}

function duration(value: string): number {
  try {
    return parseDuration(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

function positiveDuration(value: string): number {
  const ms = duration(value);
  if (ms < 1000) throw new InvalidArgumentError('must be at least 1s');
  return ms;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number of at least 1');
  return n;
}

export function program(): Command {
  return new Command('regsweep')
    .description('Reclaim the disk of a self-hosted Docker Registry v2 (filesystem storage) without breaking a tag it keeps.')
    .usage('[options] [TARGET] [REPOSITORY[:TAG]...]')
    .argument('[target-and-repositories...]', 'TARGET is a registry container or swarm service (omit it with --path or --volume); then REPOSITORY or REPOSITORY:TAG to purge (default: every repository)')
    .addOption(new Option('--path <root>', "a storage path instead of a TARGET: the registry's rootdirectory (holding docker/registry/v2)").conflicts('volume'))
    .option('-v, --volume <name>', 'a Docker volume holding the storage instead of a TARGET (registry stopped or not)')
    .option('-x, --remove <refs...>', 'remove these tags (REPOSITORY:TAG) or whole repositories (REPOSITORY); alone, it touches nothing else (REPOSITORY arguments or retention options widen the purge); put TARGET before it')
    .addOption(new Option('--keep <n>', 'keep the N most recently pushed tags of each repository; older ones may go').argParser(wholeNumber))
    .option('--older-than <duration>', 'tags pushed longer ago than this may go (12h, 30d, 8w)')
    .option('--tags <pattern>', 'only tags matching this may go: a regular expression for the whole tag, or a semver range (<1.4, ~1.2)')
    .option('--keep-tags <pattern>', `tags matching this never go (default ${DEFAULT_KEEP_TAGS}; giving it replaces the default)`)
    .addOption(new Option('--history <n>', 'keep the N most recent earlier revisions of each tag, for rollbacks').argParser(wholeNumber))
    .option('--unpulled-for <duration>', 'tags not pulled (by name or by the digest they point at) nor pushed for this long may go (30d); needs the pull index to have seen the log that long')
    .option('--keep-pulled-within <duration>', 'tags pulled (or pushed) within this stay, whatever the other options say (14d)')
    .option('--access-log <files...>', "also read pulls from these registry log files (rotated and gzipped ones too; - reads stdin) into the pull index")
    .option('--no-pull-log', "do not read the registry container's log from the Docker engine")
    .option('--policy <file>', 'rules per repository glob (YAML, first match wins) or "<repository> <N>" lines; the options above apply where no rule matches')
    .option('--keep-digests <file>', 'also keep these digests as if tagged: REPOSITORY@sha256:… or sha256:… (in any repository), separated by white space, # comments; - reads stdin')
    .option('--no-in-use', "do not keep the digests the Docker engine's containers and services use")
    .option('-n, --dry-run', 'plan and predict only; change nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .addOption(new Option('--usage', 'where the disk goes: per repository its tags, manifests, bytes, bytes no other repository uses, and bytes the purge would reclaim; always a dry run (with --yes too)').conflicts('restore'))
    .addOption(new Option('--gc <who>', "who sweeps the blobs: regsweep itself inside a window of seconds (builtin), or the registry's own garbage-collect (registry: a helper container or the local registry binary, while the registry stays paused)").choices(['builtin', 'registry']).default('builtin'))
    .addOption(new Option('--grace <duration>', 'with --gc builtin: unreferenced blobs whose data is newer than this before the scan stay (layers of a push in flight)').default(3_600_000, '1h').argParser(duration))
    .option('--no-gc', 'remove links only; sweep no blobs')
    .option('--json', 'print the report as JSON on stdout')
    .option('-q, --quiet', 'print nothing on success')
    .option('--verbose', 'list every removed path and show the garbage-collect output')
    .addOption(new Option('--top <n>', 'rows in the table of reclaimable space per repository (or of --usage)').default(10).argParser(positiveInt))
    .option('--no-progress', 'no progress on stderr (it is shown only on a terminal, and never when CI is set)')
    .option('--debug', 'print stack traces of errors')
    .option('--journal <file>', 'record every removed link here, so the purge can be undone before the sweep (with --quarantine, after it too)')
    .option('--metrics-file <file>', "write the run's outcome (exit code, times, bytes freed, removals) here as a Prometheus textfile for node_exporter, however the run ends")
    .addOption(new Option('--quarantine <duration>', 'keep what the run removes (blobs too, with --gc builtin) in the storage root this long (24h, 7d), so --restore can put it back; later runs delete it when it expires').argParser(positiveDuration))
    .option('--restore <journal>', 'put back what a journal or a quarantine directory recorded (needs --path), then exit')
    .option('--registry-bin <file>', 'with --path: the registry binary, for its version (how it enumerates repositories) and, with --gc registry, to run garbage-collect (default: registry or docker-registry on PATH)')
    .option('--config <file>', "the registry's config.yml: with --path, its Redis cache and, with --gc registry, garbage-collect's config (default: a generated one naming --path); alone, the storage it names (filesystem, or an s3 bucket: --dry-run only, so far)")
    .option('--registry-image <image>', 'with --gc registry, --volume and no registry container: the image to run garbage-collect from')
    .option('--unpause-only', 'after the sweep, unpause the registry instead of restarting it (its blob cache then still lists swept blobs)')
    .addOption(new Option('--wait <duration>', "when another regsweep run holds this registry, wait this long for it (30s, 10m) instead of exiting with 75").argParser(duration))
    .addOption(new Option('--stale-uploads <age>', 'also remove blob uploads started longer ago than this (7d) and never finished, inside the window').argParser(positiveDuration))
    .option('--redis-url <url>', "the registry's Redis blob cache as reachable from here (redis://[user:password@]host:port/db), when its config names a host this process cannot reach")
    .addOption(new Option('--concurrency <n>', 'threads that read the tree (default: the number of CPUs, at most 4)').argParser(positiveInt))
    .version(version, '-V, --version')
    .addHelpText(
      'after',
      `
Examples:
  regsweep registry --dry-run                       a registry container: what would go, and the bytes the sweep would free
  regsweep registry --yes                           pause it, purge and sweep unreferenced blobs (seconds), restart it
  regsweep registry --yes --gc registry             the same with the registry's own garbage-collect in a helper container
  regsweep registry-stack_registry --yes            a swarm service: all its task containers
  regsweep -v registry-data --yes                   a volume (registry stopped or not)
  regsweep --path /var/lib/registry --dry-run       a storage path on this host
  regsweep --path /var/lib/registry --yes           purge and sweep (stop the registry first)
  regsweep --path ROOT --yes --gc registry          purge, then run garbage-collect with the local registry binary
  regsweep --path ROOT --yes team/web hist/app      only these repositories
  regsweep --path ROOT --yes --no-gc                purge links only
  regsweep --path ROOT --dry-run --json             machine-readable report
  regsweep --config config.yml --dry-run            the storage the registry's config names (filesystem or s3)
  regsweep registry --usage                         where the disk goes, per repository (changes nothing)
  regsweep registry --keep 10 --dry-run             keep the 10 newest tags of each repository (and latest)
  regsweep registry --older-than 30d --tags '<2.0' --yes   versions below 2.0 pushed over a month ago
  regsweep registry -x team/web:old hist/app --yes  remove a tag and a whole repository
  regsweep registry --policy retention.yml --yes    rules per repository
  regsweep registry --unpulled-for 90d --yes        tags nobody pulled for 90 days (read from the registry's log)
  regsweep --path ROOT --access-log /var/log/registry/access.log* --unpulled-for 30d --dry-run
  kubectl get pods -A -o jsonpath='{..imageID}' | regsweep registry --keep-digests - --yes   keep what pods run too
  regsweep registry --quarantine 24h --yes          keep what went (blobs too) for a day, so --restore can put it back
  regsweep --path ROOT --restore ROOT/.regsweep-quarantine-…   put back what a quarantine holds

Who sweeps the blobs (--gc): by default regsweep itself, inside the window, leaving unreferenced blobs newer
than --grace; --gc registry runs the registry's own garbage-collect instead (hours on a large registry, all of
it paused), the only one that uses --registry-image; --registry-bin and --config serve both (the version, Redis);
--quarantine goes with builtin or --no-gc, --grace only with builtin; --no-gc sweeps no blobs.

Exit codes: 0 done, 1 done with problems, 2 refused (nothing changed), 75 busy, 130 interrupted.`,
    );
}
