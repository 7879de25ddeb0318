/**
 * An operator retries a parked order from the Temporal Web UI, in a real
 * headless Chromium (Debian's, provisioned by scripts/setup.sh) driven by
 * playwright-core: the order parks for real (its subscriber answers 503 for the
 * whole webhook retry budget), the operator filters the workflow list with
 * `OrderStatus="Parked"`, opens the workflow, fixes nothing in the UI but the
 * receiver comes back, and sends the `retry` signal from "More Actions" →
 * "Send a Signal"; the API then reports the order COMPLETED.
 *
 * Screenshots of each step go to test-results/browser/web-ui-retry/<run>/
 * (git-ignored; paths are printed). On a failure the step's screenshot and page
 * HTML are saved there too. UPDATE_DOCS_SCREENSHOTS=1 also refreshes the
 * README's docs/images/web-ui-parked-order.png (the filtered list).
 */
import { Client, Connection } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DEBIAN_CHROMIUM, chromiumPath } from '../../scripts/lib/tools.ts';
import { cancelSignal, retrySignal } from '../../src/shared/messages.ts';
import { defaultRetryPolicies, type RetryPolicies } from '../../src/shared/steps.ts';
import { ORDER_STATUS_SEARCH_ATTRIBUTE, orderWorkflowId } from '../../src/shared/task-queues.ts';
import { postOrder, validOrder, waitForOrderStatus, type TestApi } from '../support/api.ts';
import { startInlineApp } from '../support/inline-app.ts';
import type { startOrdersWorker } from '../support/orders-worker.ts';
import { subscribeAlone, type Subscriber } from '../e2e/subscriber.ts';

const stack = inject('stack');
const projectRoot = path.resolve(import.meta.dirname, '../..');
const PARKED_QUERY = `${ORDER_STATUS_SEARCH_ATTRIBUTE}="Parked"`;
const DOCS_SCREENSHOT = path.join(projectRoot, 'docs/images/web-ui-parked-order.png');
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** Bounded waits in the browser: a busy two-core machine renders slowly, but not this slowly. */
const UI_TIMEOUT_MS = 20_000;

/** Two quick attempts per delivery: with the receiver down for both, the order parks in about a second. */
const retryPolicies: RetryPolicies = {
  ...defaultRetryPolicies,
  webhooks: {
    initialIntervalMs: 200,
    backoffCoefficient: 1,
    maximumIntervalMs: 200,
    maximumAttempts: 2,
    totalTimeoutMs: 30_000,
    attemptTimeoutMs: 5_000,
  },
};

const artifacts = path.join(
  projectRoot,
  'test-results/browser/web-ui-retry',
  new Date().toISOString().replace(/[:.]/g, '-'),
);
const saved: string[] = [];
/** How long each phase took, printed at the end (the machine is shared; this shows where time went). */
const timings: string[] = [];

