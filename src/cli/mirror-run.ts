/*
 * The run of `image-server mirror` (mirror.ts defines the command): loaded
 * only when the command runs, so that other commands and the server do not
 * load the mirror engine and the progress bar.
 */
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { configPath, landingChannel } from './common.js';
import { human } from './progress.js';
import { loadConfig } from '../config/config.js';
import { CliError } from '../errors.js';
import { createLogger } from '../log.js';
import { Channels } from '../manifest/channels.js';
import { ImageStore } from '../store/store.js';
import { ImageWriter } from '../store/writer.js';
import { Mirror, type PlanEntry } from '../mirror/engine.js';
import { count, failed, type ItemResult, type MirrorListener } from '../mirror/report.js';
import type { UpstreamType } from '../mirror/upstream.js';

export interface Options {
  type: UpstreamType;
  name: string[];
  os: string[];
  imageType: string[];
  dryRun?: boolean;
  caFile?: string;
  concurrency?: number;
  channel?: string;
}

function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

const label = (r: { uuid: string; name?: string | undefined; version?: string | undefined }) =>
  [r.uuid, r.name, r.version].filter(Boolean).join(' ');

/** A bar over the bytes to copy on a terminal; plain lines on stderr otherwise. */
function progress(stream: NodeJS.WriteStream, dryRun: boolean): MirrorListener & { stop(): void } {
  const line = (text: string) => stream.write(`mirror: ${text}\n`);
  if (!stream.isTTY) {
    return {
      planned: (plan) => line(`${plan.length} image(s) to ${dryRun ? 'copy (dry run)' : 'copy'}`),
      started: (e) => line(`copying ${label(e.image)} (${human(e.image.size)})${e.role === 'origin' ? ' (origin)' : ''}`),
      retrying: (_what, err, ms) => line(`${err.message}; retrying in ${ms} ms`),
      finished: (r) => {
        if (r.outcome === 'copied') line(`copied ${label(r)} (${human(r.bytes ?? 0)} in ${(r.seconds ?? 0).toFixed(1)} s)`);
        else if (r.outcome === 'failed') line(`FAILED ${label(r)}: ${r.error}`);
      },
      stop: () => undefined,
    };
  }
  const bar = new SingleBar({
    stream,
    format: 'mirror [{bar}] {percentage}% | {done}/{total_bytes} | {images} | {current}',
    hideCursor: true,
    fps: 5,
  });
  let images = 0;
  let finished = 0;
  let bytes = 0;
  let total = 0;
  const current = new Set<string>();
  const payload = () => ({
    done: human(bytes),
    total_bytes: human(total),
    images: `${finished}/${images} images`,
    current: [...current].join(', ').slice(0, 60),
  });
  return {
    planned: (plan: readonly PlanEntry[]) => {
      if (dryRun || plan.length === 0) return;
      images = plan.length;
      total = plan.reduce((sum, e) => sum + e.image.size, 0);
      bar.start(total, 0, payload());
    },
    started: (e) => {
      current.add(`${e.image.name} ${e.image.version}`);
      bar.update(bytes, payload());
    },
    bytes: (_e, n) => {
      bytes += n;
      bar.update(bytes, payload());
    },
    finished: (r: ItemResult, e?: PlanEntry) => {
      if (!e) return;
      finished++;
      current.delete(`${e.image.name} ${e.image.version}`);
      // Resumed bytes and images not fetched count as done.
      if (r.outcome !== 'copied' || (r.bytes ?? 0) < e.image.size) bytes += e.image.size - (r.bytes ?? 0);
      bar.update(Math.min(bytes, total), payload());
    },
    stop: () => bar.stop(),
  };
}

export async function mirrorCommand(program: Command, url: string, opts: Options): Promise<void> {
  if (opts.concurrency !== undefined && !(Number.isInteger(opts.concurrency) && opts.concurrency >= 1)) {
    throw new CliError('--concurrency must be a whole number, at least 1');
  }
  const config = loadConfig(configPath(program.opts().config));
  const log = createLogger('warn', process.stderr);
  const store = await ImageStore.open({ serveDir: config.serve_dir, log, watch: false });
  const landing = landingChannel(opts.channel, config);
  const mirror = new Mirror({
    url,
    type: opts.type,
    filters: { name: opts.name, os: opts.os, imageType: opts.imageType },
    ...(opts.caFile ? { caFile: opts.caFile } : {}),
    ...landing,
  }, {
    store,
    channels: Channels.configured(config.channels),
    writer: new ImageWriter(store),
    maxFileBytes: config.max_upload_bytes,
    // What the engine logs, the listener below says in plain words.
    log: createLogger('silent'),
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
  });
  const listener = progress(process.stderr, opts.dryRun === true);
  const stopper = new AbortController();
  const interrupt = () => stopper.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  let report;
  try {
    report = await mirror.run({ dryRun: opts.dryRun === true, listener, signal: stopper.signal });
  } finally {
    listener.stop();
    mirror.close();
    await store.close();
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
  if (report.error) throw new CliError(`listing ${report.upstream} failed: ${report.error}`);
  for (const r of report.results) {
    if (r.outcome === 'planned') {
      const entry = report.plan.find((e) => e.image.uuid === r.uuid);
      const why = entry?.role === 'origin' ? ` (origin of ${entry.originOf.join(', ')})` : '';
      out(`would copy ${label(r)} ${human(entry?.image.size ?? 0)}${why}`);
    } else if (r.outcome === 'copied') {
      out(`copied ${label(r)}`);
    } else if (r.outcome === 'channel-planned' || r.outcome === 'channel-added') {
      out(`${r.outcome === 'channel-planned' ? 'would add' : 'added'} ${label(r)} to channel ${landing.channel ?? ''} (here already)`);
    } else if (r.outcome === 'failed') {
      out(`FAILED ${label(r)}: ${r.error}`);
    }
  }
  const present = count(report, 'present');
  const deleted = count(report, 'deleted');
  const parts = [
    opts.dryRun ? `${count(report, 'planned')} to copy` : `${count(report, 'copied')} copied`,
    `${present} already here`,
    ...(count(report, 'channel-added') ? [`${count(report, 'channel-added')} added to channel ${landing.channel ?? ''}`] : []),
    ...(deleted ? [`${deleted} deleted here (not copied again)`] : []),
    `${count(report, 'failed')} failed`,
  ];
  out(`${parts.join(', ')} (from ${report.upstream}, ${report.selected} image(s) selected)`);
  if (failed(report)) throw new CliError('', 1);
}
