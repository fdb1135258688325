import { spawn } from 'node:child_process';
import fs from 'node:fs';
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

export interface CliProcess {
  pid: number;
  /** Resolves when the process has exited and its output is complete. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; endedAt: number }>;
  kill(signal: NodeJS.Signals): void;
}

/** Starts the built CLI as a user would (stdin closed, not a terminal), without waiting for it. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const done = new Promise<Awaited<CliProcess['done']>>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, endedAt: Date.now() }));
  });
  return { pid: child.pid as number, done, kill: (signal) => child.kill(signal) };
}

/** Until `file` exists: the hold file of a run held at a failpoint (REGSWEEP_HOLD_AT=NAME:FILE, util/failpoint.ts). */
export async function waitForFile(file: string, timeoutMs: number): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !fs.existsSync(file); ) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
