/**
 * What every command runs with: the services' configuration, a small
 * database pool, Temporal and Kafka clients made on first use, and one place
 * that turns errors into a message on stderr and an exit code.
 */
import { Client, Connection } from '@temporalio/client';
import pino, { type Logger } from 'pino';
import { loadConfig, type Config } from '../config/env.ts';
import { DomainError, type FieldError } from '../shared/errors.ts';
import { temporalConnectSettings } from '../config/temporal.ts';
import { createDbFromConfig, type Db } from '../db/client.ts';
import { createKafka } from '../events/kafka.ts';
import type { KafkaAdmin, KafkaClient } from '../events/kafka-types.ts';
import { ExitCode } from './output.ts';

export interface Ctx {
  config: Config;
  db: Db;
  temporal: () => Promise<Client>;
  close(): Promise<void>;
}

function context(): Ctx {
  const config = loadConfig();
  const db = createDbFromConfig(config, 4);
  let connection: Connection | undefined;
  let client: Client | undefined;
  return {
    config,
    db,
    async temporal() {
      const { connectionOptions, namespace } = temporalConnectSettings(config);
      const { address, tls, apiKey, metadata } = connectionOptions;
      connection ??= await Connection.connect({
        address,
        tls,
        apiKey,
        metadata,
        connectTimeout: 5000,
      });
      client ??= new Client({ connection, namespace });
      return client;
    },
    async close() {
      await Promise.allSettled([db.$disconnect(), connection?.close()]);
    },
  };
}

/** Invalid input: one line per field at fault, and the usage exit code. */
const invalidInput = (fields: FieldError[]) => ({
  message: fields.map((e) => `invalid ${e.field}: ${e.message}`).join('\n'),
  exitCode: ExitCode.usage,
});

/** The message and exit code of an error that ended a command. */
export function describeError(err: unknown): { message: string; exitCode: number } {
  // The errors of the use cases (orders, webhook subscribers): the message and the code.
  if (err instanceof DomainError) {
    if (err.code === 'invalid' && err.extra.fields?.length) return invalidInput(err.extra.fields);
    return {
      message: `${err.message} (${err.code})`,
      exitCode: err.code === 'invalid' ? ExitCode.usage : ExitCode.failure,
    };
  }
  return { message: err instanceof Error ? err.message : String(err), exitCode: ExitCode.failure };
}

/** Runs a command's body; its result (default 0) or its error decides the exit code. */
export async function withCtx(fn: (ctx: Ctx) => Promise<number | void>): Promise<void> {
  let ctx: Ctx | undefined;
  try {
    ctx = context();
    process.exitCode = (await fn(ctx)) ?? ExitCode.ok;
  } catch (err) {
    const { message, exitCode } = describeError(err);
    for (const line of message.split('\n')) console.error(`error: ${line}`);
    process.exitCode = exitCode;
  } finally {
    await ctx?.close();
  }
}

/** Kafka clients for one command; the client's own logs go to stderr (stdout stays parseable). */
export async function withKafka<T>(
  config: Config,
  fn: (kafka: KafkaClient, admin: KafkaAdmin, log: Logger) => Promise<T>,
): Promise<T> {
  const log = pino({ name: 'orderflow-cli', level: 'error' }, pino.destination(2));
  const kafka = createKafka(config, { logger: log });
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await fn(kafka, admin, log);
  } finally {
    await admin.disconnect();
  }
}