let api: TestApi;
let worker: Awaited<ReturnType<typeof startOrdersWorker>>;
let subscriber: Subscriber | undefined;
let connection: Connection;
let temporal: Client;
let browser: BrowserContext | undefined;
let userDataDir: string | undefined;
let page: Page;
const created: string[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls GET /orders/{id} (bounded) until the order has `status`. */
const waitForStatus = (id: string, status: string) => waitForOrderStatus(api.url, id, status);

/** Polls (bounded) until Temporal visibility lists the workflow as parked: what the UI's list reads. */
async function waitUntilListedParked(workflowId: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const query = `WorkflowId="${workflowId}" AND ${PARKED_QUERY}`;
  while ((await temporal.workflow.count(query)).count !== 1) {
    if (Date.now() > deadline) throw new Error(`visibility does not list ${workflowId} as Parked`);
    await sleep(200);
  }
}

async function screenshot(name: string): Promise<string> {
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({ path: file });
  saved.push(file);
  return file;
}

/** Waits until the workflow page's status badge reads `status`. */
async function statusShown(status: 'Running' | 'Completed'): Promise<void> {
  await page
    .getByRole('status')
    .filter({ hasText: new RegExp(`^\\s*${status}\\s*$`, 'i') })
    .first()
    .waitFor();
}

/** Runs one UI step; when it fails, keeps a screenshot and the page's HTML for diagnosis. */
async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    const result = await fn();
    timings.push(`${name} ${Math.round(performance.now() - started)} ms`);
    return result;
  } catch (e) {
    const base = path.join(artifacts, `failed-${name}`);
    const kept: string[] = [];
    try {
      await page.screenshot({ path: `${base}.png`, fullPage: true });
      kept.push(`${base}.png`);
      fs.writeFileSync(`${base}.html`, await page.content());
      kept.push(`${base}.html`);
    } catch {
      /* the page itself is gone; the error says why */
    }
    const where = kept.length ? ` (kept ${kept.join(', ')})` : '';
    throw new Error(`step "${name}" failed at ${page.url()}${where}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Signals the workflow's history received, by name (the proof the UI sent `retry`). */
async function signalsReceived(workflowId: string): Promise<string[]> {
  const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).flatMap((e) => {
    const name = e.workflowExecutionSignaledEventAttributes?.signalName;
    return name ? [name] : [];
  });
}

beforeAll(async () => {
  const executablePath = chromiumPath();
  if (!executablePath) {
    throw new Error(
      `no Chromium for the Web UI test: ${process.env.CHROMIUM_PATH ? `CHROMIUM_PATH=${process.env.CHROMIUM_PATH} is not an executable file` : `${DEBIAN_CHROMIUM} is missing`}. ` +
        'Fix: run `bash scripts/setup.sh` as root (it runs `apt-get install chromium`), or set CHROMIUM_PATH to a Chromium or Chrome binary.',
    );
  }
  fs.mkdirSync(artifacts, { recursive: true });

  // Inline starts and no relay sweep: this file starts exactly the workflows it creates.
  ({ api, worker } = await startInlineApp(stack, { retryPolicies }));
  connection = await Connection.connect({ address: stack.TEMPORAL_ADDRESS });
  temporal = new Client({ connection });
  subscriber = await subscribeAlone(api);

  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-chromium-'));
  browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 800 },
    timezoneId: 'UTC',
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(UI_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(UI_TIMEOUT_MS);
});

afterAll(async () => {
  // Leave no running workflow behind: a parked order of ours would outlive the endpoint.
  for (const id of created) {
    await temporal?.workflow
      .getHandle(orderWorkflowId(id))
      .signal(cancelSignal, 'browser test cleanup')
      .catch(() => undefined);
  }
  await browser?.close();
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  await subscriber?.close();
  await worker?.stop();
  await api?.close();
  await connection?.close();
  if (saved.length) console.log(`Web UI screenshots:\n  ${saved.join('\n  ')}`);
  if (timings.length) console.log(`Phases: ${timings.join(', ')}`);
});

describe('Temporal Web UI', () => {
  it('lists a parked order under OrderStatus="Parked", and its `retry` signal sent from the UI completes it', async () => {
    const receiver = subscriber!.receiver;
    // The subscriber is down: every delivery attempt gets a 503, so the order parks.
    receiver.respondWith(
      ...Array.from({ length: 20 }, () => ({ status: 503, body: 'receiver down' })),
    );
    const placed = await postOrder(api.url, {
      ...validOrder(),
      customerEmail: `web-ui-${randomUUID()}@example.com`,
    });
    expect(placed.status, JSON.stringify(placed.body)).toBe(201);
    const orderId = placed.body.id as string;
    created.push(orderId);
    const workflowId = orderWorkflowId(orderId);

    const parked = await step('park', async () => {
      const order = await waitForStatus(orderId, 'PARKED');
      await waitUntilListedParked(workflowId);
      return order;
    });
    expect(parked).toMatchObject({ failedStep: 'webhooks' });
    expect(receiver.requests).toHaveLength(retryPolicies.webhooks.maximumAttempts);

    await step('filter-parked', async () => {
      await page.goto(`${stack.TEMPORAL_UI_URL}/namespaces/default/workflows`);
      // The list's raw-query box is behind the "View raw query" toggle (an icon without a label).
      const toggle = page.getByTestId('toggle-manual-query');
      const queryBox = page.getByRole('searchbox', { name: 'Enter a query' });
      await toggle.waitFor();
      if (!(await queryBox.isVisible())) await toggle.click();
      await queryBox.fill(PARKED_QUERY);
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      await expect
        .poll(() => new URL(page.url()).searchParams.get('query'), { timeout: UI_TIMEOUT_MS })
        .toBe(PARKED_QUERY);
      await page.getByRole('link', { name: workflowId, exact: true }).waitFor();
      // Only parked orders are listed: each row's workflow id must be one visibility calls Parked.
      const listed = await page
        .getByRole('table', { name: 'Workflows' })
        .getByRole('link', { name: /^order-/ })
        .allTextContents();
      const parkedIds = new Set<string>();
      for await (const wf of temporal.workflow.list({ query: PARKED_QUERY })) {
        parkedIds.add(wf.workflowId);
        if (parkedIds.size >= 1000) break;
      }
      expect(listed.filter((id) => !parkedIds.has(id.trim()))).toEqual([]);
      await screenshot('01-parked-list');
      // The README's picture: the query box and the parked order, without the empty rest of the table.
      if (process.env.UPDATE_DOCS_SCREENSHOTS)
        await page.screenshot({
          path: DOCS_SCREENSHOT,
          clip: { x: 0, y: 0, width: 1280, height: 380 },
        });
    });

    await step('open-workflow', async () => {
      await page.getByRole('link', { name: workflowId, exact: true }).click();
      await page.getByRole('heading', { level: 1, name: workflowId }).waitFor();
      await statusShown('Running');
      await screenshot('02-parked-workflow');
    });

    // The operator fixed the cause: the receiver answers 204 from now on.
    receiver.reset();

    await step('send-retry-signal', async () => {
      await page.getByRole('button', { name: 'More Actions' }).click();
      await page.getByRole('menuitem', { name: 'Send a Signal' }).click();
      const dialog = page.getByRole('dialog', { name: 'Send a Signal' });
      // The UI asks the running workflow for its signal definitions: with a worker up it offers
      // them in a picker (retry, cancel), else a free-text name. Neither control has an
      // accessible name in UI 2.54, hence the test ids.
      const picker = dialog.getByTestId('signal-select-button');
      const freeText = dialog.getByTestId('signal-name');
      await picker.or(freeText).waitFor();
      if (await picker.isVisible()) {
        await picker.click();
        await dialog.getByRole('option', { name: retrySignal.name, exact: true }).click();
      } else {
        await freeText.fill(retrySignal.name);
      }
      await screenshot('03-signal-dialog');
      await dialog.getByRole('button', { name: 'Submit' }).click();
      await dialog.waitFor({ state: 'hidden' });
      await screenshot('04-signal-sent');
    });

    const completed = await step('complete', () => waitForStatus(orderId, 'COMPLETED'));
    expect(completed).toMatchObject({ failedStep: null, lastError: null });
    expect(await signalsReceived(workflowId)).toEqual([retrySignal.name]);
    // The retry delivered the webhook once more, signed as before, and the receiver took it.
    const [redelivery, ...more] = await receiver.waitForRequests(1);
    expect(more).toEqual([]);
    expect(redelivery?.verified, redelivery?.verifyError).toBe(true);
    expect(redelivery?.headers['webhook-id']).toBe(subscriber!.webhookIdOf(orderId));

    await step('see-completed', async () => {
      await page.reload();
      await statusShown('Completed');
      await screenshot('05-completed-workflow');
    });
  }, 120_000);
});
