import { ApplicationFailure, log } from '@temporalio/activity';
import type { Transporter } from 'nodemailer';
import type { Db } from '../db/client.ts';
import type { OrderStatus } from '../generated/prisma/enums.ts';
import { ensureNotCancelledByTemporal, withHeartbeats } from './heartbeat.ts';
import {
  ORDER_LINES_JSON,
  orderCancelled,
  orderNotFound,
  withLines,
  type StoredOrderLines,
} from './order-data.ts';
import { confirmationMessageId } from '../shared/events.ts';
import { FailureType } from '../shared/steps.ts';

const CONFIRMATION = 'confirmation';

export interface SendConfirmationInput {
  orderId: string;
}

export interface SendConfirmationResult {
  /** The RFC 5322 Message-ID the mail carries (derived from the order, so stable). */
  messageId: string;
  /** True when an earlier attempt or run had already sent it; nothing was sent now. */
  alreadySent: boolean;
}

interface ConfirmationOrder {
  id: string;
  customerEmail: string;
  currency: string;
  totalCents: bigint;
  items: { sku: string; quantity: number; unitPriceCents: bigint }[];
}

/** Activities that talk to the SMTP relay (task queue `email`). */
export function createEmailActivities(deps: { db: Db; mailer: Transporter; from: string }) {
  const { db, mailer, from } = deps;

  return {
    /**
     * Sends the order's confirmation email once: a recorded send is never repeated.
     * A crash between the SMTP answer and the database write can still send twice;
     * both carry the same Message-ID, so receivers that deduplicate on it keep one.
     */
    sendConfirmationEmail(input: SendConfirmationInput): Promise<SendConfirmationResult> {
      return withHeartbeats(() => sendConfirmation(input));
    },
  };

  /** One attempt; it sends nothing once the order is cancelled (the row or the attempt). */
  async function sendConfirmation({
    orderId,
  }: SendConfirmationInput): Promise<SendConfirmationResult> {
    const messageId = confirmationMessageId(orderId);
    // The last point before anything leaves: a cancel since the attempt began stops it here
    // (after the claim below only the mail's rendering runs before it is sent).
    ensureNotCancelledByTemporal();
    const { order, attempts, sentMessageId } = await claimSend(orderId, messageId);
    if (sentMessageId !== null) {
      log.info('confirmation email already sent', { orderId, messageId: sentMessageId });
      return { messageId: sentMessageId, alreadySent: true };
    }
    if (order.status === 'CANCELLED') throw orderCancelled(orderId);
    const mail = renderConfirmation(order);
    try {
      await mailer.sendMail({
        messageId,
        from,
        to: order.customerEmail,
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        headers: { 'X-Orderflow-Order-Id': orderId },
      });
    } catch (err) {
      const failure = classifySmtpError(err, orderId);
      const lastError = describeError(err);
      log.warn('confirmation email failed', {
        orderId,
        attempt: attempts,
        failureType: failure instanceof ApplicationFailure ? failure.type : failure.name,
        error: lastError,
      });
      // The SMTP failure decides the retry, not a failed bookkeeping write.
      await recordFailure(orderId, lastError).catch((dbErr: unknown) => {
        log.error('could not record the email failure', { orderId, error: String(dbErr) });
      });
      throw failure;
    }

    await markSent(orderId);
    log.info('confirmation email sent', { orderId, messageId, attempt: attempts });
    return { messageId, alreadySent: false };
  }

  /**
   * In one statement (one round trip; its snapshot sees a cancel committed
   * before it): loads the order with its lines (OrderNotFound when there is
   * none) and counts this attempt in the delivery row, unless the mail was
   * sent already. `sentMessageId` is the Message-ID of an earlier send, null
   * when there was none.
   */
  async function claimSend(orderId: string, messageId: string) {
    const [row] = await db.$queryRaw<ClaimRow[]>`
      WITH o AS (
        SELECT id, status, customer_email, currency, total_cents FROM orders
        WHERE id = ${orderId}::uuid
      ), attempt AS (
        INSERT INTO email_deliveries (order_id, kind, message_id, attempts)
        SELECT o.id, ${CONFIRMATION}, ${messageId}, 1 FROM o
        ON CONFLICT (order_id, kind) DO UPDATE
          SET message_id = EXCLUDED.message_id, attempts = email_deliveries.attempts + 1
          WHERE email_deliveries.sent_at IS NULL
        RETURNING attempts
      )
      SELECT o.id::text, o.status::text, o.customer_email AS "customerEmail", o.currency,
             o.total_cents AS "totalCents",
             ${ORDER_LINES_JSON} AS items,
             (SELECT attempts FROM attempt) AS attempts,
             (SELECT message_id FROM email_deliveries
               WHERE order_id = o.id AND kind = ${CONFIRMATION} AND sent_at IS NOT NULL)
               AS "sentMessageId"
      FROM o`;
    if (!row) throw orderNotFound(orderId);
    const { attempts, sentMessageId, ...stored } = row;
    return { order: withLines<ClaimedOrder>(stored), attempts: attempts ?? 0, sentMessageId };
  }

  /** The delivery row after the SMTP server accepted the mail. */
  async function markSent(orderId: string) {
    await db.$executeRaw`
      UPDATE email_deliveries SET sent_at = now(), last_error = NULL
      WHERE order_id = ${orderId}::uuid AND kind = ${CONFIRMATION}`;
  }

  /** Why the attempt failed, on the delivery row (operators read it with the order). */
  async function recordFailure(orderId: string, lastError: string) {
    await db.$executeRaw`
      UPDATE email_deliveries SET last_error = ${lastError}
      WHERE order_id = ${orderId}::uuid AND kind = ${CONFIRMATION}`;
  }
}

