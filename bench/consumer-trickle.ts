/**
 * bench/consumer-trickle: CPU per event of the two consumer processes when
 * events arrive at a trickle, as in the end-to-end run (about 20 a second),
 * not as a backlog (bench/consumers.ts). A stack of its own (PostgreSQL,
 * Kafka; no Temporal), both consumers as `npm start` runs them, events
 * published one at a time (acks=all) at TRICKLE_RATE per second: 10 s of warm-up, then
 * TRICKLE_ROUNDS rounds of TRICKLE_SECONDS each, each reporting the CPU ms per event of each
 * consumer process, PostgreSQL and Kafka (from /proc; printed, not saved: a
 * diagnosis). CONSUMER_ENV passes settings to the consumers as JSON, e.g.
 * '{"CONSUMER_FETCH_WAIT":"100ms"}'.
 *
 *   npm run bench:consumer-trickle
 *   TRICKLE_RATE=1 TRICKLE_SECONDS=60 TRICKLE_ROUNDS=1 npm run bench:consumer-trickle   (the fixed cost per second)
 */
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { delay, tailFile, type ManagedProcess } from '../scripts/lib/process.ts';
import { orderPlacedCloudEvent, toKafkaMessage } from '../src/activities/events.ts';
import { loadConfig } from '../src/config/env.ts';
import { createKafka, createOrderEventsProducer, ensureTopic } from '../src/events/kafka.ts';
import { ORDERS_PLACED_TOPIC } from '../src/shared/events.ts';
import { CLK_TCK, procSnapshot, ticksBetween } from './lib/proc-stats.ts';
import { guardedStack } from './lib/run-guard.ts';

const RATE = Number(process.env.TRICKLE_RATE ?? 20);
const SECONDS = Number(process.env.TRICKLE_SECONDS ?? 40);
const ROUNDS = Number(process.env.TRICKLE_ROUNDS ?? 2);
const extraEnv = JSON.parse(process.env.CONSUMER_ENV ?? '{}') as Record<string, string>;

async function main() {
  const guard = await guardedStack({
    name: 'orderflow-bench-trickle-',
    keepData: false,
    maxMin: 20,
    stack: { external: { temporalAddress: '127.0.0.1:1' } },
  });
  const { stack } = guard;
  try {
    const env = await stack.startInfrastructure();
    const config = loadConfig({ DATABASE_URL: env.DATABASE_URL, KAFKA_BROKERS: env.KAFKA_BROKERS });
    const kafka = createKafka(config, { logger: pino({ level: 'error' }), clientId: 'diag' });
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopic(admin, ORDERS_PLACED_TOPIC, 6);
    const procs: ManagedProcess[] = [];
    for (const group of ['analytics', 'inventory']) {
      procs.push(
        await stack.startApp(
          `consumer-${group}`,
          `src/consumers/${group}.ts`,
          { CONSUMER_METRICS_PORT: '0', LOG_LEVEL: 'info', NODE_ENV: 'production', ...extraEnv },
          async (p) => /"msg":"consumer running"/.test(tailFile(p.spec.logFile, 200)),
        ),
      );
    }
    const producer = createOrderEventsProducer(kafka);
    await producer.connect();
    const publishFor = async (seconds: number) => {
      const t0 = Date.now();
      let sent = 0;
      while (Date.now() - t0 < seconds * 1000) {
        const due = Math.floor(((Date.now() - t0) / 1000) * RATE);
        while (sent < due) {
          const id = randomUUID();
          const data = {
            orderId: id,
            customerEmail: 'a@example.com',
            currency: 'EUR',
            totalCents: 1000,
            items: [{ sku: `SKU-${sent % 50}`, quantity: 1, unitPriceCents: 1000 }],
            placedAt: new Date().toISOString(),
          };
          await producer.send({
            topic: ORDERS_PLACED_TOPIC,
            acks: -1,
            messages: [toKafkaMessage(orderPlacedCloudEvent(data), id)],
          });
          sent++;
        }
        await delay(5);
      }
      return sent;
    };
    await publishFor(10); // warm-up
    for (let r = 0; r < ROUNDS; r++) {
      const a = procSnapshot();
      const sent = await publishFor(SECONDS);
      await delay(1000);
      const b = procSnapshot();
      const ticks = ticksBetween(a, b, stack.procs, 'bench');
      const per = (k: string) => ((((ticks[k] ?? 0) / CLK_TCK) * 1000) / sent).toFixed(2);
      console.log(
        `round ${r + 1}: ${sent} events; CPU ms per event: analytics ${per('consumer-analytics')}, inventory ${per('consumer-inventory')}, postgresql ${per('postgresql')}, kafka ${per('kafka')}`,
      );
    }
    await producer.disconnect();
    await admin.disconnect();
    for (const p of procs) await p.stop(30_000);
  } finally {
    guard.clear();
    await guard.cleanup();
  }
}
main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
