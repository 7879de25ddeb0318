/**
 * A tiny real SMTP server (the `smtp-server` package) that answers with chosen
 * replies, to test how the email activity classifies SMTP failures.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerError } from 'smtp-server';

/** An SMTP reply, e.g. `{ code: 550, message: '5.1.1 mailbox unavailable' }`. */
export interface SmtpReply {
  code: number;
  message: string;
}

export interface SmtpStub {
  host: string;
  port: number;
  /** How many messages reached the end of DATA. */
  readonly dataCount: number;
  close(): Promise<void>;
}

const replyError = (reply: SmtpReply): SMTPServerError =>
  Object.assign(new Error(reply.message), { responseCode: reply.code });

/** Starts a plaintext SMTP server on an ephemeral loopback port that refuses as told. */
export async function startSmtpStub(replies: {
  rcptTo?: SmtpReply;
  data?: SmtpReply;
}): Promise<SmtpStub> {
  let dataCount = 0;
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    // Plaintext only: nodemailer would otherwise upgrade and reject the built-in certificate.
    disabledCommands: ['STARTTLS'],
    onRcptTo(_address, _session, callback) {
      callback(replies.rcptTo ? replyError(replies.rcptTo) : null);
    },
    onData(stream, _session, callback) {
      stream.on('end', () => {
        dataCount += 1;
        callback(replies.data ? replyError(replies.data) : null);
      });
      stream.resume();
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    get dataCount() {
      return dataCount;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
