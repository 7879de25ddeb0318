/**
 * Prometheus series of the worker processes, registered on the process's
 * registry by the bootstrap that needs them and handed to the activity
 * factories as dependencies.
 */
import client from 'prom-client';

/** Webhook deliveries (attempts) by how they ended. */
export function webhookDeliveriesCounter(registry: client.Registry): client.Counter<'outcome'> {
  return new client.Counter({
    name: 'orderflow_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome: delivered, duplicate (delivered before, nothing sent), retryable_failure, permanent_failure, disabled (the permanent failure that disabled the endpoint: WEBHOOK_DISABLE_AFTER_FAILURES in a row), gone (410, endpoint disabled), skipped (endpoint deleted or disabled), throttled (no free send time within the attempt under WEBHOOK_RATE_PER_SECOND; retried)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
}

/** Time until the broker acknowledged (or refused) an event, by topic and outcome. */
export function kafkaPublishHistogram(
  registry: client.Registry,
): client.Histogram<'topic' | 'outcome'> {
  return new client.Histogram({
    name: 'orderflow_kafka_publish_duration_seconds',
    help: 'Kafka publish latency (send until all in-sync replicas acknowledged), by topic and outcome (ok, error)',
    labelNames: ['topic', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
}
