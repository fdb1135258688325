/**
 * Retention rules: which tags a repository loses, and how much of each kept
 * tag's history stays. Rules come from the command line or, per repository
 * glob, from a policy file; everything is validated before anything runs.
 */
import fs from 'node:fs/promises';
import picomatch from 'picomatch';
import { UsageError } from '../errors.js';
import type { TagState } from '../model.js';
import { errnoText } from '../util/errno.js';
import { isRepositoryName } from '../storage/layout.js';
import { semver, yaml } from '../util/lazy.js';

/** Matches tags by a whole-tag regular expression or, when it parses as one, a semver range. */
export interface TagPattern {
  source: string;
  test(tag: string): boolean;
}

export interface Rules {
  /** Keep the N most recently pushed tags. */
  keep?: number;
  /** Tags pushed longer ago than this many milliseconds are candidates. */
  olderThanMs?: number;
  olderThan?: string;
  /** Only matching tags are candidates. */
  tags?: TagPattern;
  /** Matching tags are never removed (default ^latest$). */
  keepTags: TagPattern;
  /** Earlier revisions of each kept tag to keep. */
  history: number;
  /** Tags not pulled (nor pushed) for this many milliseconds are candidates (`--unpulled-for`). */
  unpulledForMs?: number;
  unpulledFor?: string;
  /** Tags pulled (or pushed) within this many milliseconds stay (`--keep-pulled-within`). */
  keepPulledWithinMs?: number;
  keepPulledWithin?: string;
}

/** When a tag was last used, as the pull index knows it: its last pull or its push, whichever is later. */
export type LastUse = (tag: TagState) => { pulled?: number; used: number };

export const DEFAULT_KEEP_TAGS = '^latest$';

