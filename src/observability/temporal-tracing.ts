/**
 * Temporal's OpenTelemetry interceptors, wired only while tracing is on: the
 * client puts the active context in the workflow start (signal, update)
 * headers; workers continue it in the workflow (spans exported through a sink,
 * the sandbox has no exporter of its own), pass it to each activity and run
 * the activity in a span of it.
 */
import type { WorkflowClientInterceptor } from '@temporalio/client';
import {
  OpenTelemetryPlugin,
  OpenTelemetryWorkflowClientInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { WorkerPlugin } from '@temporalio/worker';
import { tracingEnabled, type Tracing } from './tracing.ts';

/** Client interceptors for a Temporal client built now (none while tracing is off). */
export function temporalClientInterceptors():
  { workflow: WorkflowClientInterceptor[] } | undefined {
  return tracingEnabled()
    ? { workflow: [new OpenTelemetryWorkflowClientInterceptor()] }
    : undefined;
}

/**
 * Worker plugins: the workflow interceptor module (bundled with the workflow
 * code), its span sink, the activity interceptors and the worker's own client
 * interceptor. None while tracing is off, so the bundle stays as it is.
 */
export function temporalWorkerPlugins(tracing: Tracing): WorkerPlugin[] {
  if (!tracing.enabled || !tracing.resource || !tracing.spanProcessor) return [];
  return [
    new OpenTelemetryPlugin({ resource: tracing.resource, spanProcessor: tracing.spanProcessor }),
  ];
}
