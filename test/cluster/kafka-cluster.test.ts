/**
 * The three-node KRaft cluster of the cluster topology (scripts/lib/kafka-cluster.ts):
 * the app's topics get three replicas and min.insync.replicas 2 from the broker
 * defaults; with the app's producer (acks=all) and a consumer group,
 * every record sent is consumed while the leader of some partitions is killed
 * (kill -9) and restarted; the restarted node rejoins every ISR; a whole-cluster
 * restart reuses its data. Prints the start times, each JVM's RSS and idle CPU,
 * and how long produce stalled.
 */
import { ConfigResourceTypes, type Admin } from 'kafkajs';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeKafkaCluster, startKafkaCluster } from '../../scripts/lib/kafka-cluster.ts';
import {
  cpuSeconds,
  delay,
  freePorts,
  signalGroup,
  type ManagedProcess,
} from '../../scripts/lib/process.ts';
import { Stack, ephemeralPorts, tmpStackDir } from '../../scripts/lib/stack.ts';
import { provisionKafka, type Tools } from '../../scripts/lib/tools.ts';
import { DEAD_LETTER_PARTITIONS } from '../../src/consumers/runtime/run-consumer.ts';
import { deadLetterTopicOf } from '../../src/consumers/runtime/dead-letters.ts';
import { createKafka, createOrderEventsProducer, ensureTopic } from '../../src/events/kafka.ts';
import type { EventConsumer, EventProducer, KafkaClient } from '../../src/events/kafka-types.ts';
import { ORDERS_PLACED_TOPIC } from '../../src/shared/events.ts';

