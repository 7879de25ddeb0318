import nodemailer from 'nodemailer';
import { randomUUID } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';

interface MaildevEmail {
  subject: string;
  messageId: string;
  text: string;
  to: { address: string }[];
}

describe('SMTP sink (maildev, the stack’s)', () => {
  it('receives a mail sent with nodemailer and serves it through its API', async () => {
    const { SMTP_URL, MAIL_API_URL } = inject('stack');
    const transport = nodemailer.createTransport(SMTP_URL);
    const subject = `smoke ${randomUUID()}`;
    const messageId = `<${randomUUID()}@orderflow.test>`;
    await transport.sendMail({
      from: 'orders@orderflow.test',
      to: 'customer@example.com',
      subject,
      messageId,
      text: 'Thank you for your order.',
    });
    transport.close();

    const res = await fetch(`${MAIL_API_URL}/email`);
    expect(res.status).toBe(200);
    const mails = (await res.json()) as MaildevEmail[];
    const mail = mails.find((m) => m.subject === subject);
    expect(mail).toBeDefined();
    expect(mail?.messageId).toBe(messageId.slice(1, -1));
    expect(mail?.to.map((t) => t.address)).toEqual(['customer@example.com']);
    expect(mail?.text.trim()).toBe('Thank you for your order.');
  });
});
