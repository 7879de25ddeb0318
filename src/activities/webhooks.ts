import { ApplicationFailure, Context, log } from '@temporalio/activity';
import { STATUS_CODES } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { WEBHOOK_DISABLE_AFTER_FAILURES_DEFAULT } from '../config/env.ts';
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
  bodyForLog,
  parseRetryAfter,
  postWebhook,
  type WebhookRequest,
  type WebhookResponse,
} from '../webhooks/http-delivery.ts';
import type { RateGate } from '../webhooks/rate-gate.ts';
import { TargetForbiddenError, type Resolver, type TargetPolicy } from '../webhooks/ssrf-guard.ts';

export const WEBHOOK_USER_AGENT = 'orderflow-webhooks/0.1';
/** Send times one attempt may miss (its connection came up too late) before it is retried later. */
const MAX_MISSED_SEND_TIMES = 5;

export interface WebhookActivityDeps {
  db: Db;
  /** One attempt's whole HTTP exchange. */
  timeoutMs: number;
  allowedTargets: TargetPolicy;
  /** DNS for the guarded lookup at connect time (default: the system's). */
  resolve?: Resolver;
  /** Permanent failures in a row after which an endpoint is disabled (WEBHOOK_DISABLE_AFTER_FAILURES). */
  disableAfterFailures?: number;
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
  | 'disabled'
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
export type Verdict =
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

const VERDICT_TEXT: Record<Verdict['kind'], string> = {
  delivered: 'delivered',
  gone: 'gone, endpoint disabled',
  retry: 'receiver unavailable, retried',
  reject: 'rejected, not retried',
};

/**
 * What the delivery log and the order's error say about a response: its
 * status, the standard reason phrase and the verdict. Never the receiver's
 * body or reason phrase, which an API caller must not read.
 */
export function describeResponse(status: number, verdict: Verdict['kind']): string {
  const reason = STATUS_CODES[status];
  const what =
    verdict === 'reject' && status >= 300 && status < 400
      ? 'redirect not followed, not retried'
      : VERDICT_TEXT[verdict];
  return `HTTP ${status}${reason ? ` ${reason}` : ''} (${what})`;
}

/** A failed request in a line of our own words (the error's code), never the peer's text. */
function describeSendError(err: unknown): string {
  // Our own messages: the SSRF guard's verdict, a bad URL, the deadline.
  if (
    err instanceof TargetForbiddenError ||
    err instanceof TypeError ||
    err instanceof DeliveryTimeoutError
  )
    return err.message;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code) return `network error (${code})`;
  return `network error: ${bodyForLog(err instanceof Error ? err.message : String(err))}`;
}