// A version-like tag: 1, 1.2, 1.2.3, with an optional v and pre-release/build suffix.
const VERSION_TAG = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?((?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)$/;

/** The semver version a tag names, or undefined when it is not a version (`latest`, `1.2-alpine` is 1.2.0-alpine). */
export function tagVersion(tag: string): string | undefined {
  const m = VERSION_TAG.exec(tag);
  if (!m) return undefined;
  const version = `${m[1]}.${m[2] ?? '0'}.${m[3] ?? '0'}${m[4] ?? ''}`;
  return semver().valid(version) ?? undefined;
}

export function parseTagPattern(source: string, what = 'pattern'): TagPattern {
  // Only these characters make up a semver range: a pattern with any other (`^latest$`, the default) is a
  // regular expression, and semver need not even load to say so.
  const range = /[^0-9A-Za-z.+\-<>=^~|*\s]/.test(source) ? null : semver().validRange(source);
  if (range !== null && source.trim() !== '') {
    return {
      source,
      test: (tag) => {
        const version = tagVersion(tag);
        return version !== undefined && semver().satisfies(version, range, { includePrerelease: true });
      },
    };
  }
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${source})$`);
  } catch (error) {
    throw new UsageError(`${what} ${JSON.stringify(source)} is neither a semver range nor a regular expression: ${(error as Error).message}`);
  }
  return { source, test: (tag) => re.test(tag) };
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export function parseDuration(text: string): number {
  const m = /^(\d+)([smhdw])$/.exec(text.trim());
  if (!m) throw new UsageError(`invalid duration ${JSON.stringify(text)}: use a number and s, m, h, d or w (12h, 30d, 8w)`);
  return Number(m[1]) * (UNITS[m[2] as string] as number);
}

function wholeNumber(value: unknown, what: string): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new UsageError(`${what} must be a whole number, not ${JSON.stringify(value)}`);
  return n;
}

export interface RuleInput {
  keep?: unknown;
  olderThan?: unknown;
  tags?: unknown;
  keepTags?: unknown;
  history?: unknown;
  unpulledFor?: unknown;
  keepPulledWithin?: unknown;
}

export function makeRules(input: RuleInput): Rules {
  const str = (value: unknown, what: string): string => {
    if (typeof value !== 'string' && typeof value !== 'number') throw new UsageError(`${what} must be a string`);
    return String(value);
  };
  const olderThan = input.olderThan === undefined ? undefined : str(input.olderThan, 'olderThan');
  const unpulledFor = input.unpulledFor === undefined ? undefined : str(input.unpulledFor, 'unpulledFor');
  const keepPulledWithin = input.keepPulledWithin === undefined ? undefined : str(input.keepPulledWithin, 'keepPulledWithin');
  return {
    ...(input.keep === undefined ? {} : { keep: wholeNumber(input.keep, 'keep') }),
    ...(olderThan === undefined ? {} : { olderThan, olderThanMs: parseDuration(olderThan) }),
    ...(unpulledFor === undefined ? {} : { unpulledFor, unpulledForMs: parseDuration(unpulledFor) }),
    ...(keepPulledWithin === undefined ? {} : { keepPulledWithin, keepPulledWithinMs: parseDuration(keepPulledWithin) }),
    ...(input.tags === undefined ? {} : { tags: parseTagPattern(str(input.tags, 'tags'), 'tags') }),
    keepTags: parseTagPattern(input.keepTags === undefined ? DEFAULT_KEEP_TAGS : str(input.keepTags, 'keepTags'), 'keepTags'),
    history: input.history === undefined ? 0 : wholeNumber(input.history, 'history'),
  };
}

/** Do these rules select any tag at all? Without keep, olderThan, tags or unpulledFor, no tag is removed by rule. */
export function selectsTags(rules: Rules): boolean {
  return rules.keep !== undefined || rules.olderThanMs !== undefined || rules.tags !== undefined || rules.unpulledForMs !== undefined;
}

/** The longest time the rules ask the pull index about (0: they ask nothing of it). */
export function pullWindowMs(rules: Rules): number {
  return Math.max(rules.unpulledForMs ?? 0, rules.keepPulledWithinMs ?? 0);
}

function describeUse(use: { pulled?: number; used: number }): string {
  if (use.pulled === undefined) return `never pulled, pushed ${new Date(use.used).toISOString()}`;
  return use.pulled >= use.used ? `last pulled ${new Date(use.pulled).toISOString()}` : `last pulled ${new Date(use.pulled).toISOString()}, pushed ${new Date(use.used).toISOString()}`;
}

function describeRules(rules: Rules, parts: { keep?: number; olderThan?: boolean; tags?: boolean; unpulled?: { pulled?: number; used: number } }): string {
  const words: string[] = [];
  if (parts.keep !== undefined) words.push(`not among the ${rules.keep} most recent (number ${parts.keep})`);
  if (parts.olderThan) words.push(`pushed more than ${rules.olderThan} ago`);
  if (parts.tags) words.push(`matches ${rules.tags?.source}`);
  if (parts.unpulled) words.push(`not pulled for ${rules.unpulledFor} (${describeUse(parts.unpulled)})`);
  return words.join(', ');
}

/**
 * The ordinary tags the rules remove, each with the words that say why.
 * `lastUse` answers for the pull rules; without it (the pull index cannot
 * judge them) rules that ask about pulls select nothing.
 */
export function tagsSelectedByRules(tags: readonly TagState[], rules: Rules, now: number, lastUse?: LastUse): Map<string, string> {
  const selected = new Map<string, string>();
  if (!selectsTags(rules) || (pullWindowMs(rules) > 0 && !lastUse)) return selected;
  // Protected tags are never candidates and do not count toward keep N.
  const candidates = tags
    .filter((t) => !rules.keepTags.test(t.name))
    .sort((a, b) => (b.pushedMs ?? 0) - (a.pushedMs ?? 0) || (a.name < b.name ? -1 : 1));
  candidates.forEach((tag, rank) => {
    const use = lastUse?.(tag);
    const byKeep = rules.keep === undefined || rank >= rules.keep;
    const byAge = rules.olderThanMs === undefined || (tag.pushedMs ?? now) < now - rules.olderThanMs;
    const byName = rules.tags === undefined || rules.tags.test(tag.name);
    const byPull = rules.unpulledForMs === undefined || (use !== undefined && use.used < now - rules.unpulledForMs);
    const keptByPull = rules.keepPulledWithinMs !== undefined && (use === undefined || use.used >= now - rules.keepPulledWithinMs);
    if (byKeep && byAge && byName && byPull && !keptByPull) {
      const parts = { keep: rules.keep === undefined ? undefined : rank + 1, olderThan: rules.olderThanMs !== undefined, tags: rules.tags !== undefined };
      selected.set(tag.name, describeRules(rules, { ...parts, ...(rules.unpulledForMs !== undefined ? { unpulled: use } : {}) }));
    }
  });
  return selected;
}

/**
 * A repository glob (picomatch): `*` within one name component, `**` as a
 * whole component across any number of them (none too), `?` one character.
 * With strict slashes, `team/**` matches below `team`, not `team` itself.
 */
export function repositoryGlob(glob: string): (repository: string) => boolean {
  return picomatch(glob, { strictSlashes: true });
}

interface PolicyRule {
  repositories: string;
  match: (repository: string) => boolean;
  rules: Rules;
  line: number;
}

export interface Policy {
  rules: PolicyRule[];
  fallback: Rules;
}

export function rulesFor(policy: Policy, repository: string): Rules {
  return policy.rules.find((r) => r.match(repository))?.rules ?? policy.fallback;
}

const RULE_FIELDS = new Set(['repositories', 'keep', 'olderThan', 'tags', 'keepTags', 'history', 'unpulledFor', 'keepPulledWithin']);

/** Parses a YAML policy (`rules:` list) or the simple `<repository> <N>` line format. */
export function parsePolicy(text: string, file: string, fallback: Rules): Policy {
  const simple = parseSimplePolicy(text, file, fallback);
  if (simple) return simple;
  // js-yaml reports where each node opens; mapping nodes are recorded so a bad rule can be named by its line.
  const lines = new WeakMap<object, number>();
  const opened: number[] = [];
  let doc: unknown;
  try {
    doc = yaml().load(text, {
      filename: file,
      listener(event, state) {
        if (event === 'open') opened.push(state.line + 1);
        else {
          const line = opened.pop() ?? 0;
          if (state.result && typeof state.result === 'object' && !lines.has(state.result)) lines.set(state.result, line);
        }
      },
    });
  } catch (error) {
    const mark = (error as { mark?: { line: number } }).mark;
    throw new UsageError(`${file}:${(mark?.line ?? 0) + 1}: not valid YAML: ${(error as { reason?: string }).reason ?? (error as Error).message}`);
  }
  const list = Array.isArray(doc) ? doc : (doc as { rules?: unknown } | null)?.rules;
  if (!Array.isArray(list)) throw new UsageError(`${file}:1: a policy is a list of rules (or a 'rules:' list) or '<repository> <N>' lines`);
  const rules = list.map((item: unknown, i): PolicyRule => {
    const line: number = (item && typeof item === 'object' ? lines.get(item) : undefined) ?? 1;
    const where = `${file}:${line}`;
    if (!item || typeof item !== 'object' || Array.isArray(item)) throw new UsageError(`${where}: rule ${i + 1} is not a mapping`);
    const r = item as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (!RULE_FIELDS.has(key)) throw new UsageError(`${where}: unknown field ${JSON.stringify(key)} (fields: ${[...RULE_FIELDS].join(', ')})`);
    }
    if (typeof r.repositories !== 'string' || r.repositories === '') throw new UsageError(`${where}: rule ${i + 1} needs 'repositories', a repository glob`);
    try {
      return { repositories: r.repositories, match: repositoryGlob(r.repositories), rules: makeRules(r), line };
    } catch (error) {
      if (error instanceof UsageError) throw new UsageError(`${where}: ${error.message}`);
      throw error;
    }
  });
  return { rules, fallback };
}