/** The order as the confirmation uses it, and its status when the attempt was claimed. */
type ClaimedOrder = ConfirmationOrder & { status: OrderStatus };

type ClaimRow = StoredOrderLines<ClaimedOrder> & {
  attempts: number | null;
  sentMessageId: string | null;
};

export type EmailActivities = ReturnType<typeof createEmailActivities>;

/**
 * What nodemailer (10.x) attaches to SMTP and connection errors: `code` is one of
 * its own (ECONNECTION, ESOCKET, ETIMEDOUT, EDNS, ETLS, EENVELOPE, EMESSAGE,
 * EAUTH, ENOAUTH, ...; the system error's code moves to `originalCode`), and
 * `permanent` says whether a reply code is a permanent rejection (every 5yz but
 * 503, which only says the session was in the wrong state).
 */
interface SmtpErrorFields {
  code?: string;
  originalCode?: string;
  responseCode?: number;
  permanent?: boolean;
  command?: string;
  response?: string;
}

/** A reply code refusing the message for good, by nodemailer's flag or (without one) RFC 5321 less 503. */
const isPermanentRefusal = ({ responseCode, permanent }: SmtpErrorFields): boolean =>
  typeof responseCode === 'number' &&
  (permanent ?? (responseCode >= 500 && responseCode < 600 && responseCode !== 503));

/**
 * Maps a nodemailer error to a typed failure: a permanent refusal (5xx but 503)
 * is permanent (a refused recipient means the address is bad), any other reply
 * or a broken connection is transient. Errors nodemailer did not classify (no
 * `code`) are returned unchanged, so Temporal retries them under their own name.
 */
