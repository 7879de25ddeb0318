/**
 * Renders the diagrams in docs/diagrams/*.dot to docs/images/<name>.svg with
 * Graphviz (compiled to WebAssembly, pinned in package.json, so every machine
 * draws the same bytes).
 *
 *   npm run docs:diagrams            # write the SVGs
 *   npm run docs:diagrams -- --check # exit 1 when a committed SVG is stale
 */
import { Graphviz } from '@hpcc-js/wasm-graphviz';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

export const DIAGRAM_SOURCES = path.resolve(import.meta.dirname, '../docs/diagrams');
export const DIAGRAM_IMAGES = path.resolve(import.meta.dirname, '../docs/images');

export interface Diagram {
  source: string;
  image: string;
}

/** Every diagram source and the image it renders to. */
export function diagrams(): Diagram[] {
  return fs
    .readdirSync(DIAGRAM_SOURCES)
    .filter((f) => f.endsWith('.dot'))
    .sort()
    .map((f) => ({
      source: path.join(DIAGRAM_SOURCES, f),
      image: path.join(DIAGRAM_IMAGES, `${path.basename(f, '.dot')}.svg`),
    }));
}

/** The SVG of one DOT source; a syntax error throws with Graphviz's message. */
export async function renderDot(dot: string): Promise<string> {
  const graphviz = await Graphviz.load();
  return graphviz.dot(dot, 'svg');
}

/** The diagrams whose committed image differs from what their source renders to. */
export async function staleDiagrams(): Promise<Diagram[]> {
  const stale: Diagram[] = [];
  for (const d of diagrams()) {
    const svg = await renderDot(fs.readFileSync(d.source, 'utf8'));
    const committed = fs.existsSync(d.image) ? fs.readFileSync(d.image, 'utf8') : undefined;
    if (committed !== svg) stale.push(d);
  }
  return stale;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { check: { type: 'boolean', default: false } } });
  if (values.check) {
    const stale = await staleDiagrams();
    for (const d of stale) {
      console.error(`${path.relative(process.cwd(), d.image)} is stale: run npm run docs:diagrams`);
    }
    process.exitCode = stale.length ? 1 : 0;
    return;
  }
  fs.mkdirSync(DIAGRAM_IMAGES, { recursive: true });
  for (const d of diagrams()) {
    fs.writeFileSync(d.image, await renderDot(fs.readFileSync(d.source, 'utf8')));
    console.log(
      `${path.relative(process.cwd(), d.source)} → ${path.relative(process.cwd(), d.image)}`,
    );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
