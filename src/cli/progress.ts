/**
 * Progress of bulk work, always on stderr (stdout stays parseable): a
 * cli-progress bar when stderr is a terminal, plain lines at most every few
 * seconds otherwise (logs, CI, pipes).
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** `done` of `total` finished so far, `failed` of them failed. */
  update(done: number, failed?: number): void;
  /** Shows the last state and releases the terminal line. */
  stop(): void;
}

export interface ProgressOptions {
  /** What is counted ("retried", "replayed orderflow.analytics"). */
  label: string;
  total: number;
  stream?: NodeJS.WriteStream | NodeJS.WritableStream;
  /** Plain mode: the least time between two lines (the first and last are always written). */
  intervalMs?: number;
  /** Overrides the terminal check (tests). */
  tty?: boolean;
}

/** Starts reporting progress towards `total`. */
export function startProgress({
  label,
  total,
  stream = process.stderr,
  intervalMs = 2000,
  tty = (stream as NodeJS.WriteStream).isTTY === true,
}: ProgressOptions): Progress {
  return tty ? barProgress(label, total, stream) : lineProgress(label, total, stream, intervalMs);
}

function barProgress(
  label: string,
  total: number,
  stream: NodeJS.WriteStream | NodeJS.WritableStream,
): Progress {
  const bar = new cliProgress.SingleBar(
    {
      stream: stream,
      format: `${label} [{bar}] {value}/{total} {percentage}% | ETA {eta_formatted}{failedText}`,
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { failedText: '' });
  let stopped = false;
  return {
    update(done, failed = 0) {
      if (done > bar.getTotal()) bar.setTotal(done);
      bar.update(done, { failedText: failed ? ` | ${failed} failed` : '' });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}

function lineProgress(
  label: string,
  total: number,
  stream: NodeJS.WriteStream | NodeJS.WritableStream,
  intervalMs: number,
): Progress {
  let done = 0;
  let failed = 0;
  let lastLine = '';
  let lastAt = 0;
  const write = () => {
    const pct = total > 0 ? Math.floor((Math.min(done, total) / total) * 100) : 100;
    const line = `${label}: ${done}/${total} (${pct}%)${failed ? `, ${failed} failed` : ''}`;
    if (line === lastLine) return;
    stream.write(`${line}\n`);
    lastLine = line;
    lastAt = Date.now();
  };
  write();
  let stopped = false;
  return {
    update(d, f = 0) {
      done = d;
      failed = f;
      if (Date.now() - lastAt >= intervalMs) write();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      write();
    },
  };
}
