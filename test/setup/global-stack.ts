/**
 * Starts one real stack for the test run, on ephemeral ports and in a
 * temporary folder (so it never collides with `npm start`), and stops it after.
 */
import fs from 'node:fs';
import type { TestProject } from 'vitest/node';
import { freePorts } from '../../scripts/lib/process.ts';
import {
  KAFKA_SASL_USERS,
  Stack,
  ephemeralPorts,
  tmpStackDir,
  type StackEnv,
} from '../../scripts/lib/stack.ts';
import { provisionAll, type Tools } from '../../scripts/lib/tools.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackEnv;
    tools: Tools;
    /**
     * The broker's SASL listeners and their users (one per mechanism): `brokers`
     * SASL_PLAINTEXT, `tlsBrokers` SASL_SSL with the certificate in `caFile`.
     */
    kafkaSasl: {
      brokers: string;
      tlsBrokers: string;
      caFile: string;
      users: typeof KAFKA_SASL_USERS;
    };
  }
}

let stack: Stack | undefined;

export async function setup(project: TestProject): Promise<void> {
  const tools = provisionAll();
  const dataDir = tmpStackDir();
  stack = new Stack({
    dataDir,
    ports: await ephemeralPorts(freePorts),
    tools,
    ephemeral: true,
    kafkaSasl: true,
  });
  try {
    const env = await stack.startInfrastructure();
    project.provide('stack', env);
    project.provide('tools', tools);
    const secure = stack.kafkaSecure!;
    project.provide('kafkaSasl', {
      brokers: secure.saslBrokers,
      tlsBrokers: secure.saslSslBrokers,
      caFile: secure.caFile,
      users: KAFKA_SASL_USERS,
    });
  } catch (e) {
    await stack.stop();
    throw e;
  }
}

export async function teardown(): Promise<void> {
  if (!stack) return;
  await stack.stop();
  if (!process.env.KEEP_TEST_STACK) fs.rmSync(stack.opts.dataDir, { recursive: true, force: true });
}
