/**
 * `bin/regsweep.js` starts node with a young generation of 2 MiB, which keeps
 * a real run on a million revisions under 256 MiB (BENCHMARKS.md). V8 takes
 * the flag only at start-up, so the bin's first lines (sh, then node) pass it;
 * the Docker image's ENTRYPOINT passes the same, and the bench measures with
 * the flags read from the bin.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { binNodeFlags } from '../../scripts/benchRuns.js';
import { BIN } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const PROJECT = path.resolve(path.dirname(BIN), '..');

describe('bin/regsweep.js', () => {
  it('run as a program, starts node with its flags and passes every argument through as given', async () => {
    // A copy of the bin beside a main that reports how node was started.
    const dir = await tempDir();
    await fs.mkdir(path.join(dir, 'bin'));
    await fs.mkdir(path.join(dir, 'dist/src/cli'), { recursive: true });
    await fs.writeFile(path.join(dir, 'package.json'), '{"type":"module"}');
    await fs.copyFile(BIN, path.join(dir, 'bin/regsweep.js'));
    await fs.chmod(path.join(dir, 'bin/regsweep.js'), 0o755);
    await fs.writeFile(
      path.join(dir, 'dist/src/cli/main.js'),
      'export async function main(argv) { process.stdout.write(JSON.stringify({ execArgv: process.execArgv, args: argv.slice(2) })); }\n',
    );
    // Also through a symlink, as npm installs it.
    await fs.symlink(path.join(dir, 'bin/regsweep.js'), path.join(dir, 'regsweep'));

    for (const program of [path.join(dir, 'bin/regsweep.js'), path.join(dir, 'regsweep')]) {
      const { stdout } = await run(program, ['--path', '/a dir/with "quotes"', '', '$HOME']);
      expect(JSON.parse(stdout)).toEqual({ execArgv: binNodeFlags(), args: ['--path', '/a dir/with "quotes"', '', '$HOME'] });
    }
    expect(binNodeFlags()).toContainEqual(expect.stringMatching(/^--max-semi-space-size=\d+$/));
  });

  it('the real bin runs as a program', async () => {
    const { stdout } = await run(BIN, ['--version']);
    const pkg = JSON.parse(await fs.readFile(path.join(PROJECT, 'package.json'), 'utf8')) as { version: string };
    expect(stdout.trim()).toBe(pkg.version);
  });

  it("the Docker image's ENTRYPOINT starts node with the same flags", async () => {
    const dockerfile = await fs.readFile(path.join(PROJECT, 'Dockerfile'), 'utf8');
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
    expect(JSON.parse(entrypoint ?? 'null')).toEqual(['node', ...binNodeFlags(), '/app/bin/regsweep.js']);
  });

  it('a bin without the exec line is an error, not a bench run without the flags', () => {
    expect(() => binNodeFlags('#!/usr/bin/env node\nawait main();\n')).toThrow(/no `exec node/);
  });
});
