import { ApplicationFailure, Context, log } from '@temporalio/activity';
import { Webhook } from 'standardwebhooks';
import type { Db } from '../db/client.ts';
import { ensureNotCancelledByTemporal, withHeartbeats } from './heartbeat.ts';
import {
  ensureNotCancelled,
  loadOrder,
  orderCancelledData,
  orderPlacedData,
} from './order-data.ts';
import { orderCancelledEventId, orderPlacedEventId, webhookMessageId } from '../shared/events.ts';
import { FailureType, ORDER_CANCELLED, ORDER_PLACED } from '../shared/steps.ts';
import {
  DeliveryTimeoutError,
  SendTimeMissedError,
  parseRetryAfter,
  postWebhook,
  type WebhookRequest,
  type WebhookResponse,
} from '../webhooks/http-delivery.ts';
import type { RateGate } from '../webhooks/rate-gate.ts';
import { TargetForbiddenError, type TargetPolicy } from '../webhooks/ssrf-guard.ts';

export const WEBHOOK_USER_AGENT = 'orderflow-webhooks/0.1';
/** Send times one attempt may miss (its connection came up too late) before it is retried later. */
const MAX_MISSED_SEND_TIMES = 5;

export interface WebhookActivityDeps {
  db: Db;
  /** One attempt's whole HTTP exchange. */
  timeoutMs: number;
  allowedTargets: TargetPolicy;
  now?: () => Date;
  /** Spaces the sends of all workers to WEBHOOK_RATE_PER_SECOND (none: unlimited, for tests). */
  rateGate?: RateGate;
  /** Counts each attempt by outcome (the worker's orderflow_webhook_deliveries_total). */
  deliveries?: { inc(labels: { outcome: WebhookDeliveryOutcome }): void };
}

/** How one delivery attempt ended, as counted in metrics. */
export type WebhookDeliveryOutcome =
  | 'delivered'
  | 'duplicate'
  | 'retryable_failure'
  | 'permanent_failure'
  | 'gone'
  | 'skipped'
  | 'throttled';

export interface DeliverWebhookInput {
  orderId: string;
  endpointId: string;
  eventType: string;
}

export interface DeliverWebhookResult {
  webhookId: string;
  status: number;
  /** True when an earlier attempt or run had delivered it; nothing was sent. */
  alreadyDelivered: boolean;
}

const failure = (
  type: FailureType,
  message: string,
  nonRetryable: boolean,
  nextRetryDelay?: number,
) =>
  ApplicationFailure.create({
    type,
    message,
    nonRetryable,
    ...(nextRetryDelay === undefined ? {} : { nextRetryDelay }),
  });

/** How one HTTP response ends an attempt. */
type Verdict =
  | { kind: 'delivered' }
  | { kind: 'gone' }
  | { kind: 'retry'; nextRetryDelayMs?: number }
  | { kind: 'reject' };

/** 2xx delivered; 410 gone; 408/429/5xx retried (429/503 after Retry-After); other statuses rejected. */
export function verdictOf(res: Pick<WebhookResponse, 'status' | 'headers'>, now: Date): Verdict {
  const { status } = res;
  if (status >= 200 && status < 300) return { kind: 'delivered' };
  if (status === 410) return { kind: 'gone' };
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfter = res.headers['retry-after'];
    const nextRetryDelayMs =
      status === 429 || status === 503 ? parseRetryAfter(retryAfter, now) : undefined;
    return nextRetryDelayMs === undefined ? { kind: 'retry' } : { kind: 'retry', nextRetryDelayMs };
  }
  // 1xx/3xx (redirects are never followed) and the remaining 4xx.
  return { kind: 'reject' };
}

const describeResponse = (res: WebhookResponse): string =>
  `HTTP ${res.status}${res.body.trim() ? `: ${res.body.trim()}` : ''}`;

