/**
 * The command line: the only place that reads argv, prints, and sets exit codes.
 *   0 done (also when there was nothing to do)
 *   1 done with problems (a repository spared, garbage-collect failed)
 *   2 refused (usage, bad input, unsupported target); nothing changed
 *   130 interrupted
 */
import { createRequire } from 'node:module';
import readline from 'node:readline/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { restoreJournal } from './apply.js';
import { RegsweepError, UsageError } from './errors.js';
import { parseSelector } from './planner.js';
import { formatBytes, formatHuman, toJson } from './report.js';
import { isRegistryRoot } from './scanner.js';
import { type SweepPreview, sweep } from './sweep.js';

const require = createRequire(import.meta.url);
const { version } = require('../../package.json') as { version: string };

interface CliOptions {
  path?: string;
  dryRun?: boolean;
  yes?: boolean;
  gc: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  debug?: boolean;
  journal?: string;
  restore?: string;
  registryBin?: string;
  config?: string;
  concurrency?: number;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number of at least 1');
  return n;
}

function program(): Command {
  return new Command('regsweep')
    .description('Reclaim the disk of a self-hosted Docker Registry v2 (filesystem storage) without breaking a tag it keeps.')
    .argument('[repositories...]', 'REPOSITORY or REPOSITORY:TAG to purge (default: every repository)')
    .addOption(new Option('--path <root>', "the registry's rootdirectory (the directory holding docker/registry/v2)"))
    .option('-n, --dry-run', 'plan and predict only; change nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--no-gc', 'remove links only; do not run garbage-collect')
    .option('--json', 'print the report as JSON on stdout')
    .option('-q, --quiet', 'print nothing on success')
    .option('--verbose', 'list every removed item and show the garbage-collect output')
    .option('--debug', 'print stack traces of errors')
    .option('--journal <file>', 'record every removed link here, so the purge can be undone before garbage-collect')
    .option('--restore <journal>', 'put back the links a journal recorded (needs --path), then exit')
    .option('--registry-bin <file>', 'the registry binary to run garbage-collect with (default: registry or docker-registry on PATH)')
    .option('--config <file>', "the registry's config.yml for garbage-collect (default: a generated one naming --path)")
    .addOption(new Option('--concurrency <n>', 'parallel file operations').argParser(positiveInt))
    .version(version, '-V, --version')
    .addHelpText(
      'after',
      `
Examples:
  regsweep --path /var/lib/registry --dry-run       what would go, and what garbage-collect would free
  regsweep --path /var/lib/registry --yes           purge, then run garbage-collect with the local registry binary
  regsweep --path ROOT --yes team/web hist/app      only these repositories
  regsweep --path ROOT --yes --no-gc                purge links only
  regsweep --path ROOT --dry-run --json             machine-readable report

Exit codes: 0 done, 1 done with problems, 2 refused (nothing changed), 130 interrupted.`,
    );
}

function describePreview(p: SweepPreview): string {
  const lines = [
    `regsweep will change ${p.root}:`,
    `  remove ${p.plan.manifests.length} manifests and ${p.plan.indexEntries.length} tag history entries`,
  ];
  if (p.gc) lines.push(`  then run garbage-collect, predicted to free ${p.predicted.blobs} blobs, ${formatBytes(p.predicted.bytes)}`);
  return `${lines.join('\n')}\n`;
}

async function askOnTerminal(preview: SweepPreview): Promise<boolean> {
  process.stderr.write(describePreview(preview));
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question('Proceed? [y/N] ');
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

async function run(argv: string[]): Promise<number> {
  const cmd = program();
  cmd.exitOverride();
  cmd.configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    cmd.parse(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed as one line.
      return error.exitCode === 0 ? 0 : 2;
    }
    throw error;
  }
  const opts = cmd.opts<CliOptions>();
  const args = cmd.args;
  if (!opts.path) throw new UsageError('--path ROOT is required');

  if (opts.restore) {
    if (!(await isRegistryRoot(opts.path))) throw new UsageError(`${opts.path} is not a registry storage root (no docker/registry/v2 below it)`);
    const restored = await restoreJournal(opts.path, opts.restore);
    if (!opts.quiet) process.stdout.write(`restored ${restored.restored} links, ${restored.present} already present\n`);
    for (const c of restored.conflicts) process.stderr.write(`conflict: ${c} exists with other content; left as it is\n`);
    return restored.conflicts.length > 0 ? 1 : 0;
  }

  const selectors = args.map(parseSelector);
  const dryRun = opts.dryRun ?? false;
  if (!dryRun && !opts.yes && !process.stdin.isTTY) {
    throw new UsageError('refusing to change the registry without --yes: stdin is not a terminal');
  }
  const report = await sweep({
    root: opts.path,
    selectors,
    dryRun,
    gc: opts.gc,
    registryBin: opts.registryBin,
    config: opts.config,
    journal: opts.journal,
    concurrency: opts.concurrency,
    confirm: dryRun || opts.yes ? undefined : askOnTerminal,
  });
  const failed = report.problems.length > 0;
  if (opts.json) {
    process.stdout.write(toJson(report));
  } else if (!opts.quiet || failed) {
    (opts.quiet ? process.stderr : process.stdout).write(formatHuman(report, { verbose: opts.verbose }));
  }
  return failed ? 1 : 0;
}

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  try {
    process.exitCode = await run(argv);
  } catch (error) {
    if (error instanceof RegsweepError) {
      const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
      process.stderr.write(`regsweep: ${error.message}${cause}\n`);
      if (debug) process.stderr.write(`${error.stack}\n`);
      process.exitCode = error.exitCode;
      return;
    }
    process.stderr.write(`regsweep: ${(error as Error).message ?? String(error)}\n`);
    if (debug) process.stderr.write(`${(error as Error).stack}\n`);
    process.exitCode = 1;
  }
}
