/** What every configuration module shares: the error that names a variable, and durations. */

/** Thrown when an environment variable is missing or malformed; names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A ConfigError listing each problem (each names its variable) on a line of its own. */
export const invalidConfiguration = (issues: readonly string[]): ConfigError =>
  new ConfigError(`Invalid configuration:\n${issues.map((i) => `  ${i}`).join('\n')}`);

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** "250ms", "5s", "2m", "1h" in milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  return m ? Math.round(Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS]) : undefined;
}
