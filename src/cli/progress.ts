/*
 * Bytes and rate of a stream on a terminal, with cli-progress; nothing at
 * all when stderr is not a terminal (ssh without -t, cron, pipes), so logs
 * and scripts never see control characters.
 */
import { SingleBar } from 'cli-progress';
import { Transform, type TransformCallback } from 'node:stream';

export function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export interface Meter {
  /** Pipe the data through this to count it. */
  counter: Transform;
  stop(): void;
}

export function progressMeter(out: NodeJS.WriteStream): Meter | null {
  if (!out.isTTY) return null;
  const started = Date.now();
  const bar = new SingleBar({
    stream: out,
    format: '{bytes} received, {rate}/s',
    hideCursor: true,
    fps: 4,
    noTTYOutput: false,
  });
  let total = 0;
  bar.start(0, 0, { bytes: human(0), rate: human(0) });
  const counter = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      total += chunk.length;
      const seconds = Math.max((Date.now() - started) / 1000, 0.001);
      bar.update(0, { bytes: human(total), rate: human(total / seconds) });
      done(null, chunk);
    },
  });
  return { counter, stop: () => bar.stop() };
}