/** Webhook delivery activities (task queue `webhooks`). */
export function createWebhookActivities(deps: WebhookActivityDeps) {
  const { db } = deps;
  const now = deps.now ?? (() => new Date());
  const count = (outcome: WebhookDeliveryOutcome) => deps.deliveries?.inc({ outcome });

  /** Counts the attempt in the delivery log; the row is keyed by the stable webhook id. */
  async function recordAttempt(
    key: DeliverWebhookInput & { webhookId: string },
    outcome: { status: number | null; error: string | null; delivered: boolean },
  ): Promise<void> {
    const result = {
      lastStatus: outcome.status,
      lastError: outcome.error,
      ...(outcome.delivered ? { deliveredAt: now() } : {}),
    };
    await db.webhookDelivery.upsert({
      where: { webhookId: key.webhookId },
      create: {
        webhookId: key.webhookId,
        orderId: key.orderId,
        endpointId: key.endpointId,
        eventType: key.eventType,
        attempts: 1,
        ...result,
      },
      update: { attempts: { increment: 1 }, ...result },
    });
  }

  /**
   * Waits for this send's turn at the rate gate. A turn further away than this
   * attempt could wait and still finish its request is not taken: the attempt
   * is retried when the gate is free again (nextRetryDelay).
   */
  async function awaitSendSlot(
    key: DeliverWebhookInput & { webhookId: string },
    waitUntil: number,
  ): Promise<(() => boolean) | undefined> {
    if (!deps.rateGate) return undefined;
    const ctx = Context.current();
    const turn = await deps.rateGate.acquire({
      maxWaitMs: Math.max(0, waitUntil - Date.now()),
      sleep: (ms) => ctx.sleep(ms),
    });
    if (turn.kind === 'busy') {
      count('throttled');
      throw failure(
        FailureType.WebhookThrottled,
        `Webhook rate limit (${deps.rateGate.ratePerSecond}/s): no send time free within this attempt; next in ${turn.busyForMs} ms`,
        false,
        Math.max(turn.busyForMs, 1),
      );
    }
    if (turn.waitedMs >= 1000 || turn.late > 0)
      log.info('webhook waited for the rate limit', {
        ...key,
        waitedMs: Math.round(turn.waitedMs),
        lateWakeUps: turn.late,
      });
    return turn.onTime;
  }

  /**
   * One POST. A network failure or timeout is counted and recorded, and thrown
   * as the attempt's failure; a SendTimeMissedError (nothing sent) is thrown as it is.
   */
  async function send(
    key: DeliverWebhookInput & { webhookId: string },
    req: Pick<WebhookRequest, 'url' | 'headers' | 'body' | 'onTime'>,
  ): Promise<WebhookResponse> {
    const { orderId, webhookId, endpointId } = key;
    try {
      return await postWebhook({
        ...req,
        timeoutMs: deps.timeoutMs,
        policy: deps.allowedTargets,
        signal: Context.current().cancellationSignal,
      });
    } catch (err) {
      if (err instanceof SendTimeMissedError) throw err;
      const message = err instanceof Error ? err.message : String(err);
      await recordAttempt(key, { status: null, error: message, delivered: false });
      log.warn('webhook not delivered', { orderId, webhookId, endpointId, error: message });
      const permanent = err instanceof TargetForbiddenError || err instanceof TypeError;
      count(permanent ? 'permanent_failure' : 'retryable_failure');
      if (err instanceof TargetForbiddenError)
        throw failure(FailureType.TargetForbidden, message, true);
      if (err instanceof TypeError) throw failure(FailureType.WebhookRejected, message, true);
      const what = err instanceof DeliveryTimeoutError ? 'timed out' : 'failed';
      throw failure(FailureType.WebhookUnavailable, `Webhook POST ${what}: ${message}`, false);
    }
  }

  return {
    /**
     * POSTs the order's event to one endpoint, signed per Standard Webhooks.
     * The webhook-id and body are the same on every attempt; the timestamp
     * and signature are per attempt. A delivered webhook is not sent again.
     */
    deliverWebhook(input: DeliverWebhookInput): Promise<DeliverWebhookResult> {
      return withHeartbeats(() => deliver(input));
    },

    /** Ids of the enabled endpoints subscribed to the event type, sorted: the order's fan-out. */
    async webhookTargets(input: { orderId: string; eventType: string }): Promise<string[]> {
      const rows = await db.webhookEndpoint.findMany({
        where: { status: 'ENABLED', eventTypes: { has: input.eventType } },
        select: { id: true },
        orderBy: { id: 'asc' },
      });
      log.info('webhook targets', { orderId: input.orderId, count: rows.length });
      return rows.map((r) => r.id);
    },
  };

  /**
   * One attempt of deliverWebhook. An `order.placed` attempt sends nothing once
   * the order is cancelled: it checks the attempt and the row right before sending.
   */
  async function deliver(input: DeliverWebhookInput): Promise<DeliverWebhookResult> {
    const { orderId, endpointId, eventType } = input;
    if (eventType !== ORDER_PLACED && eventType !== ORDER_CANCELLED)
      throw ApplicationFailure.nonRetryable(`Unknown event type ${eventType}`, 'UnknownEventType');
    const placed = eventType === ORDER_PLACED;
    const eventId = placed ? orderPlacedEventId(orderId) : orderCancelledEventId(orderId);
    const webhookId = webhookMessageId(eventId, endpointId);
    const key = { ...input, webhookId };

    const order = await loadOrder(db, orderId);
    const previous = await db.webhookDelivery.findUnique({ where: { webhookId } });
    if (previous?.deliveredAt) {
      log.info('webhook already delivered', { orderId, webhookId, endpointId });
      count('duplicate');
      return { webhookId, status: previous.lastStatus ?? 200, alreadyDelivered: true };
    }
    const endpoint = await db.webhookEndpoint.findUnique({ where: { id: endpointId } });
    if (!endpoint || endpoint.status !== 'ENABLED') {
      count('skipped');
      throw failure(
        FailureType.EndpointDisabled,
        `Webhook endpoint ${endpointId} is ${endpoint ? 'disabled' : 'deleted'}`,
        true,
      );
    }

    const payload = JSON.stringify(
      placed
        ? {
            type: eventType,
            timestamp: order.createdAt.toISOString(),
            data: orderPlacedData(order),
          }
        : {
            type: eventType,
            timestamp: order.updatedAt.toISOString(),
            data: orderCancelledData(order, order.lastError ?? 'cancelled'),
          },
    );
    let res: WebhookResponse | undefined;
    let attemptAt = now();
    // The latest send that still leaves the request its whole timeout within this attempt.
    const waitUntil =
      Date.now() + Context.current().info.startToCloseTimeoutMs - deps.timeoutMs - 1000;
    // Each pass takes a send time; a connection that came up too late for it sent nothing.
    for (let missed = 0; !res; missed++) {
      const onTime = await awaitSendSlot(key, waitUntil);
      // The send time may have been seconds away: a cancel meanwhile stops the attempt here.
      if (placed) {
        ensureNotCancelledByTemporal();
        await ensureNotCancelled(db, orderId);
      }
      // Standard Webhooks: the timestamp is this attempt's, so receivers' replay windows hold.
      attemptAt = now();
      const headers = {
        'webhook-id': webhookId,
        'webhook-timestamp': String(Math.floor(attemptAt.getTime() / 1000)),
        'webhook-signature': new Webhook(endpoint.secret).sign(webhookId, attemptAt, payload),
        'content-type': 'application/json',
        'user-agent': WEBHOOK_USER_AGENT,
      };
      res = await send(key, { url: endpoint.url, headers, body: payload, onTime }).catch(
        (err: unknown) => {
          if (!(err instanceof SendTimeMissedError)) throw err;
          if (missed + 1 >= MAX_MISSED_SEND_TIMES) {
            count('throttled');
            throw failure(
              FailureType.WebhookThrottled,
              `Webhook rate limit: the connection came up too late for ${MAX_MISSED_SEND_TIMES} send times in a row; nothing sent`,
              false,
            );
          }
          return undefined;
        },
      );
    }

    const verdict = verdictOf(res, attemptAt);
    const delivered = verdict.kind === 'delivered';
    await recordAttempt(key, {
      status: res.status,
      error: delivered ? null : describeResponse(res),
      delivered,
    });
    log.info(delivered ? 'webhook delivered' : 'webhook refused', {
      orderId,
      webhookId,
      endpointId,
      status: res.status,
    });
    count(
      (
        {
          delivered: 'delivered',
          gone: 'gone',
          retry: 'retryable_failure',
          reject: 'permanent_failure',
        } as const
      )[verdict.kind],
    );
    const refused = `Webhook endpoint ${endpointId} answered ${describeResponse(res)}`;
    switch (verdict.kind) {
      case 'delivered':
        return { webhookId, status: res.status, alreadyDelivered: false };
      case 'gone':
        await db.webhookEndpoint.updateMany({
          where: { id: endpointId },
          data: {
            status: 'DISABLED',
            disabledReason: `answered 410 Gone at ${attemptAt.toISOString()} (webhook ${webhookId})`,
          },
        });
        throw failure(FailureType.EndpointGone, refused, true);
      case 'retry':
        throw failure(FailureType.WebhookUnavailable, refused, false, verdict.nextRetryDelayMs);
      case 'reject':
        throw failure(FailureType.WebhookRejected, refused, true);
    }
  }
}

export type WebhookActivities = ReturnType<typeof createWebhookActivities>;
