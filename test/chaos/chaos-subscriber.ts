/**
 * The chaos run's webhook subscriber: an endpoint registered through the API
 * whose receiver on 127.0.0.1 (chaos-receiver-process.ts, a process of its
 * own at a raised CPU priority, so its timestamps are not delayed by the
 * runner's work or the stack's) verifies every request's Standard Webhooks
 * signature with the secret the API returned, records it (webhook-id, body,
 * answer, arrival time), and answers 204 after an optional delay (so
 * deliveries overlap and a killed webhooks worker dies mid-request), or 503
 * while an outage is on.
 */
import { fork } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { registerEndpoint } from '../support/api.ts';

export interface Delivery {
  webhookId: string;
  body: string;
  verified: boolean;
  verifyError?: string;
  /** The status the receiver answered (503 during an outage). */
  status: number;
  /** When the request arrived at the receiver (Unix ms). */
  at: number;
}

export interface ChaosSubscriber {
  endpointId: string;
  readonly deliveries: Delivery[];
  /** Requests received and not answered yet. */
  readonly inFlight: number;
  /** While true, every request is answered 503 (and still recorded). */
  failing: boolean;
  close(): Promise<void>;
}

type ReceiverMessage =
  | { kind: 'listening'; port: number }
  | { kind: 'arrived' }
  | { kind: 'answered' }
  | { kind: 'delivery'; delivery: Delivery };

/** Niceness of the receiver: it stands for a system on another machine, so it waits for no one's CPU. */
const RECEIVER_NICENESS = -10;

export async function startChaosSubscriber(
  apiUrl: string,
  opts: { delayMs: number },
): Promise<ChaosSubscriber> {
  const deliveries: Delivery[] = [];
  let inFlight = 0;
  let failing = false;
  const child = fork(
    path.join(import.meta.dirname, 'chaos-receiver-process.ts'),
    [String(opts.delayMs)],
    { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  try {
    if (child.pid) os.setPriority(child.pid, RECEIVER_NICENESS);
  } catch {
    /* not allowed (not root): the receiver runs at normal priority */
  }
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('chaos receiver did not start in 30 s')),
      30_000,
    );
    child.once('exit', (code) => reject(new Error(`chaos receiver exited with ${code}`)));
    child.on('message', (m: ReceiverMessage) => {
      if (m.kind === 'listening') {
        clearTimeout(timer);
        resolve(m.port);
      } else if (m.kind === 'arrived') inFlight++;
      else if (m.kind === 'answered') inFlight--;
      else deliveries.push(m.delivery);
    });
  });
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  };
  const created = await registerEndpoint(apiUrl, `http://127.0.0.1:${port}/hooks`).catch(
    async (e: unknown) => {
      await close();
      throw e;
    },
  );
  child.send({ secret: created.secret });

  return {
    endpointId: created.id,
    deliveries,
    get inFlight() {
      return inFlight;
    },
    get failing() {
      return failing;
    },
    set failing(v: boolean) {
      failing = v;
      child.send({ failing: v });
    },
    close,
  };
}
