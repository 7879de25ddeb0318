import { Client, Connection } from '@temporalio/client';
import type { TemporalConnectSettings } from '../config/temporal.ts';
import { temporalClientInterceptors } from '../observability/temporal-tracing.ts';

/**
 * A lazily connected Temporal client: the API starts, and accepts orders,
 * while Temporal is down; the first call after it is back connects.
 */
export class LazyTemporalClient {
  private pending: Promise<Client> | undefined;
  private connection: Connection | undefined;

  constructor(
    private readonly settings: TemporalConnectSettings,
    private readonly connectTimeoutMs = 2000,
  ) {}

  get(): Promise<Client> {
    const { address, tls, apiKey, metadata } = this.settings.connectionOptions;
    this.pending ??= Connection.connect({
      address,
      tls,
      apiKey,
      metadata,
      connectTimeout: this.connectTimeoutMs,
    })
      .then((connection) => {
        this.connection = connection;
        // While tracing is on, starts, signals and updates carry the caller's trace context.
        return new Client({
          connection,
          namespace: this.settings.namespace,
          interceptors: temporalClientInterceptors(),
        });
      })
      .catch((err: unknown) => {
        this.pending = undefined;
        throw err;
      });
    return this.pending;
  }

  /**
   * Answers whether the frontend responds now, within `timeoutMs` (default
   * the connect timeout) once connected: a frontend that accepts the connection but never
   * answers (stopped, overloaded, a half-open link) reads as unreachable
   * instead of holding the relay's poll or /readyz forever.
   */
  async ping(timeoutMs = this.connectTimeoutMs): Promise<boolean> {
    try {
      // Connecting has its own limit (connectTimeoutMs); the deadline is the call's.
      const client = await this.get();
      await client.connection.withDeadline(Date.now() + timeoutMs, () =>
        client.connection.workflowService.getSystemInfo({}),
      );
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.connection?.close();
  }
}
