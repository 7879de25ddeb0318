/**
 * A process that creates a kafkajs client prints no TimeoutNegativeWarning
 * (kafkajs 2.2.4's negative request-queue delay, tulios/kafkajs#1751), so the
 * CLI's stderr and the services' logs stay clean, while every other warning
 * still reaches stderr.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const projectRoot = path.resolve(import.meta.dirname, '../..');

/** stderr of a child Node that creates a client, then sets a negative timeout and emits `other`. */
function stderrOf(createClient: boolean): Promise<string> {
  const script = `
    import { createKafka } from './src/events/kafka.ts';
    ${createClient ? "createKafka({ KAFKA_BROKERS: ['127.0.0.1:1'], KAFKA_CLIENT_ID: 'warning-test' });" : ''}
    setTimeout(() => {}, -5);
    process.emitWarning('another warning', 'OtherWarning');
  `;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: projectRoot, timeout: 60_000 },
      (err, _stdout, stderr) => (err ? reject(new Error(stderr, { cause: err })) : resolve(stderr)),
    );
  });
}

describe('kafkajs negative-timeout warning', () => {
  it('is dropped once a client exists; other warnings still print', async () => {
    const stderr = await stderrOf(true);
    expect(stderr).not.toContain('TimeoutNegativeWarning');
    expect(stderr).toContain('OtherWarning: another warning');
  });

  it('is what Node 23 and later print without the filter (Node 22 prints none), so the check above can fail', async () => {
    const nodeWarns = Number(process.versions.node.split('.')[0]) >= 23;
    expect((await stderrOf(false)).includes('TimeoutNegativeWarning')).toBe(nodeWarns);
  });
});
