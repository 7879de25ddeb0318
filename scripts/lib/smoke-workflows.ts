// Workflows for the smoke tests (test/smoke/temporal.test.ts) and the SQLite probe
// (bench/probes/temporal-sqlite.ts): one that calls an activity, one that sleeps for a day.
import { proxyActivities, sleep } from '@temporalio/workflow';

export interface SmokeActivities {
  greet(name: string): Promise<string>;
}

const { greet } = proxyActivities<SmokeActivities>({ startToCloseTimeout: '10 seconds' });

/** Calls one activity and returns its result. */
export async function greetWorkflow(name: string): Promise<string> {
  return await greet(name);
}

/** Sleeps a whole day of workflow time, then returns. */
export async function sleepADayWorkflow(): Promise<string> {
  await sleep('1 day');
  return 'woke up';
}
