/**
 * The relay's Temporal health check has a deadline: a frontend that accepted
 * the connection and then stops answering (a stopped process, a half-open
 * link) reads as unreachable within the deadline, so the relay's poll goes on
 * and POST /orders answers 202, instead of a probe that never returns; a
 * workflow start has a deadline too, so a sweep never hangs on one. The
 * real Temporal frontend sits behind a TCP relay on 127.0.0.1 that can stop
 * passing bytes on.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import pino from 'pino';
import { afterEach, expect, inject, it } from 'vitest';
import { OutboxRelay, defaultRelayOptions, type RelayOptions } from '../../src/api/outbox-relay.ts';
import { LazyTemporalClient } from '../../src/api/temporal-client.ts';
import { createDb } from '../../src/db/client.ts';

const stack = inject('stack');
const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  // Bounded: without a deadline a probe in flight would hold the relay's stop forever.
  const bounded = (p: Promise<unknown>) =>
    Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, 5_000))]);
  for (const c of cleanups.splice(0).reverse()) await bounded(c());
});

/** A TCP relay to the Temporal frontend; `stall()` makes it swallow every byte from then on. */
async function stallableFrontend(): Promise<{ address: string; stall(): void }> {
  const [host, port] = stack.TEMPORAL_ADDRESS.split(':') as [string, string];
  let stalled = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d: Buffer) => void (stalled || upstream.write(d)));
    upstream.on('data', (d: Buffer) => void (stalled || client.write(d)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port: proxyPort } = server.address() as net.AddressInfo;
  return { address: `127.0.0.1:${proxyPort}`, stall: () => (stalled = true) };
}

function client(address: string): LazyTemporalClient {
  const temporal = new LazyTemporalClient(
    { connectionOptions: { address }, namespace: 'default' },
    2000,
  );
  cleanups.push(() => temporal.close());
  return temporal;
}

it('answers false within its deadline when the frontend stops answering on an open connection', async () => {
  const frontend = await stallableFrontend();
  const temporal = client(frontend.address);
  expect(await temporal.ping()).toBe(true);

  frontend.stall();
  const started = Date.now();
  const answer = await Promise.race([
    temporal.ping(1000),
    new Promise((resolve) => setTimeout(() => resolve('no answer after 10 s'), 10_000)),
  ]);
  expect(answer).toBe(false);
  expect(Date.now() - started).toBeLessThan(3_000);
}, 30_000);

/**
 * A relay (not running) with `options`, whose Temporal client and health probe
 * go through a stallable frontend that answers so far; both closed after the test.
 */
async function relayBehind(options: Partial<RelayOptions>) {
  const frontend = await stallableFrontend();
  const temporal = client(frontend.address);
  const db = createDb(stack.DATABASE_URL, 2);
  cleanups.push(() => db.$disconnect());
  const relay = new OutboxRelay(
    db,
    () => temporal.get(),
    log,
    { ...defaultRelayOptions, ...options },
    () => temporal.ping(),
  );
  cleanups.push(() => relay.stop());
  expect(await temporal.ping()).toBe(true);
  return { frontend, relay };
}

it("keeps the relay's poll going: the relay marks Temporal unreachable once the frontend stops answering", async () => {
  const { frontend, relay } = await relayBehind({ intervalMs: 200, sweep: false });
  relay.run();

  frontend.stall();
  const deadline = Date.now() + 10_000;
  while (relay.temporalReachable && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(relay.temporalReachable).toBe(false);
}, 30_000);

it('gives up a workflow start within its deadline when the frontend stops answering, so the sweep goes on', async () => {
  const { frontend, relay } = await relayBehind({ startTimeoutMs: 1000 });

  frontend.stall();
  const started = Date.now();
  // An order id without a row: the start itself is what is measured (the row update is skipped).
  const answer = await Promise.race([
    relay.startOne(randomUUID()),
    new Promise((resolve) => setTimeout(() => resolve('no answer after 10 s'), 10_000)),
  ]);
  expect(answer).toBe(false);
  expect(Date.now() - started).toBeLessThan(4_000);
  expect(relay.failed).toBe(1);
  expect(relay.temporalReachable).toBe(false);
}, 30_000);
