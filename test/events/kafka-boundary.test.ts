/**
 * Only src/events/ may import the Kafka client library (kafkajs): the rest of
 * src/ uses orderflow's own types (src/events/kafka-types.ts) and the functions
 * of src/events/kafka.ts, so the client can be swapped in one place.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const projectRoot = path.resolve(import.meta.dirname, '../..');
const src = path.join(projectRoot, 'src');
const allowed = path.join(src, 'events') + path.sep;

/** Static and dynamic imports, re-exports and require() of kafkajs or one of its subpaths. */
const KAFKAJS_IMPORT =
  /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"]kafkajs(?:\/[^'"]*)?['"]/;

const importsKafkajs = (source: string): boolean => KAFKAJS_IMPORT.test(source);

function sourceFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true, recursive: true })
    .flatMap((entry) =>
      entry.isFile() && /\.[cm]?[jt]sx?$/.test(entry.name)
        ? [path.join(entry.parentPath, entry.name)]
        : [],
    );
}

describe('the Kafka client boundary', () => {
  it('recognises every form of importing kafkajs, and not the word in prose', () => {
    for (const line of [
      "import { Kafka } from 'kafkajs';",
      'import type { Admin } from "kafkajs";',
      "import 'kafkajs';",
      "export { logLevel } from 'kafkajs';",
      "const { Kafka } = await import('kafkajs');",
      "const kafka = require('kafkajs');",
      "import type { Broker } from 'kafkajs/types';",
    ]) {
      expect(importsKafkajs(line), line).toBe(true);
    }
    for (const line of [
      '// kafkajs rejoins after a rebalance',
      "import { Kafka } from 'cloudevents';",
      "import type { KafkaRecord } from '../events/kafka-types.ts';",
    ]) {
      expect(importsKafkajs(line), line).toBe(false);
    }
  });

  it('has no file of src/ outside src/events/ import kafkajs', () => {
    const files = sourceFiles(src);
    const offenders = files
      .filter((file) => !file.startsWith(allowed))
      .filter((file) => importsKafkajs(fs.readFileSync(file, 'utf8')))
      .map((file) => path.relative(projectRoot, file));

    expect(offenders).toEqual([]);
    // The scan reads the tree it means to: the module that wraps kafkajs, and the one that
    // fixes its request queue, are found.
    expect(
      files
        .filter((file) => importsKafkajs(fs.readFileSync(file, 'utf8')))
        .map((f) => path.relative(projectRoot, f))
        .sort(),
    ).toEqual(['src/events/kafka.ts', 'src/events/kafkajs-request-queue.ts']);
  });
});
