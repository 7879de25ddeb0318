/**
 * The confirmation email activity against the stack's real maildev and
 * PostgreSQL, and against tiny SMTP servers that refuse in chosen ways.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, type LogEntry } from '@temporalio/worker';
import nodemailer, { type Transporter } from 'nodemailer';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../scripts/lib/process.ts';
import {
  createEmailActivities,
  type SendConfirmationInput,
  type SendConfirmationResult,
} from '../../src/activities/email.ts';
import { createDb, type Db } from '../../src/db/client.ts';
import { confirmationMessageId } from '../../src/shared/events.ts';
import { orderTotalCents, type OrderItemInput } from '../../src/shared/orders.ts';
import { FailureType } from '../../src/shared/steps.ts';
import { orderWorkflowId } from '../../src/shared/task-queues.ts';
import { mailsWithMessageId, waitForMail } from '../support/email-maildev.ts';
import { startSmtpStub, type SmtpReply, type SmtpStub } from '../support/email-smtp-stub.ts';

const FROM = 'orderflow <orders@orderflow.test>';
const { DATABASE_URL, SMTP_URL, MAIL_API_URL } = inject('stack');

let db: Db;
const transports: Transporter[] = [];
const stubs: SmtpStub[] = [];
const orderIds: string[] = [];

/** A transport that gives up quickly, so a failing case never waits for nodemailer's defaults. */
function transportTo(host: string, port: number): Transporter {
  const t = nodemailer.createTransport({
    host,
    port,
    secure: false,
    ignoreTLS: true,
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 5000,
  });
  transports.push(t);
  return t;
}

function activitiesWith(mailer: Transporter) {
  return createEmailActivities({ db, mailer, from: FROM });
}

async function createOrder(
  opts: { currency?: string; items?: OrderItemInput[]; customerEmail?: string } = {},
) {
  const id = randomUUID();
  const items = opts.items ?? [{ sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 }];
  await db.order.create({
    data: {
      id,
      customerEmail: opts.customerEmail ?? `buyer-${id.slice(0, 8)}@example.com`,
      currency: opts.currency ?? 'USD',
      totalCents: orderTotalCents(items),
      workflowId: orderWorkflowId(id),
      items: {
        create: items.map((item, line) => ({
          line,
          sku: item.sku,
          quantity: item.quantity,
          unitPriceCents: item.unitPriceCents,
        })),
      },
    },
  });
  orderIds.push(id);
  return id;
}

/** What the activity logged (captured rather than printed, so failures stay readable). */
const logs: LogEntry[] = [];
const logger = new DefaultLogger('DEBUG', (entry) => logs.push(entry));

/** Runs the activity in a mock activity context, as a worker would. */
function sendConfirmation(mailer: Transporter, orderId: string) {
  const activities = activitiesWith(mailer);
  // Explicit type arguments: run() cannot infer the result type from the function alone.
  return new MockActivityEnvironment(undefined, { logger }).run<
    [SendConfirmationInput],
    SendConfirmationResult,
    (input: SendConfirmationInput) => Promise<SendConfirmationResult>
  >((input) => activities.sendConfirmationEmail(input), { orderId });
}

const logsOf = (orderId: string) =>
  logs.filter((e) => e.meta?.orderId === orderId).map((e) => `${e.level} ${e.message}`);

