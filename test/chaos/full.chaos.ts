/**
 * The full chaos run (`npm run test:chaos`): every fault of test/chaos/chaos-run.ts
 * in turn under steady load, then the ledger against the database, Kafka,
 * maildev and the webhook receiver. Writes bench/results/chaos-<date>[-CHAOS_LABEL].md.
 * CHAOS_* variables shorten or reorder it (see chaosSettings).
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { projectRoot, provisionAll } from '../../scripts/lib/tools.ts';
import { FAULTS, chaosSettings, runChaos, violations } from './chaos-run.ts';

const settings = chaosSettings({
  faults: [...FAULTS],
  rate: 5,
  warmupS: 20,
  gapS: 20,
  temporalDownS: 5,
  kafkaDownS: 30,
  smtpDownS: 30,
  receiverDownS: 30,
  postgresDownS: 10,
  drainS: 420,
  maxOrders: 10_000,
  webhookDelayMs: 100,
  attemptTimeout: '15s',
  keepData: false,
});

it('loses no accepted order and applies every effect as promised through worker kills and outages of Temporal, Kafka, SMTP, the webhook receiver and PostgreSQL', async () => {
  const result = await runChaos(settings, provisionAll());
  const label = process.env.CHAOS_LABEL ? `-${process.env.CHAOS_LABEL}` : '';
  const file = path.join(
    projectRoot,
    'bench/results',
    `chaos-${result.startedAt.toISOString().slice(0, 10)}${label}.md`,
  );
  const found = violations(result);
  const report =
    result.report +
    `\nCommand: \`npm run test:chaos\`${label ? ` (CHAOS_LABEL=${process.env.CHAOS_LABEL})` : ''}; ` +
    `guarantees checked: ${found.length ? `**${found.length} violated**:\n\n${found.map((v) => `- ${v}`).join('\n')}\n` : 'all held.\n'}`;
  fs.writeFileSync(file, report);
  console.info(`${report}\n(written to ${file})`);
  expect(found).toEqual([]);
});