/** `<repository> <N>` per line (`#` comments allowed): keep the N most recent tags. */
function parseSimplePolicy(text: string, file: string, fallback: Rules): Policy | undefined {
  const lines = text.split('\n');
  const meaningful = lines.map((l, i) => ({ text: l.replace(/#.*$/, '').trim(), line: i + 1 })).filter((l) => l.text !== '');
  if (meaningful.length === 0 || !meaningful.every((l) => /^\S+\s+\S+$/.test(l.text) && !l.text.includes(':'))) return undefined;
  const rules = meaningful.map(({ text: t, line }): PolicyRule => {
    const [repository, n] = t.split(/\s+/) as [string, string];
    const where = `${file}:${line}`;
    if (!isRepositoryName(repository.replace(/\*+|\?/g, 'x'))) throw new UsageError(`${where}: invalid repository ${JSON.stringify(repository)}`);
    if (!/^\d+$/.test(n)) throw new UsageError(`${where}: ${JSON.stringify(n)} is not a whole number of tags to keep`);
    return { repositories: repository, match: repositoryGlob(repository), rules: { ...fallback, keep: Number(n) }, line };
  });
  return { rules, fallback };
}

export async function loadPolicy(file: string, fallback: Rules): Promise<Policy> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read policy ${file}: ${errnoText(error)}`);
  }
  return parsePolicy(text, file, fallback);
}
