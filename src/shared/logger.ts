import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs (pino). Secrets never reach the output: credentials in
 * headers and connection strings are redacted.
 */
export function createLogger(name: string, level = 'info'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: [
        'req.headers.authorization',
        'authorization',
        'apiKey',
        'secret',
        'password',
        '*.password',
        '*.secret',
      ],
      censor: '[redacted]',
    },
  });
}
