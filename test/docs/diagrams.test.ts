/**
 * The diagrams in docs/images are what their sources in docs/diagrams render
 * to, so the picture a newcomer reads is the one the repository describes.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { diagrams, renderDot, staleDiagrams } from '../../scripts/render-diagrams.ts';

describe('docs diagrams', () => {
  it('has a committed, current SVG for every DOT source', async () => {
    const all = diagrams();
    expect(all.map((d) => d.source)).toContainEqual(expect.stringMatching(/order-path\.dot$/));
    expect(await staleDiagrams()).toEqual([]);
  });

  it('names every process an order passes through in the order-path diagram', () => {
    const svg = fs.readFileSync(diagrams().find((d) => /order-path/.test(d.image))!.image, 'utf8');
    for (const label of [
      'API',
      'outbox relay',
      'Temporal',
      'orders worker',
      'email worker',
      'webhooks worker',
      'events worker',
      'orders.placed',
      'analytics',
      'inventory',
    ]) {
      expect(svg).toContain(label);
    }
  });

  it('fails on a source Graphviz cannot parse', async () => {
    await expect(renderDot('digraph { a -> }')).rejects.toThrow();
  });
});
