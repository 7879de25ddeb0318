/** Reads mails back from the stack's maildev through its HTTP API. */

/** One mail as maildev's `GET /email` returns it (the fields tests look at). */
export interface MaildevEmail {
  id: string;
  subject: string;
  /** Without the angle brackets of the Message-ID header. */
  messageId: string;
  text: string;
  html: string;
  to: { address: string; name: string }[];
  from: { address: string; name: string }[];
  headers: Record<string, string>;
}

/** All mails maildev holds whose Message-ID is `messageId` (with or without angle brackets). */
export async function mailsWithMessageId(
  apiUrl: string,
  messageId: string,
): Promise<MaildevEmail[]> {
  const bare = messageId.replace(/^<|>$/g, '');
  const res = await fetch(`${apiUrl}/email`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`maildev GET /email answered ${res.status}`);
  const mails = (await res.json()) as MaildevEmail[];
  return mails.filter((m) => m.messageId === bare);
}

/**
 * Waits (bounded) until maildev holds a mail with `messageId`: maildev parses a
 * mail after answering the SMTP DATA, so it may show up a moment after the send.
 */
export async function waitForMail(
  apiUrl: string,
  messageId: string,
  timeoutMs = 5000,
): Promise<MaildevEmail> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [mail] = await mailsWithMessageId(apiUrl, messageId);
    if (mail) return mail;
    if (Date.now() > deadline) {
      throw new Error(`maildev received no mail with Message-ID ${messageId} in ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
