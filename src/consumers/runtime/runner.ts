/**
 * The consumer runner every group shares. Partitions are worked on
 * concurrently, the records of one partition strictly in order (so per-key
 * order holds). Each event's effect and its processed-events row commit in one
 * database transaction; the offset is committed only after that. Records that
 * cannot be processed go to the dead-letter topic and the partition moves on;
 * failures that are not the record's fault (the database or the broker
 * unavailable, read-only, failing over) are waited out instead.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from '../../db/client.ts';
import { isTransientDatabaseError } from '../../db/errors.ts';
import { isTransientKafkaError } from '../../events/kafka.ts';
import type {
  ConsumerSettings,
  EventConsumer,
  EventProducer,
  KafkaClient,
  KafkaRecord,
  RecordBatch,
} from '../../events/kafka-types.ts';
import type { Logger } from '../../shared/logger.ts';
import { projectionHandles, type Projection } from '../projections/projection.ts';
import { deadLetterOf, deadLetterTopicOf, type Origin } from './dead-letters.ts';
import type { ConsumerMetrics, EventOutcome } from './metrics.ts';
import { createOffsetCommitter, type CommitFn } from './offset-committer.ts';
import { decodeOrderPlaced, PoisonMessageError } from './order-placed-decoder.ts';
import { applyOnce, type ApplyResult, type SourcedEvent } from './processed-events.ts';
import { sharedTransactions } from './shared-transactions.ts';
import type { ConsumerActivity } from './stall-watch.ts';
import { inProcessSpans, type ConsumedRecord } from './tracing.ts';

export type TransactionMode = 'per-batch' | 'per-event';

export interface ConsumerRunnerOptions {
  kafka: KafkaClient;
  db: Db;
  /** Connected; sends dead letters. */
  producer: EventProducer;
  groupId: string;
  projection: Projection;
  topic: string;
  /**
   * per-batch: one transaction for up to `batchMaxEvents` records of a partition, shared with the
   * other partitions' batches of the same fetch (shared-transactions.ts); per-event: one per record.
   */
  transaction: TransactionMode;
  batchMaxEvents: number;
  /** Partitions worked on at once (the consumer's partitionsConsumedConcurrently). */
  concurrency: number;
  /** Attempts at a record that keeps failing while the database is reachable, before it is dead-lettered. */
  maxAttempts: number;
  retryInitialMs: number;
  log: Logger;
  metrics: ConsumerMetrics;
  /**
   * How long a fetch waits for more records (CONSUMER_FETCH_WAIT): records arriving within
   * it come in one fetch and one transaction. 0: answer as soon as one is there.
   */
  fetchWaitMs?: number;
  /** Overrides of the consumer's settings (session timeouts in tests). */
  consumerConfig?: Omit<Partial<ConsumerSettings>, 'groupId'>;
  /** How long a batch in hand counts as activity after its latest progress (IN_HAND_GRACE_MS; tests shorten it). */
  inHandGraceMs?: number;
  /** Runs after a transaction committed and before the offsets are committed (fault-injection tests). */
  afterTransaction?: (records: readonly SourcedEvent[]) => void | Promise<void>;
}

export interface ConsumerRunner {
  readonly consumer: EventConsumer;
  /** Joins the group and starts consuming (returns once running). */
  start(): Promise<void>;
  /** Finishes the record (or batch) in hand, commits its offset, leaves the group. */
  stop(): Promise<void>;
  /** Rejects when the client gives up on the consumer (a crash it does not restart). */
  readonly crashed: Promise<never>;
  /** What this process owns and when it last worked on each partition (for the stall watch). */
  readonly activity: ConsumerActivity;
}

/**
 * Finished offsets are committed at most this often, every partition's in one
 * request (offset-committer.ts), so a steady trickle of small batches costs one
 * commit a second, not one per batch.
 */
const COMMIT_INTERVAL_MS = 1_000;
/** Within a long batch, the client's heartbeat is sent at least this often. */
const HEARTBEAT_EVERY_MS = 1_000;
/** What a fetch waits for, up to the fetch wait, before it answers (kafkajs' maxBytesPerPartition). */
const FETCH_MIN_BYTES = 1_048_576;
const MAX_BACKOFF_MS = 30_000;
/** Waits through a transient failure are capped lower, so recovery is noticed within seconds. */
const TRANSIENT_MAX_BACKOFF_MS = 5_000;
/** A batch in hand without progress for this long is no longer taken as activity by the stall watch. */
export const IN_HAND_GRACE_MS = 120_000;

