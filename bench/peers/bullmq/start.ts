/**
 * Starting the BullMQ peer for bench/run.ts: Redis (Debian's redis-server,
 * installed when missing), then bench/peers/bullmq/api.ts and one
 * bench/peers/bullmq/worker.ts per queue, as stack processes.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { currentRunLog, type AppStack } from '../../../scripts/lib/app-stack.ts';
import { ManagedProcess, freePort, waitUntilReady } from '../../../scripts/lib/process.ts';
import { log, sh } from '../../lib/e2e-kit.ts';
import { PEER_SCHEMA } from './common.ts';

/** The running peer: its API, its Redis (replaced when restarted) and its processes. */
export interface Peer {
  apiUrl: string;
  redis: ManagedProcess;
  redisUrl: string;
  redisVersion: string;
  procs: Map<string, ManagedProcess>;
  startWorker(queue: string): Promise<ManagedProcess>;
}

function ensureRedisServer(): string {
  const found = sh('sh', ['-c', 'command -v redis-server']);
  if (found) return found;
  log('redis-server is missing: apt-get install -y redis-server');
  if (process.getuid?.() !== 0)
    throw new Error('redis-server is missing and this is not root: apt-get install redis-server');
  execFileSync('apt-get', ['install', '-y', 'redis-server'], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  const installed = sh('sh', ['-c', 'command -v redis-server']);
  if (!installed) throw new Error('apt-get install redis-server did not provide redis-server');
  return installed;
}

/** Redis at `url` answers PING. */
export async function redisReady(url: string): Promise<boolean> {
  const r = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  r.on('error', () => {}); // the connect below rejects with it
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } finally {
    r.disconnect();
  }
}

/**
 * Starts the peer beside the app stack, on its PostgreSQL, Kafka and maildev:
 * Redis (in the stack's process list, so it is stopped and measured with it),
 * the peer's schema, its API and one worker per queue.
 */
export async function startPeer(
  app: AppStack,
  db: pg.Pool,
  settings: { redisAof: boolean; webhookRate: number },
): Promise<Peer> {
  const bin = ensureRedisServer();
  const port = await freePort();
  const dir = path.join(app.stack.opts.dataDir, 'redis');
  fs.mkdirSync(dir, { recursive: true });
  const persistence = settings.redisAof
    ? ['--appendonly', 'yes', '--appendfsync', 'everysec']
    : ['--appendonly', 'no'];
  const redis = new ManagedProcess({
    name: 'redis',
    command: bin,
    args: [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      ...persistence,
      '--dir',
      dir,
    ],
    logFile: app.stack.logFile('redis'),
  });
  // In the stack's list: stopped with it, and its CPU and memory are accounted for.
  app.stack.procs.push(redis);
  const redisUrl = `redis://127.0.0.1:${port}`;
  await waitUntilReady(redis, 'redis', () => redisReady(redisUrl), 30_000);
  await db.query(PEER_SCHEMA);
  const apiPort = await freePort();
  const env = {
    REDIS_URL: redisUrl,
    WEBHOOK_RATE_PER_SECOND: String(settings.webhookRate),
    DATABASE_POOL_SIZE: '10',
  };
  const procs = new Map<string, ManagedProcess>();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  procs.set(
    'peer-api',
    await app.stack.startApp(
      'peer-api',
      'bench/peers/bullmq/api.ts',
      { ...env, PORT: String(apiPort) },
      async () => (await fetch(`${apiUrl}/healthz`, { signal: AbortSignal.timeout(2000) })).ok,
    ),
  );
  const startWorker = async (queue: string) => {
    const name = `peer-worker-${queue}`;
    const proc = await app.stack.startApp(
      name,
      'bench/peers/bullmq/worker.ts',
      { ...env, PEER_QUEUE: queue },
      async (p) => /peer worker running/.test(currentRunLog(p.spec.logFile)),
    );
    procs.set(name, proc);
    return proc;
  };
  for (const q of ['orders', 'email', 'webhooks', 'events']) await startWorker(q);
  const redisVersion = sh(bin, ['--version']);
  log(
    `peer ready: ${apiUrl}, ${redisUrl} (${settings.redisAof ? 'AOF everysec' : 'no persistence'})`,
  );
  return { apiUrl, redis, redisUrl, redisVersion, procs, startWorker };
}
