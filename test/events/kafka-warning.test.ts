/**
 * kafkajs 2.2.4 schedules its request queue's next check with a negative
 * delay after every answer (tulios/kafkajs#1751, #1556): a timer Node runs
 * after 1 ms, again and again, and since Node 23 reports with a
 * TimeoutNegativeWarning. With src/events/kafka.ts loaded (the fix of
 * src/events/kafkajs-request-queue.ts) a request queue that got its answer
 * sets no such timer, so no warning is printed and none needs hiding; every
 * other warning still reaches stderr.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const projectRoot = path.resolve(import.meta.dirname, '../..');

/**
 * stderr of a child Node in which one kafkajs request queue sends a request
 * and gets its answer (no broker: driven by hand), then emits `other`.
 */
function stderrOf(withFix: boolean): Promise<string> {
  const script = `
    import { createRequire } from 'node:module';
    ${withFix ? "await import('./src/events/kafka.ts');" : ''}
    const RequestQueue = createRequire(import.meta.url + '/../package.json')('kafkajs/src/network/requestQueue/index.js');
    const logger = { debug() {}, info() {}, warn() {}, error() {} };
    const q = new RequestQueue({ requestTimeout: 30000, enforceRequestTimeout: false, clientId: 'w', broker: 'b', logger });
    q.push({ entry: { correlationId: 1, apiKey: 1, apiName: 'Fetch', apiVersion: 11, resolve() {}, reject() {} },
             expectResponse: true, sendRequest() {} });
    q.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    setTimeout(() => { q.destroy(); process.emitWarning('another warning', 'OtherWarning'); }, 50);
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

describe("kafkajs' negative-timeout warning", () => {
  it('is not printed once src/events/kafka.ts is loaded; other warnings still print', async () => {
    const stderr = await stderrOf(true);
    expect(stderr).not.toContain('TimeoutNegativeWarning');
    expect(stderr).toContain('OtherWarning: another warning');
  });

  it('is what Node 23 and later print for the unfixed queue (Node 22 prints none), so the check above can fail', async () => {
    const nodeWarns = Number(process.versions.node.split('.')[0]) >= 23;
    const stderr = await stderrOf(false);
    expect(stderr.includes('TimeoutNegativeWarning')).toBe(nodeWarns);
    expect(stderr).toContain('OtherWarning: another warning');
  });
});
