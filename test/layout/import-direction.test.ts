/**
 * Imports go one way: test/ and bench/ may use scripts/ (shared code lives in
 * scripts/lib), bench/ may not use test/, and scripts/ uses neither. A file
 * that breaks this is named with the import.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

/** Folders each top-level folder must not import from. */
const FORBIDDEN: Record<string, string[]> = {
  scripts: ['test', 'bench'],
  bench: ['test'],
};

const SOURCE = /\.(?:ts|mts|cts|js|mjs|cjs)$/;

/**
 * Module specifiers a file names: static and dynamic imports, re-exports,
 * require() and `new URL('…', import.meta.url)` (how a workflow bundle or a
 * child process is pointed at a file).
 */
function specifiers(text: string): string[] {
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\bnew\s+URL\s*\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g,
  ];
  return patterns.flatMap((p) => [...text.matchAll(p)].map((m) => m[1]!));
}

/** "file: specifier" for every relative import of `file` (relative to root) into a forbidden folder. */
function forbiddenImports(file: string, text: string): string[] {
  const top = file.split('/')[0]!;
  const banned = FORBIDDEN[top] ?? [];
  return specifiers(text)
    .filter((s) => s.startsWith('.'))
    .filter((s) => {
      const target = path.relative(root, path.resolve(root, path.dirname(file), s));
      return banned.some((b) => target === b || target.startsWith(`${b}/`));
    })
    .map((s) => `${file}: ${s}`);
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && rel !== 'bench/results') out.push(...sourceFiles(rel));
    } else if (SOURCE.test(entry.name)) out.push(rel);
  }
  return out;
}

describe('import direction between scripts/, bench/ and test/', () => {
  it('finds an import into test/ or bench/ wherever it is written', () => {
    const text = [
      "import { a } from '../test/support/x.ts';",
      "import type { B } from '../../test/e2e/y.ts';",
      "export { c } from '../bench/lib/z.ts';",
      "const d = await import('../test/d.ts');",
      "const w = new URL('../../test/smoke/w.ts', import.meta.url);",
      "import { ok } from './lib/tools.ts';",
      "import { src } from '../src/shared/events.ts';",
    ].join('\n');
    expect(forbiddenImports('scripts/record.ts', text)).toEqual([
      'scripts/record.ts: ../test/support/x.ts',
      'scripts/record.ts: ../bench/lib/z.ts',
      'scripts/record.ts: ../test/d.ts',
    ]);
    expect(forbiddenImports('bench/parts/p.ts', text)).toEqual([
      'bench/parts/p.ts: ../../test/e2e/y.ts',
      'bench/parts/p.ts: ../../test/smoke/w.ts',
    ]);
    // test/ may import both.
    expect(forbiddenImports('test/e2e/t.test.ts', text)).toEqual([]);
  });

  it('scripts/ imports nothing from test/ or bench/, and bench/ nothing from test/', () => {
    const files = [...sourceFiles('scripts'), ...sourceFiles('bench')];
    expect(files.length).toBeGreaterThan(20);
    const found = files.flatMap((f) =>
      forbiddenImports(f, fs.readFileSync(path.join(root, f), 'utf8')),
    );
    expect(found).toEqual([]);
  });
});
