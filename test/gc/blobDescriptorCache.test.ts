/**
 * Whether a registry keeps blob descriptors in its memory decides whether a
 * run restarts it (a restart refuses requests) or only unpauses it. Each
 * case is checked against what the real registry (2.8.2, and 3.0.0 when
 * present) says at start-up: "using inmemory blob descriptor cache" or not.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { blobDescriptorCache } from '../../src/gc/registryConfig.js';
import { registryBinary } from '../../scripts/registryClient.js';
import { tempDir } from '../support/tmp.js';
import { registryV3Bin } from '../support/registryV3.js';

const V2_BIN = registryBinary();

const withCache = (lines: string): string => `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ROOT\n${lines}http:\n  addr: 127.0.0.1:0\n`;

const CASES: Array<{ what: string; config: string; env: Record<string, string>; expected: 'inmemory' | 'none' }> = [
  { what: 'the image default', config: withCache('  cache:\n    blobdescriptor: inmemory\n'), env: {}, expected: 'inmemory' },
  { what: 'no cache section', config: withCache(''), env: {}, expected: 'none' },
  { what: 'an empty value in the environment', config: withCache('  cache:\n    blobdescriptor: inmemory\n'), env: { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: '' }, expected: 'none' },
  { what: 'an unknown value in the environment', config: withCache('  cache:\n    blobdescriptor: inmemory\n'), env: { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'none' }, expected: 'none' },
  { what: 'an empty cache section in the environment', config: withCache('  cache:\n    blobdescriptor: inmemory\n'), env: { REGISTRY_STORAGE_CACHE: '' }, expected: 'none' },
  { what: 'inmemory set by the environment', config: withCache(''), env: { REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'inmemory' }, expected: 'inmemory' },
  { what: 'the older layerinfo', config: withCache('  cache:\n    layerinfo: inmemory\n'), env: {}, expected: 'inmemory' },
  { what: 'an empty blobdescriptor beside layerinfo', config: withCache('  cache:\n    blobdescriptor: ""\n    layerinfo: inmemory\n'), env: {}, expected: 'none' },
  { what: 'another case', config: withCache('  cache:\n    blobdescriptor: InMemory\n'), env: {}, expected: 'none' },
];

/** Starts the registry, reads its log until it listens, and says whether it set up an in-memory cache. */
async function registrySaysInMemory(bin: string, config: string, env: Record<string, string>): Promise<boolean> {
  const dir = await tempDir('cachecfg');
  const file = path.join(dir, 'config.yml');
  fs.writeFileSync(file, config.replace('ROOT', path.join(dir, 'root')));
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
  const child = spawn(bin, ['serve', file], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => finish(new Error(`no "listening on" within 10 s:\n${log}`)), 10_000);
    const finish = (result: boolean | Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      log += chunk.toString('utf8');
      if (/listening on/.test(log)) finish(/using inmemory blob descriptor cache/.test(log));
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', () => finish(new Error(`the registry exited:\n${log}`)));
  });
}

describe('blobDescriptorCache: in the registry’s memory or not, as the registry decides', () => {
  it.each(CASES)('$what: $expected', ({ config, env, expected }) => {
    expect(blobDescriptorCache(config, env) === 'inmemory' ? 'inmemory' : 'none').toBe(expected);
  });

  it('names redis, and throws on a config that is not YAML (the window then restarts)', () => {
    expect(blobDescriptorCache(withCache('  cache:\n    blobdescriptor: redis\n'), {})).toBe('redis');
    expect(() => blobDescriptorCache('storage: [', {})).toThrow();
  });

  for (const [version, bin] of [['2.8.2', V2_BIN], ['3.0.0', registryV3Bin]] as const) {
    it.skipIf(!bin)(`every case agrees with the real registry ${version}`, async () => {
      for (const { what, config, env, expected } of CASES) {
        expect(await registrySaysInMemory(bin as string, config, env), what).toBe(expected === 'inmemory');
      }
    }, 60_000);
  }
});
