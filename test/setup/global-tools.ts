/**
 * The unit tier's global setup (vitest.unit.config.ts): the provisioned tools
 * (the time-skipping test server) without starting a stack.
 */
import type { TestProject } from 'vitest/node';
import { provisionAll } from '../../scripts/lib/tools.ts';

export function setup(project: TestProject): void {
  project.provide('tools', provisionAll());
}
