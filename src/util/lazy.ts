/**
 * Packages loaded on first use. Every run starts a process, and most runs
 * need neither: semver only for version patterns in retention rules, js-yaml
 * only to read a policy or registry config or to write a garbage-collect
 * config; fast-glob only after a real run. Loaded eagerly they were about
 * 40 ms of each run's start-up.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

let semverModule: typeof import('semver') | undefined;
let yamlModule: typeof import('js-yaml') | undefined;
let fastGlobModule: typeof import('fast-glob') | undefined;

export function semver(): typeof import('semver') {
  semverModule ??= require('semver') as typeof import('semver');
  return semverModule;
}

export function yaml(): typeof import('js-yaml') {
  yamlModule ??= require('js-yaml') as typeof import('js-yaml');
  return yamlModule;
}

export function fastGlob(): typeof import('fast-glob') {
  fastGlobModule ??= require('fast-glob') as typeof import('fast-glob');
  return fastGlobModule;
}
