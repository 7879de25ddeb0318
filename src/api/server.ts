/**
 * The API process: builds its dependencies, serves HTTP on PORT, and drains
 * in-flight requests on SIGINT/SIGTERM before closing its connections.
 */
import { Connection } from '@temporalio/client';
import { loadConfig } from '../config/env.ts';
import { createDb } from '../db/client.ts';
import { createLogger } from '../shared/logger.ts';
import { createApp } from './app.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('api', config.LOG_LEVEL);
  const db = createDb(config.DATABASE_URL, config.DATABASE_POOL_SIZE);
  // Lazy: the API starts (and accepts orders) even while Temporal is down.
  const temporal = await Connection.connect({ address: config.TEMPORAL_ADDRESS }).catch(
    (err: Error) => {
      log.warn({ err: err.message }, 'Temporal is not reachable yet; readiness will report it');
      return undefined;
    },
  );
  const { app, close: closeApp } = createApp({
    db,
    temporal,
    temporalAddress: config.TEMPORAL_ADDRESS,
    namespace: config.TEMPORAL_NAMESPACE,
    log,
  });
  const server = app.listen(config.PORT, config.HOST, () => {
    log.info({ url: `http://${config.HOST}:${config.PORT}` }, 'api listening');
  });
  const shutdown = (signal: string) => {
    log.info({ signal }, 'draining');
    server.close(() => {
      void Promise.allSettled([db.$disconnect(), closeApp()]).then(() => process.exit(0));
    });
    setTimeout(() => process.exit(1), 15_000).unref();
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
