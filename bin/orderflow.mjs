#!/usr/bin/env node
// The `orderflow` command (package.json "bin"): the compiled CLI when there is
// one (npm run build, the production image), else the TypeScript source
// through tsx, so `npx orderflow` works in a checkout without a build.
import fs from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

const root = path.resolve(import.meta.dirname, '..');
const compiled = path.join(root, 'dist/src/cli/orderflow.js');
let entry = compiled;
if (!fs.existsSync(compiled)) {
  const { register } = await import('tsx/esm/api');
  register();
  entry = path.join(root, 'src/cli/orderflow.ts');
}
const { buildCli } = await import(pathToFileURL(entry).href);
await buildCli().parseAsync(process.argv);
