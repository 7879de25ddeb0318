/** Progress of the CLI's bulk work: a bar on a terminal, throttled plain lines otherwise. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { startProgress } from '../../src/cli/progress.ts';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (c: Buffer) => (out += c.toString()));
  return { stream, text: () => out };
}

/** startProgress off a terminal (plain lines) at most every `intervalMs`, its output captured. */
function plainProgress(label: string, total: number, intervalMs: number) {
  const { stream, text } = capture();
  return { progress: startProgress({ label, total, stream, tty: false, intervalMs }), text };
}

describe('startProgress', () => {
  it('writes plain lines when not on a terminal: the first, at most one per interval, and the last', () => {
    const { progress, text } = plainProgress('retried', 4, 60_000);
    progress.update(1);
    progress.update(2, 1);
    progress.update(4, 1);
    progress.stop();
    progress.stop();
    expect(text()).toBe('retried: 0/4 (0%)\nretried: 4/4 (100%), 1 failed\n');
  });

  it('writes every update when the interval has passed', () => {
    const { progress, text } = plainProgress('published', 2, 0);
    progress.update(1);
    progress.update(2);
    progress.stop();
    expect(text().split('\n')).toEqual([
      'published: 0/2 (0%)',
      'published: 1/2 (50%)',
      'published: 2/2 (100%)',
      '',
    ]);
  });

  it('draws a cli-progress bar on a terminal', () => {
    const { stream, text } = capture();
    Object.assign(stream, {
      isTTY: true,
      columns: 120,
      cursorTo: () => true,
      clearLine: () => true,
      moveCursor: () => true,
    });
    const progress = startProgress({ label: 'replayed', total: 10, stream });
    progress.update(5, 2);
    progress.stop();
    expect(text()).toMatch(/replayed \[[█░]+\] 5\/10 50% \| ETA .* \| 2 failed/);
  });
});
