/**
 * `npm run bench:outage`: what a real run costs the clients of a registry
 * container. Four clients pull the kept tags whole in a loop (scripts/pullLoad.ts)
 * while `regsweep NAME --yes` purges it; each case counts the requests that
 * failed and the slowest one, against `--unpause-only` (the pause alone)
 * measured in the same run, the cases interleaved round by round.
 *
 *   restart        the image's config (inmemory blob descriptor cache): restarted while paused
 *   restart, gc    the same with --gc registry (garbage-collect in a helper container)
 *   no cache       REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR= (no cache): only unpaused
 *   unpause-only   the image's config with --unpause-only: the baseline
 *
 * Needs DOCKER_HOST naming a private engine with the stand-in `registry:2`
 * (scripts/docker-test-env.sh); its containers run on the host network on loopback.
 *
 *   npm run bench:outage -- [--rounds 3] [--markdown BENCHMARKS.md]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { type LoadResult, type PullTarget, startPullLoad } from './pullLoad.js';
import { RegistryClient, pushImage } from './registryClient.js';
import { freePort } from './ports.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.resolve(here, '../../bin/regsweep.js');
const LABEL = 'io.regsweep.bench-outage';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Case {
  name: string;
  env: string[];
  args: string[];
}

const CASES: Case[] = [
  { name: 'unpause-only', env: [], args: ['--unpause-only'] },
  { name: 'no cache', env: ['REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR='], args: [] },
  { name: 'restart', env: [], args: [] },
  { name: 'restart, --gc registry', env: [], args: ['--gc', 'registry'] },
];


async function serving(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status === 200, () => false);
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`registry on port ${port} did not answer within ${timeoutMs} ms`);
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Six repositories, each tag pushed twice: the first images become untagged revisions the run purges. */
async function pushScenario(client: RegistryClient): Promise<PullTarget[]> {
  const targets: PullTarget[] = [];
  for (let r = 0; r < 6; r += 1) {
    const repository = `team/app${r}`;
    await pushImage(client, repository, { tag: 'latest', seed: `${repository}-old`, layers: 3 });
    await pushImage(client, repository, { tag: 'latest', seed: `${repository}-new`, layers: 3 });
    targets.push({ repository, reference: 'latest' });
  }
  return targets;
}

interface Measured extends LoadResult {
  case: string;
  runMs: number;
  windowMs: number;
}

async function measure(docker: Docker, c: Case): Promise<Measured> {
  const port = await freePort();
  const name = `regsweep-outage-${port}`;
  const container = await docker.createContainer({
    name,
    Image: 'registry:2',
    Env: [`REGISTRY_HTTP_ADDR=127.0.0.1:${port}`, 'REGISTRY_STORAGE_DELETE_ENABLED=true', ...c.env],
    Labels: { [LABEL]: '1' },
    HostConfig: { NetworkMode: 'host', Binds: [`${name}:/var/lib/registry`] },
  });
  try {
    await container.start();
    await serving(port, 30_000);
    const targets = await pushScenario(new RegistryClient(`http://127.0.0.1:${port}`));
    const load = startPullLoad(`http://127.0.0.1:${port}`, targets, { clients: 4 });
    await sleep(1000);
    const started = Date.now();
    const run = await runCli([name, '--yes', '--json', '--grace', '0s', ...c.args]);
    const runMs = Date.now() - started;
    await sleep(1000);
    const result = await load.stop();
    if (run.code !== 0) throw new Error(`${c.name}: regsweep exited ${run.code}: ${run.stderr}`);
    const report = JSON.parse(run.stdout) as { windowMs: number };
    return { case: c.name, runMs, windowMs: report.windowMs, ...result };
  } finally {
    await container.remove({ force: true, v: true }).catch(() => {});
    await docker.getVolume(name).remove().catch(() => {});
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

function render(all: Measured[], rounds: number): string {
  const base = all.filter((m) => m.case === 'unpause-only');
  const baseSlowest = median(base.map((m) => m.slowestMs));
  const lines = [
    `Four clients pulling 6 kept tags whole in a loop while \`regsweep NAME --yes --grace 0s\` purges a \`registry:2\` (2.8.2) container; ${rounds} rounds, cases interleaved, medians. After a failed request a client waits 20 ms before its next pull.`,
    '',
    '| case | requests | failed | failed share | failing for | slowest request | slowest vs unpause-only | window | failures by reason (all rounds) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const c of CASES) {
    const ms = all.filter((m) => m.case === c.name);
    const reasons: Record<string, number> = {};
    for (const m of ms) for (const [k, v] of Object.entries(m.reasons)) reasons[k] = (reasons[k] ?? 0) + v;
    const failed = median(ms.map((m) => m.failed));
    const requests = median(ms.map((m) => m.requests));
    const slowest = median(ms.map((m) => m.slowestMs));
    const share = `${((100 * ms.reduce((a, m) => a + m.failed, 0)) / ms.reduce((a, m) => a + m.requests, 0)).toFixed(1)}%`;
    const reasonText = Object.entries(reasons).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
    lines.push(`| ${c.name} | ${requests} | ${failed} | ${share} | ${(median(ms.map((m) => m.failingMs)) / 1000).toFixed(2)} s | ${(slowest / 1000).toFixed(2)} s | ${(slowest / baseSlowest).toFixed(2)}x | ${(median(ms.map((m) => m.windowMs)) / 1000).toFixed(2)} s | ${reasonText} |`);
  }
  lines.push('', `Failed per round: ${CASES.map((c) => `${c.name} ${all.filter((m) => m.case === c.name).map((m) => `${m.failed}/${m.requests}`).join(', ')}`).join('; ')}.`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string' }, markdown: { type: 'string' } } });
  const rounds = Number(values.rounds ?? 3);
  if (!process.env.DOCKER_HOST) throw new Error('set DOCKER_HOST to a private engine (scripts/docker-test-env.sh start DIR)');
  const docker = new Docker();
  const all: Measured[] = [];
  for (let round = 1; round <= rounds; round += 1) {
    for (const c of CASES) {
      const m = await measure(docker, c);
      process.stderr.write(`round ${round} ${c.name}: ${m.failed}/${m.requests} failed, slowest ${m.slowestMs} ms, failing for ${m.failingMs} ms, window ${m.windowMs} ms\n`);
      all.push(m);
    }
  }
  const text = render(all, rounds);
  process.stdout.write(`${text}\n`);
  if (values.markdown) fs.writeFileSync(values.markdown, `${text}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`outage: ${(error as Error).message}\n`);
  process.exit(1);
});