/** A failure that is not the record's fault: the database's or the broker's state at the moment. */
export const isTransientFailure = (err: unknown): boolean =>
  isTransientDatabaseError(err) || isTransientKafkaError(err);

type Attempt<T> =
  | { ok: true; value: T }
  | { ok: false; error: unknown; attempts: number }
  | { ok: false; stopping: true };

interface PartitionContext {
  topic: string;
  partition: number;
  heartbeat(): Promise<void>;
  isRunning(): boolean;
}

const errorText = (err: unknown): string =>
  err instanceof Error ? `${err.name}: ${err.message}` : String(err);

function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** Builds a group's consumer; `start()` joins the group. */
export function createConsumerRunner(opts: ConsumerRunnerOptions): ConsumerRunner {
  const { db, producer, groupId, projection, topic, log, metrics } = opts;
  const deadLetterTopic = deadLetterTopicOf(topic);
  const consumer = opts.kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    ...(opts.fetchWaitMs ? { maxWaitTimeInMs: opts.fetchWaitMs, minBytes: FETCH_MIN_BYTES } : {}),
    ...opts.consumerConfig,
  });

  let rejectCrashed: (err: Error) => void = () => {};
  const crashed = new Promise<never>((_resolve, reject) => {
    rejectCrashed = reject;
  });
  crashed.catch(() => {}); // observed by whoever awaits it
  const committer = createOffsetCommitter({
    commit: (offsets) => consumer.commitOffsets(offsets.map((o) => ({ topic, ...o }))),
    intervalMs: COMMIT_INTERVAL_MS,
    log,
    about: { groupId, topic },
  });
  let stopping = false;
  // The stall watch's view: the partitions of the latest join (none while out of the group) and
  // when each last made progress (a batch begun or ended, an attempt, a tick of a wait). A batch
  // in hand counts as activity for IN_HAND_GRACE_MS after its latest progress, longer than any
  // single wait of ours (a transaction: 30 s for a connection + 60 s; a broker request: 30 s);
  // a join or a crash counts as activity on every partition.
  let assigned: readonly number[] | undefined;
  let groupEventAt = Date.now();
  const inHand = new Set<number>(); // kafkajs hands a partition's batches over one at a time
  const progressAt = new Map<number, number>();
  const progress = (partition: number) => progressAt.set(partition, Date.now());
  const inHandGraceMs = opts.inHandGraceMs ?? IN_HAND_GRACE_MS;
  const activity: ConsumerActivity = {
    assigned: () => assigned,
    lastActivityAt(partition) {
      const last = Math.max(progressAt.get(partition) ?? 0, groupEventAt);
      return inHand.has(partition) ? Math.min(Date.now(), last + inHandGraceMs) : last;
    },
  };
  consumer.onCrash(({ error, restart }) => {
    log.error({ err: error, groupId, restart }, 'consumer crashed');
    assigned = undefined;
    groupEventAt = Date.now();
    if (!restart) rejectCrashed(error);
  });
  consumer.onGroupJoin(({ memberId, memberAssignment }) => {
    log.info({ groupId, memberId, assignment: memberAssignment }, 'joined consumer group');
    assigned = memberAssignment[topic] ?? [];
    committer.rejoined(assigned);
    groupEventAt = Date.now();
  });

  const count = (outcome: EventOutcome, n = 1) => {
    if (n > 0) metrics.events.inc({ group: groupId, outcome }, n);
  };

  async function databaseReachable(): Promise<boolean> {
    try {
      await Promise.race([
        db.$queryRaw`SELECT 1`,
        sleep(5_000).then(() => Promise.reject(new Error('timeout'))),
      ]);
      return true;
    } catch {
      return false;
    }
  }

  /** Waits `ms`, heartbeating; false when the consumer is stopping. A rebalance throws (the client rejoins). */
  async function pause(ms: number, ctx: PartitionContext): Promise<boolean> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (!ctx.isRunning()) return false;
      await sleep(Math.min(until - Date.now(), 1_000));
      progress(ctx.partition);
      await ctx.heartbeat();
    }
    return ctx.isRunning();
  }

  /** The wait before attempt `n + 1`: doubling from retryInitialMs, at most `capMs`. */
  const backoffMs = (n: number, capMs: number) =>
    Math.min(opts.retryInitialMs * 2 ** Math.min(n - 1, 20), capMs);

  /**
   * Runs `fn` until it succeeds. A failure that is not the record's fault
   * waits and retries without limit: a transient database or broker error
   * (isTransientFailure: read-only after a failover, connection lost, a
   * serialization conflict, leadership moving...) or any error while the
   * database is unreachable; an outage must not empty the topic into the
   * dead-letter topic. Other failures count: after `maxAttempts` of them the
   * record is given up (dead-lettered by the caller).
   */
  async function attempt<T>(
    fn: () => Promise<T>,
    ctx: PartitionContext,
    maxAttempts: number,
    about: Record<string, unknown>,
  ): Promise<Attempt<T>> {
    let counted = 0;
    for (let n = 1; ; n++) {
      progress(ctx.partition);
      try {
        return { ok: true, value: await fn() };
      } catch (error) {
        const transient = isTransientFailure(error) || !(await databaseReachable());
        if (!transient && ++counted >= maxAttempts) return { ok: false, error, attempts: n };
        metrics.retries.inc({ group: groupId });
        const delay = backoffMs(n, transient ? TRANSIENT_MAX_BACKOFF_MS : MAX_BACKOFF_MS);
        log.warn(
          { ...about, groupId, attempt: n, transient, delayMs: delay, err: error },
          transient ? 'waiting out a transient failure' : 'retrying',
        );
        if (!(await pause(delay, ctx))) return { ok: false, stopping: true };
      }
    }
  }

  async function deadLetter(
    message: KafkaRecord,
    ctx: PartitionContext,
    error: string,
    attempts: number,
  ): Promise<void> {
    const origin: Origin = {
      topic: ctx.topic,
      partition: ctx.partition,
      offset: message.offset,
      timestamp: message.timestamp,
    };
    const letter = deadLetterOf(message, { origin, groupId, error, attempts });
    // A broker failing over (not leader, coordinator moving, too few replicas) is waited out here.
    for (let n = 1; ; n++) {
      try {
        await producer.send({ topic: deadLetterTopic, acks: -1, messages: [letter] });
        break;
      } catch (err) {
        if (!isTransientKafkaError(err)) throw err;
        const delay = backoffMs(n, TRANSIENT_MAX_BACKOFF_MS);
        metrics.retries.inc({ group: groupId });
        log.warn(
          { groupId, ...origin, attempt: n, delayMs: delay, err },
          'dead letter not sent yet; retrying',
        );
        // Stopping: the record is not finished; its offset stays for the next owner.
        if (!(await pause(delay, ctx))) throw err;
      }
    }
    count('dead_lettered');
    log.error(
      {
        groupId,
        ...origin,
        eventId: message.headers?.ce_id?.toString(),
        orderId: message.key?.toString(),
        error,
        deadLetterTopic,
      },
      'record dead-lettered',
    );
  }

  const applyAlone = (records: readonly SourcedEvent[]) =>
    applyOnce(db, groupId, projection, records);
  // per-batch: the batches of one fetch (one per partition) share a transaction (shared-transactions.ts).
  const apply = opts.transaction === 'per-batch' ? sharedTransactions(applyAlone) : applyAlone;

  async function commitEffects(items: readonly ConsumedRecord[]): Promise<ApplyResult> {
    const records = items.map((i) => i.record);
    const end = metrics.transactionSeconds.startTimer({ group: groupId });
    const result = await inProcessSpans(groupId, items, () => apply(records));
    end();
    await opts.afterTransaction?.(records);
    count('processed', result.applied.length);
    count('duplicate', result.duplicates.length);
    for (const d of result.duplicates) {
      log.debug({ groupId, eventId: d.event.id, offset: d.offset }, 'duplicate event skipped');
    }
    return result;
  }

  /**
   * Handles consecutive records of one partition; returns how many of them
   * (a prefix) are finished, i.e. committed to the database or dead-lettered.
   */
  async function handleRecords(messages: KafkaRecord[], ctx: PartitionContext): Promise<number> {
    const events: ConsumedRecord[] = [];
    for (const message of messages) {
      try {
        const decoded = decodeOrderPlaced(message);
        if (decoded.kind !== 'other' && projectionHandles(projection, decoded.kind)) {
          const { topic, partition } = ctx;
          events.push({
            message,
            record: { event: decoded.event, topic, partition, offset: message.offset },
          });
        } else {
          count('ignored');
          const about =
            decoded.kind === 'other'
              ? { eventId: decoded.id, type: decoded.type }
              : { eventId: decoded.event.id, type: decoded.kind };
          log.debug({ groupId, ...about }, 'event type not handled');
        }
      } catch (err) {
        if (!(err instanceof PoisonMessageError)) throw err;
        await deadLetter(message, ctx, err.message, 1);
      }
    }
    if (events.length > 1) {
      // The whole batch in one transaction; if that fails, each event alone, so only the bad one is dead-lettered.
      const batch = await attempt(() => commitEffects(events), ctx, 1, {
        topic: ctx.topic,
        partition: ctx.partition,
        events: events.length,
      });
      if (batch.ok) return messages.length;
      // Stopping: the records before the first event (dead-lettered or ignored) are finished.
      if ('stopping' in batch) return messages.indexOf(events[0]!.message);
      log.warn(
        {
          groupId,
          topic: ctx.topic,
          partition: ctx.partition,
          events: events.length,
          err: batch.error,
        },
        'batch transaction failed; retrying its events one by one',
      );
    }
    for (const { message, record } of events) {
      const about = {
        topic: ctx.topic,
        partition: ctx.partition,
        offset: message.offset,
        eventId: record.event.id,
        orderId: record.event.data.orderId,
      };
      const result = await attempt(
        () => commitEffects([{ message, record }]),
        ctx,
        opts.maxAttempts,
        about,
      );
      if ('stopping' in result) return messages.indexOf(message);
      if (!result.ok) await deadLetter(message, ctx, errorText(result.error), result.attempts);
    }
    return messages.length;
  }

  /** A batch's own commit: the consumer group's, which also works while the client stops. */
  const viaBatch =
    (payload: RecordBatch): CommitFn =>
    (offsets) =>
      payload.commitOffsetsIfNecessary({ topics: [{ topic, partitions: offsets }] });

  async function eachBatch(payload: RecordBatch): Promise<void> {
    const { topic, partition, messages } = payload.batch;
    const isRunning = () => payload.isRunning();
    const heartbeat = () => payload.heartbeat();
    const ctx: PartitionContext = { topic, partition, heartbeat, isRunning };
    inHand.add(partition);
    progress(partition);
    let beatAt = Date.now();
    const size = opts.transaction === 'per-batch' ? opts.batchMaxEvents : 1;
    let failed = false;
    try {
      for (const records of chunks(messages, size)) {
        // On shutdown the record in hand is finished; the rest stays for the next owner.
        if (!isRunning() || payload.isStale()) break;
        const finished = await handleRecords(records, ctx);
        const last = records[finished - 1];
        if (last) {
          payload.resolveOffset(last.offset);
          committer.finished(partition, (BigInt(last.offset) + 1n).toString());
        }
        if (finished < records.length) break;
        if (Date.now() - beatAt >= HEARTBEAT_EVERY_MS) {
          await heartbeat();
          beatAt = Date.now();
        }
      }
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      // A batch that ends normally leaves its offset to the committer's next round. Stopping,
      // a rebalance or a failure commits now: what is in the database need not be redelivered.
      const now = stopping || failed || !isRunning() || payload.isStale();
      await (now ? committer.flush(viaBatch(payload)) : Promise.resolve())
        .catch((err: unknown) => {
          if (!failed) throw err;
          log.warn({ err, groupId, topic, partition }, 'offset commit failed');
        })
        .finally(() => {
          inHand.delete(partition);
          progress(partition);
        });
    }
  }

  return {
    consumer,
    crashed,
    activity,
    async start() {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: opts.concurrency,
        eachBatch,
      });
    },
    async stop() {
      // From here every batch commits as it ends; what finished before is committed now.
      stopping = true;
      committer.close();
      await committer.flush().catch((err: unknown) => {
        log.warn({ err, groupId, topic, offsets: committer.pending() }, 'offset commit failed');
      });
      // The client stops fetching, waits for the batches in hand (they stop at the next record), then leaves the group.
      await consumer.disconnect();
    },
  };
}
