/**
 * The shape of src/, checked on every test run: imports point one way (no
 * cycle, type imports included; no folder imports a folder above it), no
 * function runs past 80 lines, and the top of src/ stays a short list. Read
 * with the TypeScript compiler's own parser, so every import form counts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');

/**
 * Each part of src/ and the rank it sits at: a module may import its own
 * folder and folders of a lower rank, never one of its own rank or above.
 * storage/ and gc/ know nothing of each other; apply/ and docker/ neither.
 * run/ holds what a run does on each storage (RunStorage of sweep.ts).
 */
const RANKS: Record<string, number> = {
  'model.ts': 0,
  'errors.ts': 0,
  util: 1,
  storage: 2,
  gc: 2,
  plan: 3,
  apply: 4,
  docker: 4,
  'sweep.ts': 5,
  'exclusiveRun.ts': 5,
  run: 5.5,
  cli: 6,
};

const MAX_FUNCTION_LINES = 80;
const MAX_TOP_LEVEL_FILES = 6;

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f));
}

function parse(file: string): ts.SourceFile {
  return ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
}

/** Every relative module a file imports or re-exports, statically or with import(), as a path under src/. */
function importsOf(source: ts.SourceFile): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    let specifier: ts.Expression | undefined;
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) specifier = node.moduleSpecifier;
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) specifier = node.arguments[0];
    if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) specifier = node.argument.literal;
    if (specifier && ts.isStringLiteral(specifier) && specifier.text.startsWith('.')) {
      found.push(path.resolve(path.dirname(source.fileName), specifier.text).replace(/\.js$/, '.ts'));
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The cycles of a directed graph, each as the list of its nodes (one per strongly connected component). */
export function cyclesOf(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v) as number);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    for (let w = stack.pop(); w !== undefined; w = w === v ? undefined : stack.pop()) {
      onStack.delete(w);
      component.push(w);
    }
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) connect(v);
  return cycles;
}

/** The part of src/ a file belongs to: its folder, or its own name at the top. */
function partOf(file: string): string {
  return path.relative(SRC, file).split(path.sep)[0] as string;
}

/** The storage backend a file is or imports: `fs`, `s3`, or undefined for the shared part of storage/ and everything else. */
function backendOf(file: string): string | undefined {
  const [top, backend] = path.relative(SRC, file).split(path.sep);
  return top === 'storage' && (backend === 'fs' || backend === 's3') ? backend : undefined;
}

/**
 * The modules outside storage/ that import a backend, and which. run/ is
 * where a run's work on each storage lives (the sweep reaches it through
 * RunStorage only), cli/ picks the storage, exclusiveRun.ts its lock; apply/
 * carries a plan out on one storage or the other. The list may only shrink.
 */
const KNOW_A_BACKEND: Record<string, string[]> = {
  'apply/apply.ts': ['fs'],
  'apply/blobSweep.ts': ['fs'],
  'apply/bucketApply.ts': ['s3'],
  'apply/trash.ts': ['fs'],
  'cli/main.ts': ['fs'],
  'cli/runtime.ts': ['s3'],
  'docker/locator.ts': ['s3'],
  'docker/recovery.ts': ['fs'],
  'docker/watchdogMain.ts': ['fs'],
  'exclusiveRun.ts': ['fs', 's3'],
  'run/bucket.ts': ['s3'],
  'run/filesystem.ts': ['fs'],
};

/** Functions, methods and arrow functions longer than `max` lines, as `file:line name (N lines)`. */
function longFunctions(source: ts.SourceFile, max: number): string[] {
  const long: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = last - first + 1;
      const name = node.name && ts.isIdentifier(node.name) ? node.name.text : '(anonymous)';
      if (lines > max) long.push(`${path.relative(SRC, source.fileName)}:${first + 1} ${name} (${lines} lines)`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return long;
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((f) => [f, importsOf(parse(f))]));

describe('the architecture of src/', () => {
  it('finds cycles, so the check below can fail', () => {
    const example = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a', 'd']],
      ['e', ['a']],
    ]);
    expect(cyclesOf(example)).toEqual([['a', 'b', 'c'], ['d']]);
    expect(cyclesOf(new Map([['a', ['b']], ['b', []]]))).toEqual([]);
  });

  it('has no import cycle, type imports included', () => {
    expect(graph.size).toBeGreaterThan(20);
    const named = cyclesOf(graph).map((cycle) => cycle.map((f) => path.relative(SRC, f)));
    expect(named).toEqual([]);
  });

  it('imports only its own folder and the folders below it', () => {
    const wrong: string[] = [];
    for (const [file, imports] of graph) {
      const from = partOf(file);
      expect(RANKS[from], `${from} has no rank in this test`).toBeDefined();
      for (const target of imports) {
        const to = partOf(target);
        if (to !== from && !((RANKS[to] ?? Infinity) < (RANKS[from] as number))) wrong.push(`${path.relative(SRC, file)} imports ${path.relative(SRC, target)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('keeps the storage backends apart: the shared part of storage/ imports neither, and neither imports the other', () => {
    const wrong: string[] = [];
    for (const [file, imports] of graph) {
      if (partOf(file) !== 'storage') continue;
      const from = backendOf(file);
      for (const target of imports) {
        const to = backendOf(target);
        if (to !== undefined && to !== from) wrong.push(`${path.relative(SRC, file)} imports ${path.relative(SRC, target)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('lets no sweep, planner, usage report or window know which backend is below, and no new module outside storage/ either', () => {
    const knowing: Record<string, string[]> = {};
    for (const [file, imports] of graph) {
      if (partOf(file) === 'storage') continue;
      const backends = [...new Set(imports.map(backendOf).filter((b): b is string => b !== undefined))].sort();
      if (backends.length > 0) knowing[path.relative(SRC, file)] = backends;
    }
    expect(Object.keys(knowing).filter((f) => f === 'sweep.ts' || f.startsWith('plan/') || f === 'cli/usage.ts' || f === 'docker/maintenanceWindow.ts')).toEqual([]);
    const allowed = Object.fromEntries(Object.entries(KNOW_A_BACKEND).filter(([, b]) => b.length > 0));
    expect(knowing).toEqual(allowed);
  });

  it('keeps the model free of regsweep imports', () => {
    expect(graph.get(path.join(SRC, 'model.ts'))).toEqual([]);
    expect(graph.get(path.join(SRC, 'errors.ts'))).toEqual([]);
  });

  it(`has no function longer than ${MAX_FUNCTION_LINES} lines`, () => {
    expect(files.flatMap((f) => longFunctions(parse(f), MAX_FUNCTION_LINES))).toEqual([]);
  });

  it(`keeps at most ${MAX_TOP_LEVEL_FILES} files at the top of src/`, () => {
    const top = fs.readdirSync(SRC).filter((f) => f.endsWith('.ts'));
    expect(top.length).toBeLessThanOrEqual(MAX_TOP_LEVEL_FILES);
  });
});
