/**
 * The steps of an order's workflow, their retry budgets and the failure types
 * activities raise. Imported by workflow code: no Node.js modules here.
 */

export const STEPS = ['email', 'webhooks', 'events'] as const;
export type StepName = (typeof STEPS)[number];

/** One step's retry budget (Temporal retry policy plus a total time limit). */
export interface StepRetryPolicy {
  initialIntervalMs: number;
  backoffCoefficient: number;
  maximumIntervalMs: number;
  /** 0 = no limit on attempts (the total time still bounds them). */
  maximumAttempts: number;
  /** All attempts together (the activity's schedule-to-close timeout). */
  totalTimeoutMs: number;
  /** One attempt. */
  attemptTimeoutMs: number;
}

export type RetryPolicies = Record<StepName, StepRetryPolicy>;

const SECOND = 1000;
const MINUTE = 60 * SECOND;

/**
 * Defaults that suit each peer: an SMTP relay is back within minutes, a
 * subscriber's webhook receiver may be down for an hour, the Kafka cluster
 * fails over in seconds to minutes.
 */
export const defaultRetryPolicies: RetryPolicies = {
  email: {
    initialIntervalMs: 2 * SECOND,
    backoffCoefficient: 2,
    maximumIntervalMs: 2 * MINUTE,
    maximumAttempts: 12,
    totalTimeoutMs: 15 * MINUTE,
    attemptTimeoutMs: 30 * SECOND,
  },
  webhooks: {
    initialIntervalMs: 5 * SECOND,
    backoffCoefficient: 2,
    maximumIntervalMs: 10 * MINUTE,
    maximumAttempts: 0,
    totalTimeoutMs: 60 * MINUTE,
    attemptTimeoutMs: 30 * SECOND,
  },
  events: {
    initialIntervalMs: 1 * SECOND,
    backoffCoefficient: 2,
    maximumIntervalMs: 30 * SECOND,
    maximumAttempts: 0,
    totalTimeoutMs: 10 * MINUTE,
    attemptTimeoutMs: 30 * SECOND,
  },
};

/** ApplicationFailure types raised by activities; all but the transient ones are non-retryable. */
export const FailureType = {
  /** The order row is gone (deleted by an operator). */
  OrderNotFound: 'OrderNotFound',
  /** The order was cancelled before this attempt sent anything; nothing is sent. */
  OrderCancelled: 'OrderCancelled',
  /** The SMTP server refused the message or recipient for good (5xx). */
  SmtpRejected: 'SmtpRejected',
  /** The recipient address cannot receive mail. */
  InvalidAddress: 'InvalidAddress',
  /** A transient SMTP failure (4xx, connection); retried. */
  SmtpUnavailable: 'SmtpUnavailable',
  /** The receiver answered 4xx (not 408/429/410); not retried. */
  WebhookRejected: 'WebhookRejected',
  /** The receiver answered 410 Gone: the endpoint is disabled. */
  EndpointGone: 'EndpointGone',
  /** The endpoint was disabled or deleted before delivery. */
  EndpointDisabled: 'EndpointDisabled',
  /** The URL resolves to an address the SSRF guard refuses. */
  TargetForbidden: 'TargetForbidden',
  /** 408, 429, 5xx or a network error; retried (after Retry-After when given). */
  WebhookUnavailable: 'WebhookUnavailable',
  /** The webhook rate limit has no free send time within this attempt; retried when it has. */
  WebhookThrottled: 'WebhookThrottled',
  /** A delivery for an event type orderflow does not send (a workflow/worker version mismatch). */
  UnknownEventType: 'UnknownEventType',
  /** The topic does not exist and cannot be created. */
  UnknownTopic: 'UnknownTopic',
  /** The broker did not acknowledge; retried. */
  KafkaUnavailable: 'KafkaUnavailable',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Event type of a placed order, for webhooks and Kafka alike. */
export const ORDER_PLACED = 'order.placed';

/** Event type of a cancelled order (after its processing began), so subscribers can undo. */
export const ORDER_CANCELLED = 'order.cancelled';
