/**
 * How an accepted order's workflow start is handed on: the intake statement
 * writes a pending start to the outbox (workflow_starts), and a relay, in the
 * API or in its own process, starts the workflow from it. Constants only, so
 * the configuration, the API, the relay and the benchmarks share them.
 */

/**
 * When the API starts an order's workflow (WORKFLOW_START_MODE). async: answers at the
 * commit and starts it right after, in the API process; inline: starts it before answering;
 * relay: answers at the commit and leaves the start to the relay process.
 */
export const WORKFLOW_START_MODES = ['async', 'inline', 'relay'] as const;
export type WorkflowStartMode = (typeof WORKFLOW_START_MODES)[number];

/**
 * How long a new order's start is left to the API process (async, inline) before a relay's
 * sweep may take it; 0 where a relay process does all the starting.
 */
export const WORKFLOW_START_GRACE_MS = 3000;

/** The channel the intake statement notifies (pg_notify) and the relay listens on. */
export const OUTBOX_CHANNEL = 'orderflow_outbox';
