/**
 * Worker for task queues `events` (live) and `events-bulk` (re-publication):
 * publishes orders' events to Kafka through one producer (acks=all) per
 * process, after making sure the topic exists.
 */
import { createEventActivities } from '../activities/events.ts';
import { createDbFromConfig } from '../db/client.ts';
import { createKafka, createOrderEventsProducer, ensureTopic } from '../events/kafka.ts';
import { ORDERS_PLACED_TOPIC } from '../shared/events.ts';
import { TaskQueue } from '../shared/task-queues.ts';
import { kafkaPublishHistogram } from './metrics.ts';
import { runWorker } from './run-worker.ts';

runWorker({
  name: 'worker-events',
  taskQueue: TaskQueue.events,
  async build(config, log, registry) {
    const kafka = createKafka(config, { logger: log });
    const admin = kafka.admin();
    await admin.connect();
    try {
      // Right after the broker reports ready it may not be registered yet: transient errors are retried.
      const topic = await ensureTopic(
        admin,
        ORDERS_PLACED_TOPIC,
        config.KAFKA_TOPIC_PARTITIONS,
        undefined,
        { onRetry: (err, attempt) => log.warn({ err, attempt }, 'topic not ready yet; retrying') },
      );
      if (topic.partitions !== config.KAFKA_TOPIC_PARTITIONS) {
        // Adding partitions would move keys to other partitions, breaking per-order ordering: an operator's call.
        log.warn(
          {
            topic: ORDERS_PLACED_TOPIC,
            partitions: topic.partitions,
            configured: config.KAFKA_TOPIC_PARTITIONS,
          },
          'topic exists with a different number of partitions; left as it is',
        );
      }
      log.info({ topic: ORDERS_PLACED_TOPIC, ...topic }, 'topic ready');
    } finally {
      await admin.disconnect();
    }

    const producer = createOrderEventsProducer(kafka);
    await producer.connect();
    const db = createDbFromConfig(config, Math.min(config.EVENTS_WORKER_CONCURRENCY, 10));
    const activities = createEventActivities({
      db,
      producer,
      publishSeconds: kafkaPublishHistogram(registry),
    });
    return {
      options: {
        activities,
        maxConcurrentActivityTaskExecutions: config.EVENTS_WORKER_CONCURRENCY,
      },
      // Bulk re-publication gets its own queue and a few slots of its own: live events never wait behind it.
      also: [
        {
          taskQueue: TaskQueue.eventsBulk,
          options: {
            activities,
            maxConcurrentActivityTaskExecutions: config.EVENTS_BULK_WORKER_CONCURRENCY,
          },
        },
      ],
      close: async () => {
        await Promise.allSettled([producer.disconnect(), db.$disconnect()]);
      },
    };
  },
});
