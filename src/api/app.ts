import { Connection } from '@temporalio/client';
import express, { type Express } from 'express';
import type { Db } from '../db/client.ts';
import type { Logger } from '../shared/logger.ts';

export interface AppDeps {
  db: Db;
  temporal: Connection | undefined;
  temporalAddress: string;
  namespace: string;
  log: Logger;
}

/** The Express application; routes stay thin and call use cases. */
export function createApp(deps: AppDeps): { app: Express; close: () => Promise<void> } {
  const app = express();
  app.disable('x-powered-by');
  let temporal = deps.temporal;

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    const checks = { database: 'ok', temporal: 'ok' };
    await deps.db.$queryRaw`SELECT 1`.catch(() => (checks.database = 'unreachable'));
    try {
      temporal ??= await Connection.connect({
        address: deps.temporalAddress,
        connectTimeout: 1000,
      });
      await temporal.workflowService.getSystemInfo({});
    } catch {
      checks.temporal = 'unreachable';
    }
    const ok = checks.database === 'ok' && checks.temporal === 'ok';
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not ready', checks });
  });

  const close = async () => {
    await temporal?.close();
  };
  return { app, close };
}
