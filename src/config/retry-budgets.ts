/**
 * The one owner of the retry budgets (RETRY_EMAIL, RETRY_WEBHOOKS,
 * RETRY_EVENTS): their parsing, and the check, at start-up, that an attempt
 * has room for the timeouts it must cover. The processes that start workflows
 * (the API, the relay) fix the budgets into each workflow's input; the workers
 * whose timeouts an attempt must hold (WEBHOOK_TIMEOUT_MS) check them too, so
 * a configuration in which they do not fit stops every process that reads
 * either, with a message naming both variables.
 */
import { z } from 'zod';
import {
  defaultRetryPolicies,
  type RetryPolicies,
  type StepName,
  type StepRetryPolicy,
} from '../shared/steps.ts';
import { invalidConfiguration, parseDuration } from './parsing.ts';

const retryKeys: Record<string, keyof StepRetryPolicy> = {
  initial: 'initialIntervalMs',
  backoff: 'backoffCoefficient',
  max: 'maximumIntervalMs',
  attempts: 'maximumAttempts',
  total: 'totalTimeoutMs',
  attempt: 'attemptTimeoutMs',
};

/**
 * A step's retry budget, e.g. RETRY_WEBHOOKS="initial=5s,backoff=2,max=10m,attempts=0,total=1h,attempt=30s";
 * keys left out keep their defaults.
 */
const retryBudget = (step: StepName) =>
  z
    .string()
    .optional()
    .transform((text, ctx): StepRetryPolicy => {
      const policy = { ...defaultRetryPolicies[step] };
      for (const part of (text ?? '').split(',').filter((p) => p.trim())) {
        const [k = '', v = ''] = part.split('=').map((x) => x.trim());
        const field = retryKeys[k];
        const value = k === 'backoff' || k === 'attempts' ? Number(v) : parseDuration(v);
        if (!field || value === undefined || !Number.isFinite(value) || value < 0) {
          ctx.addIssue({
            code: 'custom',
            message: `"${part}" is not one of ${Object.keys(retryKeys).join('|')}=<value>`,
          });
          return policy;
        }
        policy[field] = value;
      }
      if (policy.backoffCoefficient < 1)
        ctx.addIssue({ code: 'custom', message: 'backoff must be >= 1' });
      return policy;
    });

/** The retry budget variables, for the environment schema (env.ts parses them with the rest). */
export const retryBudgetVariables = {
  RETRY_EMAIL: retryBudget('email'),
  RETRY_WEBHOOKS: retryBudget('webhooks'),
  RETRY_EVENTS: retryBudget('events'),
};

/**
 * Room an attempt of a webhook delivery needs besides its request (WEBHOOK_TIMEOUT_MS): reading
 * the order and the endpoint and taking a send time before it, recording the outcome after it
 * (the activity keeps the last second of the attempt for that).
 */
export const WEBHOOK_ATTEMPT_MARGIN_MS = 2000;

/** The parsed variables the budgets are checked with (a Config holds them). */
export interface RetryBudgetSettings {
  RETRY_EMAIL: StepRetryPolicy;
  RETRY_WEBHOOKS: StepRetryPolicy;
  RETRY_EVENTS: StepRetryPolicy;
  WEBHOOK_TIMEOUT_MS: number;
}

/** What does not fit, one line per problem, each naming the variables involved. */
export function retryBudgetIssues(c: RetryBudgetSettings): string[] {
  const attempt = c.RETRY_WEBHOOKS.attemptTimeoutMs;
  const needed = c.WEBHOOK_TIMEOUT_MS + WEBHOOK_ATTEMPT_MARGIN_MS;
  if (attempt >= needed) return [];
  return [
    `RETRY_WEBHOOKS: attempt=${attempt}ms cannot hold a webhook request of WEBHOOK_TIMEOUT_MS=${c.WEBHOOK_TIMEOUT_MS} ` +
      `plus ${WEBHOOK_ATTEMPT_MARGIN_MS} ms around it: give RETRY_WEBHOOKS attempt=${needed}ms or more, or lower WEBHOOK_TIMEOUT_MS`,
  ];
}

function assertRetryBudgetsFit(c: RetryBudgetSettings): void {
  const issues = retryBudgetIssues(c);
  if (issues.length) throw invalidConfiguration(issues);
}

/**
 * The retry budgets of all steps, as each workflow start carries them (the API, the relay);
 * throws a ConfigError when they do not fit the timeouts they must cover.
 */
export function retryBudgetsOf(c: RetryBudgetSettings): RetryPolicies {
  assertRetryBudgetsFit(c);
  return { email: c.RETRY_EMAIL, webhooks: c.RETRY_WEBHOOKS, events: c.RETRY_EVENTS };
}

/**
 * WEBHOOK_TIMEOUT_MS for the workers that deliver webhooks; throws a ConfigError when an attempt
 * of RETRY_WEBHOOKS cannot hold it.
 */
export function webhookTimeoutOf(c: RetryBudgetSettings): number {
  assertRetryBudgetsFit(c);
  return c.WEBHOOK_TIMEOUT_MS;
}