const log = (msg: string) => console.log(`[kafka-cluster] ${msg}`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

let stack: Stack;
let dataDir: string;
let kafkaLibs: string;
let ports: { brokers: number[]; controllers: number[] };
let brokers: string;
let kafka: KafkaClient;
/** The app's admin client is kafkajs' own (createKafka); its full type for replicas, ISR and configs. */
let admin: Admin;

function newStack(): Stack {
  return new Stack({
    dataDir,
    // The stack's own components are not started here; only its process handling is used.
    ports: stackPorts,
    tools: { kafkaLibs } as Tools,
    ephemeral: true,
    log,
  });
}
let stackPorts: Awaited<ReturnType<typeof ephemeralPorts>>;

async function connectClients(): Promise<void> {
  kafka = createKafka({ KAFKA_BROKERS: brokers.split(','), KAFKA_CLIENT_ID: 'kafka-cluster-test' });
  admin = kafka.admin() as unknown as Admin;
  await admin.connect();
}

/** Replicas and in-sync replicas of every partition of `topic`, with its leader. */
async function partitionsOf(topic: string) {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  return topics[0]!.partitions.map((p) => ({
    partition: p.partitionId,
    leader: p.leader,
    replicas: p.replicas.length,
    isr: [...p.isr].sort(),
  }));
}

const rssKb = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

const nodeProc = (id: number): ManagedProcess => stack.procs.find((p) => p.name === `kafka-${id}`)!;

beforeAll(async () => {
  kafkaLibs = provisionKafka(log);
  dataDir = tmpStackDir();
  stackPorts = await ephemeralPorts(freePorts);
  const chosen = await freePorts(6);
  ports = { brokers: chosen.slice(0, 3), controllers: chosen.slice(3) };
  stack = newStack();
  const t = Date.now();
  brokers = await startKafkaCluster(stack, { ports, kafkaLibs, dataDir });
  log(`cold start (format + start of 3 nodes): ${seconds(Date.now() - t)}`);
  await connectClients();
}, 240_000);

afterAll(async () => {
  await admin?.disconnect().catch(() => {});
  await stack?.stop();
  if (dataDir && !process.env.KEEP_TEST_STACK) fs.rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

describe('the three-node Kafka cluster', () => {
  it('has three brokers and a controller, each JVM small and quiet when idle', async () => {
    const cluster = await describeKafkaCluster(brokers);
    expect(cluster.brokers).toEqual([1, 2, 3]);
    expect(cluster.controller).toBeGreaterThanOrEqual(0);

    const procs = [1, 2, 3].map(nodeProc);
    const before = procs.map((p) => cpuSeconds(p.pid!)!);
    const windowMs = 10_000;
    await delay(windowMs);
    procs.forEach((p, i) => {
      const cpu = (cpuSeconds(p.pid!)! - before[i]!) / (windowMs / 1000);
      log(
        `${p.name}: RSS ${Math.round(rssKb(p.pid!) / 1024)} MB, idle CPU ${(cpu * 100).toFixed(1)}% of a core`,
      );
    });
  }, 60_000);

  it("creates the app's topics with three replicas, all in sync, and min.insync.replicas 2", async () => {
    const dlq = deadLetterTopicOf(ORDERS_PLACED_TOPIC);
    // As the events worker and the consumers do: no replication factor given.
    await ensureTopic(admin, ORDERS_PLACED_TOPIC, 6);
    await ensureTopic(admin, dlq, DEAD_LETTER_PARTITIONS);
    for (const topic of [ORDERS_PLACED_TOPIC, dlq]) {
      const partitions = await partitionsOf(topic);
      expect(partitions.length).toBe(topic === dlq ? DEAD_LETTER_PARTITIONS : 6);
      for (const p of partitions) expect(p).toMatchObject({ replicas: 3, isr: [1, 2, 3] });
    }
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [ORDERS_PLACED_TOPIC, dlq].map((name) => ({
        type: ConfigResourceTypes.TOPIC,
        name,
        configNames: ['min.insync.replicas', 'unclean.leader.election.enable', 'retention.ms'],
      })),
    });
    for (const r of resources) {
      const value = (name: string) =>
        r.configEntries.find((e) => e.configName === name)?.configValue;
      expect(value('min.insync.replicas'), r.resourceName).toBe('2');
      expect(value('unclean.leader.election.enable'), r.resourceName).toBe('false');
      expect(value('retention.ms'), r.resourceName).toBe('-1');
    }
  }, 90_000);

  it('keeps producing and consuming while a partition leader is killed, and takes it back', async () => {
    const topic = 'cluster-failover';
    await ensureTopic(admin, topic, 6);
    const producer: EventProducer = createOrderEventsProducer(kafka);
    await producer.connect();

    // The ledger: where each key was read (partition/offset), how often.
    const seen = new Map<string, string[]>();
    const consumer: EventConsumer = kafka.consumer({ groupId: 'cluster-failover-test' });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        const key = message.key!.toString();
        seen.set(key, [...(seen.get(key) ?? []), `${partition}/${message.offset}`]);
      },
    });

    // One send at a time, as the events activity does; a failed send is sent again
    // (Temporal retries the activity), so every key ends up acknowledged.
    const acked: number[] = [];
    const failedAttempts = new Map<string, number>();
    let next = 0;
    let stop = false;
    const produce = (async () => {
      while (!stop) {
        const key = `k-${next}`;
        try {
          await producer.send({ topic, acks: -1, messages: [{ key, value: String(next) }] });
          acked.push(Date.now());
          next++;
        } catch {
          failedAttempts.set(key, (failedAttempts.get(key) ?? 0) + 1);
          await delay(200);
        }
        await delay(10);
      }
    })();
    const until = async (n: number, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      while (acked.length < n && Date.now() < deadline) await delay(50);
      expect(acked.length).toBeGreaterThanOrEqual(n);
    };

    try {
      await until(200, 60_000);
      const before = await partitionsOf(topic);
      const victimId = before[0]!.leader;
      const led = before.filter((p) => p.leader === victimId).map((p) => p.partition);
      const victim = nodeProc(victimId);
      const controller = (await describeKafkaCluster(brokers)).controller;
      log(
        `killing kafka-${victimId} (leader of partitions ${led.join(',')}; the cluster names ${controller} controller)`,
      );
      const killedAt = Date.now();
      const ackedBefore = acked.length;
      signalGroup(victim.pid!, 'SIGKILL');
      await victim.exited;

      await until(ackedBefore + 300, 120_000);
      const after = acked.slice(ackedBefore - 1);
      const gaps = after.slice(1).map((t, i) => t - after[i]!);
      const stall = Math.max(...gaps);
      log(
        `produce stalled ${seconds(stall)} at most after the kill (first ack after the kill ` +
          `${seconds(acked[ackedBefore]! - killedAt)} later); ${[...failedAttempts.values()].reduce((a, b) => a + b, 0)} ` +
          `send attempts failed and were sent again`,
      );
      const survivors = await partitionsOf(topic);
      for (const p of survivors) {
        expect(p.leader).not.toBe(victimId);
        expect(p.isr).not.toContain(victimId);
        expect(p.isr.length).toBeGreaterThanOrEqual(2);
      }

      // Back: same command, same data folder, no reformat; the readiness check of its first start.
      const restartedAt = Date.now();
      const proc = stack.respawn(victim);
      await stack.waitReady(proc);
      const readyMs = Date.now() - restartedAt;
      let isr: Awaited<ReturnType<typeof partitionsOf>> = [];
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; await delay(250)) {
        isr = await partitionsOf(topic);
        if (isr.every((p) => p.isr.length === 3)) break;
      }
      for (const p of isr) expect(p.isr).toEqual([1, 2, 3]);
      log(
        `kafka-${victimId} restarted: registered in ${seconds(readyMs)}, every ISR 3 again after ${seconds(Date.now() - restartedAt)}`,
      );
      await until(acked.length + 50, 60_000);
    } finally {
      stop = true;
      await produce;
    }

    const sent = next;
    const deadline = Date.now() + 60_000;
    while (seen.size < sent && Date.now() < deadline) await delay(200);
    await consumer.disconnect();
    await producer.disconnect();

    const missing = Array.from({ length: sent }, (_, i) => `k-${i}`).filter((k) => !seen.has(k));
    expect(missing).toEqual([]);
    // Read twice at one offset: the group re-read records whose offsets were not committed yet
    // (at-least-once). Written twice (two offsets): only a send that failed and was sent again.
    const redelivered = [...seen].filter(([, at]) => new Set(at).size < at.length);
    const written = [...seen].filter(([, at]) => new Set(at).size > 1);
    for (const [key] of written) expect(failedAttempts.has(key), key).toBe(true);
    log(
      `${sent} keys sent, ${seen.size} consumed; ${redelivered.length} re-read at the same offset, ` +
        `${written.length} written twice after a failed send`,
    );
  }, 240_000);

  it('starts again on its data (no reformat), with the records kept', async () => {
    await admin.disconnect();
    const stopAt = Date.now();
    await stack.stop();
    log(`stopped in ${seconds(Date.now() - stopAt)}`);
    const metas = [1, 2, 3].map((id) =>
      fs.readFileSync(`${dataDir}/kafka-cluster/node-${id}/data/meta.properties`, 'utf8'),
    );
    stack = newStack();
    const t = Date.now();
    brokers = await startKafkaCluster(stack, { ports, kafkaLibs, dataDir });
    log(`warm start of 3 nodes: ${seconds(Date.now() - t)}`);
    expect(
      [1, 2, 3].map((id) =>
        fs.readFileSync(`${dataDir}/kafka-cluster/node-${id}/data/meta.properties`, 'utf8'),
      ),
    ).toEqual(metas);
    await connectClients();
    const offsets = await admin.fetchTopicOffsets('cluster-failover');
    expect(offsets.reduce((n, p) => n + Number(p.high), 0)).toBeGreaterThanOrEqual(550);
  }, 180_000);
});
