/**
 * What the CLI prints: JSON for scripts (stdout, nothing else there), aligned
 * tables for people, and the exit codes every command shares.
 */

/** Exit codes of every command (also in `--help` and the README). */
export const ExitCode = {
  ok: 0,
  /** The command failed (an error, or every item of a bulk operation failed). */
  failure: 1,
  /** Unknown command or option, missing or invalid argument. */
  usage: 2,
  /** A bulk operation ran, but some of its items failed. */
  partial: 3,
} as const;

export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  failure (an error, a refused operation, an unknown id; every item of a bulk operation failed)
  2  usage error (unknown command or option, missing or invalid argument)
  3  partial failure: a bulk operation ran but some items failed

With --json, stdout holds exactly one JSON document (in scripts: npm run -s orderflow -- ...);
messages and progress go to stderr.`;

/** Exit code of a bulk operation over `total` items of which `failed` failed. */
export function bulkExitCode(failed: number, total: number): number {
  if (failed === 0) return ExitCode.ok;
  return failed === total ? ExitCode.failure : ExitCode.partial;
}

/** Writes `value` as the one JSON document on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const cellText = (v: unknown): string => {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(cellText).join(',');
  return JSON.stringify(v);
};

/** Rows as an aligned text table; the header is each column name in capitals. */
export function table(rows: readonly object[], columns: readonly string[]): string {
  const cell = (r: object, c: string) => cellText((r as Record<string, unknown>)[c]);
  const cells = rows.map((r) => columns.map((c) => cell(r, c).replace(/\s*\n\s*/g, ' ')));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

/** `examples` as a help section: one "$ npm run orderflow -- ..." line each, with a comment. */
export function examplesHelp(examples: readonly [command: string, comment?: string][]): string {
  const width = Math.max(...examples.map(([c]) => c.length));
  return `\nExamples:\n${examples
    .map(([c, comment]) =>
      comment
        ? `  $ npm run orderflow -- ${c.padEnd(width)}  # ${comment}`
        : `  $ npm run orderflow -- ${c}`,
    )
    .join('\n')}`;
}