/** Webhook delivery activities (task queue `webhooks`). */
export function createWebhookActivities(deps: WebhookActivityDeps) {
  const { db } = deps;
  const now = deps.now ?? (() => new Date());
  const disableAfter = deps.disableAfterFailures ?? WEBHOOK_DISABLE_AFTER_FAILURES_DEFAULT;
  const count = (outcome: WebhookDeliveryOutcome) => deps.deliveries?.inc({ outcome });

  /**
   * Counts a permanent failure against the endpoint and disables it at
   * `disableAfter` in a row, so one broken subscriber parks a bounded number
   * of orders. Returns whether the endpoint is now disabled (or deleted): the
   * order then skips it instead of parking.
   */
  async function countPermanentFailure(
    key: DeliverWebhookInput & { webhookId: string },
    why: string,
  ): Promise<{ disabled: boolean; disabledNow: boolean }> {
    const { endpointId } = key;
    const { count: found } = await db.webhookEndpoint.updateMany({
      where: { id: endpointId },
      data: { consecutiveFailures: { increment: 1 } },
    });
    const row =
      found > 0
        ? await db.webhookEndpoint.findUnique({
            where: { id: endpointId },
            select: { status: true, consecutiveFailures: true },
          })
        : null;
    if (!row) return { disabled: true, disabledNow: false };
    if (row.status !== 'ENABLED') return { disabled: true, disabledNow: false };
    if (row.consecutiveFailures < disableAfter) return { disabled: false, disabledNow: false };
    const at = now();
    const { count: disabledNow } = await db.webhookEndpoint.updateMany({
      where: { id: endpointId, status: 'ENABLED' },
      data: {
        status: 'DISABLED',
        disabledAt: at,
        disabledReason: `${row.consecutiveFailures} permanent failures in a row; the last at ${at.toISOString()} (webhook ${key.webhookId}): ${why}`,
      },
    });
    if (disabledNow > 0)
      log.warn('webhook endpoint disabled after permanent failures in a row', {
        ...key,
        consecutiveFailures: row.consecutiveFailures,
        lastFailure: why,
      });
    return { disabled: true, disabledNow: disabledNow > 0 };
  }

  /**
   * Ends an attempt that failed for good: counted against the endpoint, and
   * thrown as `type`, or as EndpointDisabled once that disabled the endpoint.
   */
  async function failPermanently(
    key: DeliverWebhookInput & { webhookId: string },
    type: FailureType,
    message: string,
    why: string,
  ): Promise<never> {
    const { disabled, disabledNow } = await countPermanentFailure(key, why);
    count(disabledNow ? 'disabled' : 'permanent_failure');
    if (disabled)
      throw failure(
        FailureType.EndpointDisabled,
        disabledNow
          ? `${message}; the endpoint is disabled after ${disableAfter} permanent failures in a row`
          : `${message}; the endpoint is disabled or deleted`,
        true,
      );
    throw failure(type, message, true);
  }

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
      maxWaitMs: Math.max(0, waitUntil - now().getTime()),
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
   * One POST. A network failure or timeout is recorded and thrown as the
   * attempt's failure (a refused target or bad URL for good, counted against
   * the endpoint); a SendTimeMissedError (nothing sent) is thrown as it is.
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
        ...(deps.resolve ? { resolve: deps.resolve } : {}),
        signal: Context.current().cancellationSignal,
      });
    } catch (err) {
      if (err instanceof SendTimeMissedError) throw err;
      const message = describeSendError(err);
      await recordAttempt(key, { status: null, error: message, delivered: false });
      log.warn('webhook not delivered', { orderId, webhookId, endpointId, error: message });
      if (err instanceof TargetForbiddenError)
        return failPermanently(key, FailureType.TargetForbidden, message, message);
      if (err instanceof TypeError)
        return failPermanently(key, FailureType.WebhookRejected, message, message);
      count('retryable_failure');
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
   * One attempt of deliverWebhook, in three parts: prepare (what to send, or
   * nothing when it was delivered already), send at its turn (the rate gate),
   * settle (the receiver's answer: recorded, counted, the endpoint's state).
   */
  async function deliver(input: DeliverWebhookInput): Promise<DeliverWebhookResult> {
    const prepared = await prepare(input);
    if ('result' in prepared) return prepared.result;
    const { response, sentAt } = await sendAtItsTurn(prepared);
    return settle(prepared, response, sentAt);
  }

  /** The delivery to make: key, endpoint and body; or the result of an earlier delivery. */
  async function prepare(
    input: DeliverWebhookInput,
  ): Promise<{ result: DeliverWebhookResult } | PreparedDelivery> {
    const { orderId, endpointId, eventType } = input;
    if (eventType !== ORDER_PLACED && eventType !== ORDER_CANCELLED)
      throw failure(FailureType.UnknownEventType, `Unknown event type ${eventType}`, true);
    const placed = eventType === ORDER_PLACED;
    const eventId = placed ? orderPlacedEventId(orderId) : orderCancelledEventId(orderId);
    const webhookId = webhookMessageId(eventId, endpointId);
    const key = { ...input, webhookId };

    const order = await loadOrder(db, orderId);
    const previous = await db.webhookDelivery.findUnique({ where: { webhookId } });
    if (previous?.deliveredAt) {
      log.info('webhook already delivered', { orderId, webhookId, endpointId });
      count('duplicate');
      return { result: { webhookId, status: previous.lastStatus ?? 200, alreadyDelivered: true } };
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
    const body = JSON.stringify(
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
    return { key, endpoint, body, cancellable: placed };
  }

  /**
   * POSTs at the next send time the rate gate gives. A connection that came up
   * too late for its send time sent nothing: the attempt takes another, at most
   * MAX_MISSED_SEND_TIMES in all. An `order.placed` delivery checks right before
   * each send that the order was not cancelled meanwhile.
   */
  async function sendAtItsTurn({ key, endpoint, body, cancellable }: PreparedDelivery) {
    // The latest send that still leaves the request its whole timeout within this attempt.
    const waitUntil =
      now().getTime() + Context.current().info.startToCloseTimeoutMs - deps.timeoutMs - 1000;
    for (let missed = 0; ; missed++) {
      const onTime = await awaitSendSlot(key, waitUntil);
      if (cancellable) {
        ensureNotCancelledByTemporal();
        await ensureNotCancelled(db, key.orderId);
      }
      // Standard Webhooks: the timestamp is this attempt's, so receivers' replay windows hold.
      const sentAt = now();
      const headers = {
        'webhook-id': key.webhookId,
        'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
        'webhook-signature': new Webhook(endpoint.secret).sign(key.webhookId, sentAt, body),
        'content-type': 'application/json',
        'user-agent': WEBHOOK_USER_AGENT,
      };
      try {
        return { response: await send(key, { url: endpoint.url, headers, body, onTime }), sentAt };
      } catch (err) {
        if (!(err instanceof SendTimeMissedError)) throw err;
        if (missed + 1 >= MAX_MISSED_SEND_TIMES) {
          count('throttled');
          throw failure(
            FailureType.WebhookThrottled,
            `Webhook rate limit: the connection came up too late for ${MAX_MISSED_SEND_TIMES} send times in a row; nothing sent`,
            false,
          );
        }
      }
    }
  }

  /** The receiver's answer: recorded and counted; a 410 disables the endpoint, a refusal counts against it. */
  async function settle(
    { key, endpoint }: PreparedDelivery,
    res: WebhookResponse,
    sentAt: Date,
  ): Promise<DeliverWebhookResult> {
    const { orderId, webhookId, endpointId } = key;
    const verdict = verdictOf(res, sentAt);
    const delivered = verdict.kind === 'delivered';
    const outcome = describeResponse(res.status, verdict.kind);
    await recordAttempt(key, { status: res.status, error: delivered ? null : outcome, delivered });
    if (verdict.kind === 'delivered') {
      log.info('webhook delivered', { orderId, webhookId, endpointId, status: res.status });
      count('delivered');
      // A success ends a run of permanent failures.
      if (endpoint.consecutiveFailures > 0)
        await db.webhookEndpoint.updateMany({
          where: { id: endpointId, consecutiveFailures: { gt: 0 } },
          data: { consecutiveFailures: 0 },
        });
      return { webhookId, status: res.status, alreadyDelivered: false };
    }
    // The body is the receiver's: logged truncated and sanitized, never stored or returned.
    log.warn('webhook refused', {
      orderId,
      webhookId,
      endpointId,
      status: res.status,
      verdict: verdict.kind,
      body: bodyForLog(res.body),
    });
    const refused = `Webhook endpoint ${endpointId} answered ${outcome}`;
    switch (verdict.kind) {
      case 'gone':
        count('gone');
        await db.webhookEndpoint.updateMany({
          where: { id: endpointId },
          data: {
            status: 'DISABLED',
            disabledAt: sentAt,
            disabledReason: `answered 410 Gone at ${sentAt.toISOString()} (webhook ${webhookId})`,
          },
        });
        throw failure(FailureType.EndpointGone, refused, true);
      case 'retry':
        count('retryable_failure');
        throw failure(FailureType.WebhookUnavailable, refused, false, verdict.nextRetryDelayMs);
      case 'reject':
        return failPermanently(key, FailureType.WebhookRejected, refused, outcome);
    }
  }
}

/** A delivery ready to send: its key, the endpoint as read, and the body signed on each try. */
interface PreparedDelivery {
  key: DeliverWebhookInput & { webhookId: string };
  endpoint: { url: string; secret: string; consecutiveFailures: number };
  body: string;
  /** An `order.placed` delivery stops when the order is cancelled before it is sent. */
  cancellable: boolean;
}

export type WebhookActivities = ReturnType<typeof createWebhookActivities>;