export function classifySmtpError(err: unknown, orderId: string): ApplicationFailure | Error {
  if (!(err instanceof Error)) return new Error(String(err));
  const fields = err as Error & SmtpErrorFields;
  const { code, originalCode, responseCode, command } = fields;
  const details = [{ orderId, code, originalCode, responseCode, command }];
  const message = `SMTP ${command ?? 'send'} failed: ${err.message}`;

  if (isPermanentRefusal(fields)) {
    const type = command === 'RCPT TO' ? FailureType.InvalidAddress : FailureType.SmtpRejected;
    return ApplicationFailure.create({ type, message, nonRetryable: true, cause: err, details });
  }
  if (typeof responseCode !== 'number' && code === 'EENVELOPE') {
    // nodemailer refused the envelope itself (no or an unparseable recipient); no server was asked.
    return ApplicationFailure.create({
      type: FailureType.InvalidAddress,
      message,
      nonRetryable: true,
      cause: err,
      details,
    });
  }
  if (typeof responseCode === 'number' || typeof code === 'string') {
    // 4xx and 503 (greylisting, rate limits, full queues, session state) and
    // ECONNECTION/ESOCKET/ETIMEDOUT/EDNS/ETLS/... Configuration errors (EAUTH
    // without a reply, ENOAUTH, ECONFIG, EREQUIRETLS) are retried too: an operator
    // who fixes SMTP_URL within the budget lets the order go on without a retry.
    return ApplicationFailure.create({
      type: FailureType.SmtpUnavailable,
      message,
      nonRetryable: false,
      cause: err,
      details,
    });
  }
  return err;
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const { code, originalCode, responseCode } = err as Error & SmtpErrorFields;
  const tags = [code, originalCode, responseCode].filter((x) => x !== undefined).join(' ');
  return (tags ? `${tags}: ${err.message}` : err.message).slice(0, 1000);
}

/** The confirmation's subject and bodies; every interpolated value is HTML-escaped in the HTML part. */
function renderConfirmation(order: ConfirmationOrder) {
  const money = moneyFormatter(order.currency);
  const shortId = order.id.slice(0, 8);
  const lines = order.items.map((item) => ({
    sku: item.sku,
    quantity: item.quantity,
    unitPrice: money(item.unitPriceCents),
    lineTotal: money(item.unitPriceCents * BigInt(item.quantity)),
  }));
  const total = money(order.totalCents);

  const subject = `Your order ${shortId} is confirmed`;
  const text = [
    `Thank you for your order ${shortId}.`,
    '',
    ...lines.map((l) => `${l.sku}  ${l.quantity} x ${l.unitPrice}  = ${l.lineTotal}`),
    '',
    `Total: ${total}`,
    '',
    `Order id: ${order.id}`,
    '',
  ].join('\n');

  const rows = lines
    .map(
      (l) =>
        `<tr><td>${escapeHtml(l.sku)}</td><td align="right">${escapeHtml(String(l.quantity))}</td>` +
        `<td align="right">${escapeHtml(l.unitPrice)}</td><td align="right">${escapeHtml(l.lineTotal)}</td></tr>`,
    )
    .join('\n');
  const html = `<!doctype html>
<html><body>
<p>Thank you for your order <strong>${escapeHtml(shortId)}</strong>.</p>
<table cellpadding="4">
<thead><tr><th align="left">SKU</th><th align="right">Quantity</th><th align="right">Unit price</th><th align="right">Line total</th></tr></thead>
<tbody>
${rows}
</tbody>
<tfoot><tr><th colspan="3" align="right">Total</th><th align="right">${escapeHtml(total)}</th></tr></tfoot>
</table>
<p>Order id: ${escapeHtml(order.id)}</p>
</body></html>
`;
  return { subject, text, html };
}

/** One formatter per currency for the process: building an Intl.NumberFormat costs more than a mail's formatting. */
const moneyFormatters = new Map<string, (minor: bigint) => string>();

/** Formats an amount in the currency's minor unit (cents, or yen for JPY). */
function moneyFormatter(currency: string): (minor: bigint) => string {
  let money = moneyFormatters.get(currency);
  if (!money) {
    const format = new Intl.NumberFormat('en', { style: 'currency', currency });
    const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
    // Totals are at most 10^12 minor units: exact enough as a double for display.
    money = (minor) => format.format(Number(minor) / 10 ** digits);
    moneyFormatters.set(currency, money);
  }
  return money;
}

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}