/** The ApplicationFailure a call rejects with (fails the test if it resolves or throws anything else). */
async function failureOf(call: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await call.then(
    (value) => {
      throw new Error(`expected a failure, got ${JSON.stringify(value)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

const delivery = (orderId: string) =>
  db.emailDelivery.findUnique({ where: { orderId_kind: { orderId, kind: 'confirmation' } } });

async function stubRefusing(replies: { rcptTo?: SmtpReply; data?: SmtpReply }) {
  const stub = await startSmtpStub(replies);
  stubs.push(stub);
  return { stub, mailer: transportTo(stub.host, stub.port) };
}

/**
 * Sends an order's confirmation through a stub that answers `replies`: what
 * the activity failed with, what the stub saw, and the delivery row after.
 */
async function sendRefused(
  replies: Parameters<typeof stubRefusing>[0],
  order?: Parameters<typeof createOrder>[0],
) {
  const orderId = await createOrder(order);
  const { mailer, stub } = await stubRefusing(replies);
  const failure = await failureOf(sendConfirmation(mailer, orderId));
  return { failure, stub, row: await delivery(orderId) };
}

beforeAll(() => {
  db = createDb(DATABASE_URL, 4);
});

afterAll(async () => {
  for (const t of transports) t.close();
  await Promise.allSettled(stubs.map((s) => s.close()));
  if (orderIds.length) await db.order.deleteMany({ where: { id: { in: orderIds } } });
  await db.$disconnect();
});

describe('sendConfirmationEmail', () => {
  const maildev = () => {
    const url = new URL(SMTP_URL);
    return transportTo(url.hostname, Number(url.port));
  };

  it('sends one confirmation with the deterministic Message-ID, listing each line and the total in text and HTML', async () => {
    const orderId = await createOrder({
      items: [
        { sku: 'SKU-1', quantity: 2, unitPriceCents: 1000 },
        { sku: 'SKU-2', quantity: 1, unitPriceCents: 500 },
      ],
    });

    const result = await sendConfirmation(maildev(), orderId);

    expect(result).toEqual({ messageId: confirmationMessageId(orderId), alreadySent: false });
    const mail = await waitForMail(MAIL_API_URL, confirmationMessageId(orderId));
    expect(mail.to.map((t) => t.address)).toEqual([`buyer-${orderId.slice(0, 8)}@example.com`]);
    expect(mail.from.map((f) => f.address)).toEqual(['orders@orderflow.test']);
    expect(mail.subject).toContain(orderId.slice(0, 8));
    expect(mail.headers['x-orderflow-order-id']).toBe(orderId);
    expect(mail.headers['message-id']).toBe(confirmationMessageId(orderId));
    expect(mail.headers['content-type']).toMatch(/^multipart\/alternative/);
    for (const body of [mail.text, mail.html]) {
      expect(body).toContain('SKU-1');
      expect(body).toContain('$10.00'); // unit price
      expect(body).toContain('$20.00'); // line total
      expect(body).toContain('SKU-2');
      expect(body).toContain('$5.00');
      expect(body).toContain('$25.00'); // order total
    }
    expect(mail.html).toMatch(/<td>SKU-1<\/td><td[^>]*>2<\/td>/);

    const row = await delivery(orderId);
    expect(row).toMatchObject({ attempts: 1, lastError: null, messageId: result.messageId });
    expect(row?.sentAt).toBeInstanceOf(Date);
    expect(logsOf(orderId)).toContain('INFO confirmation email sent');
  });

  it('formats amounts in the order currency’s minor unit (JPY has none: 2500 is ¥2,500)', async () => {
    const orderId = await createOrder({
      currency: 'JPY',
      items: [{ sku: 'SKU-JP', quantity: 1, unitPriceCents: 2500 }],
    });

    await sendConfirmation(maildev(), orderId);

    const mail = await waitForMail(MAIL_API_URL, confirmationMessageId(orderId));
    expect(mail.text).toContain('Total: ¥2,500');
    expect(mail.html).toContain('¥2,500');
    expect(mail.text).not.toContain('¥25');
  });

  it('does not send again on a retry or re-run once the mail was sent', async () => {
    const orderId = await createOrder();
    const mailer = maildev();
    const first = await sendConfirmation(mailer, orderId);
    await waitForMail(MAIL_API_URL, first.messageId);

    const second = await sendConfirmation(mailer, orderId);

    expect(second).toEqual({ messageId: first.messageId, alreadySent: true });
    // Give a (wrong) second mail the time maildev needs to show it.
    await new Promise((r) => setTimeout(r, 500));
    expect(await mailsWithMessageId(MAIL_API_URL, first.messageId)).toHaveLength(1);
    expect((await delivery(orderId))?.attempts).toBe(1);
  });

  it('sends nothing for an order cancelled before the attempt (OrderCancelled), and sends nothing again once it was sent', async () => {
    const cancelled = await createOrder();
    await db.order.update({ where: { id: cancelled }, data: { status: 'CANCELLED' } });
    const { stub, mailer } = await stubRefusing({});

    const failure = await failureOf(sendConfirmation(mailer, cancelled));

    expect(failure.type).toBe(FailureType.OrderCancelled);
    expect(failure.nonRetryable).toBe(true);
    expect(stub.dataCount).toBe(0);
    expect(await delivery(cancelled)).toMatchObject({ sentAt: null });

    // A mail already sent is reported as sent, whatever happened to the order since.
    const sent = await createOrder();
    const first = await sendConfirmation(mailer, sent);
    await db.order.update({ where: { id: sent }, data: { status: 'CANCELLED' } });
    expect(await sendConfirmation(mailer, sent)).toEqual({
      messageId: first.messageId,
      alreadySent: true,
    });
    expect(stub.dataCount).toBe(1);
  });

  it('fails non-retryably with OrderNotFound for an unknown order', async () => {
    const orderId = randomUUID();

    const failure = await failureOf(sendConfirmation(maildev(), orderId));

    expect(failure.type).toBe(FailureType.OrderNotFound);
    expect(failure.nonRetryable).toBe(true);
    expect(await delivery(orderId)).toBeNull();
  });

  it('fails retryably with SmtpUnavailable when the SMTP server is unreachable, records the error, and a retry sends', async () => {
    const orderId = await createOrder();
    const nothingListening = transportTo('127.0.0.1', await freePort());

    const failure = await failureOf(sendConfirmation(nothingListening, orderId));

    expect(failure.type).toBe(FailureType.SmtpUnavailable);
    expect(failure.nonRetryable).toBe(false);
    const failed = await delivery(orderId);
    expect(failed).toMatchObject({ attempts: 1, sentAt: null });
    expect(failed?.lastError).toMatch(/ESOCKET|ECONNREFUSED|ECONNECTION/);
    expect(logsOf(orderId)).toContain('WARN confirmation email failed');

    // The next attempt reaches the relay: sent once, error cleared.
    const retried = await sendConfirmation(maildev(), orderId);
    expect(retried.alreadySent).toBe(false);
    await waitForMail(MAIL_API_URL, retried.messageId);
    const sent = await delivery(orderId);
    expect(sent).toMatchObject({ attempts: 2, lastError: null });
    expect(sent?.sentAt).toBeInstanceOf(Date);
  });

  it('fails non-retryably with InvalidAddress when the server refuses the recipient (550 to RCPT TO)', async () => {
    const { failure, stub, row } = await sendRefused({
      rcptTo: { code: 550, message: '5.1.1 mailbox unavailable' },
    });

    expect(failure.type).toBe(FailureType.InvalidAddress);
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('550 5.1.1 mailbox unavailable');
    expect(stub.dataCount).toBe(0);
    expect(row?.sentAt).toBeNull();
    expect(row?.lastError).toContain('550');
  });

  it('fails non-retryably with SmtpRejected when the server rejects the message after DATA (554)', async () => {
    const { failure, stub, row } = await sendRefused({
      data: { code: 554, message: '5.6.0 message rejected' },
    });

    expect(failure.type).toBe(FailureType.SmtpRejected);
    expect(failure.nonRetryable).toBe(true);
    expect(stub.dataCount).toBe(1);
    expect(row?.sentAt).toBeNull();
    expect(row?.lastError).toContain('554');
  });

  it('fails retryably with SmtpUnavailable on 503 after DATA (bad sequence: the session, not the message)', async () => {
    const { failure, row } = await sendRefused({
      data: { code: 503, message: '5.5.1 bad sequence of commands' },
    });

    expect(failure.type).toBe(FailureType.SmtpUnavailable);
    expect(failure.nonRetryable).toBe(false);
    expect(row?.lastError).toContain('503');
  });

  it('fails non-retryably with InvalidAddress when nodemailer refuses the envelope itself (EENVELOPE: no recipient), sending nothing', async () => {
    const { failure, stub, row } = await sendRefused({}, { customerEmail: '' });

    expect(failure.type).toBe(FailureType.InvalidAddress);
    expect(failure.nonRetryable).toBe(true);
    expect(stub.dataCount).toBe(0);
    expect(row?.lastError).toMatch(/^EENVELOPE: /);
  });

  it.each([
    ['RCPT TO', 'rcptTo'],
    ['DATA', 'data'],
  ] as const)(
    'fails retryably with SmtpUnavailable on a temporary refusal (451 to %s)',
    async (_, stage) => {
      const { failure, row } = await sendRefused({
        [stage]: { code: 451, message: '4.3.0 try again later' },
      });

      expect(failure.type).toBe(FailureType.SmtpUnavailable);
      expect(failure.nonRetryable).toBe(false);
      expect(row?.sentAt).toBeNull();
      expect(row?.lastError).toContain('451');
    },
  );
});
