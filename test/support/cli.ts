import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/regsweep.js');

export interface CliRun {
  code: number | null;
  /** The signal that ended it, if one did. */
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built CLI as a user would, stdin a pipe (not a terminal) unless
 * `input` says otherwise; `wrap` runs it under another command (`faketime -f +2h`).
 */
export function runCli(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; wrap?: string[] } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const [command, ...before] = [...(options.wrap ?? []), process.execPath];
    const child = spawn(command as string, [...before, BIN, ...args], { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, stdout, stderr, ...(signal ? { signal } : {}) }));
    child.stdin.end(options.input ?? '');
  });
}
