/**
 * Builds the orders worker's workflow bundle for the sources as they are
 * (src/workers/workflow-bundle.ts), unless it is already there. Setup does
 * this too; the Docker image runs it at build time.
 */
import { buildWorkflowBundle } from '../src/workers/workflow-bundle.ts';

try {
  const { codePath, built } = await buildWorkflowBundle(undefined, (m) => console.error(m));
  if (!built) console.error(`workflow bundle is current: ${codePath}`);
} catch (e) {
  console.error(`workflow bundle not built: ${(e as Error).message}`);
  process.exit(1);
}
