/**
 * The Dockerfile says what test/e2e/compiled.test.ts runs (no Docker engine
 * builds it here): the Node that setup pins, `npm run build` in the build
 * stage, production dependencies and dist/ only in the runtime stage, a
 * non-root user, a HEALTHCHECK, compiled entries without tsx.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_RUNTIMES } from '../../scripts/provision-node.mjs';

const root = path.resolve(import.meta.dirname, '..', '..');
const text = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, '');
const lines = text
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

/** The instructions of each stage, by stage name (the last, unnamed one is "runtime"). */
const stages = new Map<string, string[]>();
let current: string[] = [];
for (const line of lines) {
  const from = /^FROM (\S+)(?: AS (\S+))?$/i.exec(line);
  if (from) stages.set(from[2] ?? 'runtime', (current = [line]));
  else current.push(line);
}
const stage = (name: string) => stages.get(name) ?? [];

describe('Dockerfile', () => {
  it('builds every stage on the Node 24 release that setup pins, slim', () => {
    expect(lines).toContain(`ARG NODE_IMAGE=node:${NODE_RUNTIMES['24'].version}-bookworm-slim`);
    expect([...stages.keys()]).toEqual(['build', 'deps', 'runtime']);
    for (const [name, instructions] of stages)
      expect(instructions[0], name).toMatch(/^FROM \$\{NODE_IMAGE\}/);
  });

  it('generates the Prisma client and runs npm run build in the build stage', () => {
    expect(stage('build')).toEqual(
      expect.arrayContaining([
        'RUN npm ci --no-audit --no-fund',
        'RUN npm run db:generate',
        'RUN npm run build',
      ]),
    );
  });

  it('ships production dependencies, package.json and dist/ only, as a non-root user', () => {
    expect(stage('deps').some((l) => /^RUN npm ci --omit=dev\b/.test(l))).toBe(true);
    const copies = stage('runtime').filter((l) => l.startsWith('COPY'));
    expect(copies).toEqual([
      'COPY --from=deps /app/node_modules ./node_modules',
      'COPY --from=build /app/package.json ./package.json',
      'COPY --from=build /app/dist ./dist',
    ]);
    expect(stage('runtime')).toContain('USER node');
    expect(stage('runtime')).toContain('ENV NODE_ENV=production');
  });

  it('runs the compiled API by default and checks its health', () => {
    const cmd = stage('runtime').find((l) => l.startsWith('CMD '));
    expect(JSON.parse(cmd!.slice(4))).toEqual(['node', 'dist/src/api/server.js']);
    expect(stage('runtime').some((l) => /^HEALTHCHECK .* CMD \["node", "-e", /.test(l))).toBe(true);
    expect(lines.join('\n')).not.toMatch(/\btsx\b/);
  });
});
