/**
 * Temporal connection settings, following the SDK's own conventions
 * (@temporalio/envconfig): TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_PROFILE / TEMPORAL_CONFIG_FILE.
 * So the same build runs against a self-hosted cluster or Temporal Cloud.
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import type { Config } from './env.ts';

export interface TemporalConnectSettings {
  connectionOptions: NativeConnectionOptions & { address: string };
  namespace: string;
}

export function temporalConnectSettings(
  config: Pick<Config, 'TEMPORAL_ADDRESS' | 'TEMPORAL_NAMESPACE'>,
  env: NodeJS.ProcessEnv = process.env,
): TemporalConnectSettings {
  const vars = Object.fromEntries(
    Object.entries(env).filter(
      (e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '',
    ),
  );
  const loaded = loadClientConnectConfig({ overrideEnvVars: vars });
  // Explicit variables win; then a TOML profile; then orderflow's local default.
  const address =
    vars.TEMPORAL_ADDRESS ?? loaded.connectionOptions.address ?? config.TEMPORAL_ADDRESS;
  const namespace = vars.TEMPORAL_NAMESPACE ?? loaded.namespace ?? config.TEMPORAL_NAMESPACE;
  return { connectionOptions: { ...loaded.connectionOptions, address }, namespace };
}
