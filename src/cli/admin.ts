/*
 * Local administration without HTTP, on the serve_dir the configuration
 * names: `images list|show|disable|enable|delete|channel-add|channel-remove`,
 * `verify`, `prune` and `rescan`.
 * Every change goes through the store's writer (locks, atomic writes,
 * tombstones), so a running server sees it within seconds.
 */
import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { CliError } from '../errors.js';
import { createLogger } from '../log.js';
import { Channels, channelAdding, channelRemoval } from '../manifest/channels.js';
import { disabling } from '../manifest/states.js';
import { toImgapi } from '../manifest/views.js';
import { planPrune, prune } from '../store/prune.js';
import { requestRescan } from '../store/rescan-request.js';
import { ImageStore, type ImageRecord } from '../store/store.js';
import { bytesToVerify, repair, verifyImages } from '../store/verify.js';
import { ImageWriter, type Provenance } from '../store/writer.js';
import { configPath } from './common.js';

const ADMIN: Provenance = { via: 'admin', by: 'image-server (local)' };
/** The running server looks at serve_dir every second (scan_interval_ms); this leaves room for a busy one. */
const RESCAN_WAIT_MS = 15_000;

async function openStore(program: Command) {
  const config = loadConfig(configPath(program.opts().config));
  const store = await ImageStore.open({ serveDir: config.serve_dir, log: createLogger('warn', process.stderr), watch: false });
  return { store, writer: new ImageWriter(store), channels: Channels.configured(config.channels) };
}

/** The configured channel NAME, or why it is not one. */
function channelNamed(channels: Channels | undefined, name: string): Channels {
  if (!channels) throw new CliError('this server has no channels (see "channels" in its configuration)');
  if (!channels.has(name)) throw new CliError(`unknown channel ${name}: the channels are ${channels.list.map((c) => c.name).join(', ')}`);
  return channels;
}

function find(store: ImageStore, uuid: string): ImageRecord {
  const record = store.get(uuid);
  if (!record) throw new CliError(`no image ${uuid}`);
  return record;
}

function line(r: ImageRecord): string {
  const m = r.manifest;
  return [r.uuid, m.name, m.version, m.state, m.published_at ?? '-', String(m.files[0]?.size ?? 0)].join('  ');
}

function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

export function addAdminCommands(program: Command): void {
  const images = program.command('images').description('list and change images in serve_dir, without HTTP');
  images.command('list')
    .description('every image: uuid, name, version, state, published_at, size')
    .option('--json', 'the IMGAPI manifests as a JSON array')
    .option('--channel <name>', 'only the images in this channel')
    .action(async (opts: { json?: boolean; channel?: string }) => {
      const { store, channels } = await openStore(program);
      const all = opts.channel === undefined ? store.list()
        : store.list().filter((r) => channelNamed(channels, opts.channel!).of(r.facts).includes(opts.channel!));
      out(opts.json ? JSON.stringify(all.map((r) => toImgapi(r.manifest, channels?.of(r.facts))), null, 2) : all.map(line).join('\n'));
    });
  images.command('show <uuid>').description('one image manifest').action(async (uuid: string) => {
    const { store, channels } = await openStore(program);
    const { manifest } = find(store, uuid);
    out(JSON.stringify(toImgapi(manifest, channels?.of(manifest)), null, 2));
  });
  images.command('channel-add <uuid> <channel>').description('put an image in one more channel').action(async (uuid: string, name: string) => {
    const { store, writer, channels } = await openStore(program);
    find(store, uuid);
    const record = await writer.change(uuid, channelAdding(channelNamed(channels, name), name), ADMIN);
    out(`${uuid} channels: ${channelNamed(channels, name).of(record.facts).join(', ')}`);
  });
  images.command('channel-remove <uuid> <channel>')
    .description('take an image out of a channel (refused for its last one: delete it instead)')
    .action(async (uuid: string, name: string) => {
      const { store, writer, channels } = await openStore(program);
      find(store, uuid);
      const record = await writer.change(uuid, channelRemoval(channelNamed(channels, name), name), ADMIN);
      out(`${uuid} channels: ${channelNamed(channels, name).of(record.facts).join(', ')}`);
    });
  for (const [verb, disabled] of [['disable', true], ['enable', false]] as const) {
    images.command(`${verb} <uuid>`).description(`${verb} an image`).action(async (uuid: string) => {
      const { store, writer } = await openStore(program);
      find(store, uuid);
      const record = await writer.change(uuid, disabling(disabled), ADMIN);
      out(line(record));
    });
  }
  images.command('delete <uuid>').description('delete an image (refused while it is an origin)').action(async (uuid: string) => {
    const { store, writer } = await openStore(program);
    find(store, uuid);
    await writer.remove(uuid, ADMIN);
    out(`deleted ${uuid}`);
  });

  program.command('verify')
    .description('re-hash every image file against its manifest; --repair disables what is corrupt')
    .option('--repair', 'disable (never delete) the images with a problem')
    .option('--rate <MB/s>', 'read at most this many MB per second', Number)
    .action(async (opts: { repair?: boolean; rate?: number }) => {
      const { store, writer } = await openStore(program);
      if (opts.rate !== undefined && !(opts.rate > 0)) throw new CliError('--rate must be a positive number of MB/s');
      // Loaded here: the other commands, and the server, have no use for a progress bar.
      const { SingleBar } = await import('cli-progress');
      const bar = process.stderr.isTTY ? new SingleBar({ stream: process.stderr, format: 'verify [{bar}] {percentage}% {value}/{total} bytes' }) : null;
      bar?.start(bytesToVerify(store), 0);
      const problems = await verifyImages(store, {
        ...(opts.rate ? { rate: opts.rate * 1e6 } : {}),
        progress: (n) => bar?.increment(n),
      });
      bar?.stop();
      for (const p of problems) out(`CORRUPT ${p.uuid} ${p.name ?? ''} ${p.version ?? ''}: ${p.problem}`.replace(/ {2,}/g, ' '));
      const unrepaired = opts.repair ? await repair(writer, problems) : problems;
      if (opts.repair) for (const p of problems.filter((q) => !unrepaired.includes(q))) out(`DISABLED ${p.uuid}`);
      out(`${store.list().length} images verified, ${problems.length} with problems`);
      if (problems.length > 0) throw new CliError('', 1);
    });

  program.command('rescan')
    .description('make the running server check every image folder now (as kill -HUP does)')
    .action(async () => {
      const config = loadConfig(configPath(program.opts().config));
      if (!await requestRescan(config.serve_dir, RESCAN_WAIT_MS)) {
        throw new CliError(`no server took the request within ${RESCAN_WAIT_MS / 1000} s: is one running on ${config.serve_dir}?`);
      }
      out('rescan started');
    });

  program.command('prune')
    .description('keep the N newest active versions of each name; never an origin of what is kept')
    .requiredOption('--keep <n>', 'how many active versions of each name to keep (at least 1)', Number)
    .option('--name <name>', 'only images of this name')
    .option('--dry-run', 'print what would be removed, change nothing')
    .action(async (opts: { keep: number; name?: string; dryRun?: boolean }) => {
      if (!Number.isInteger(opts.keep) || opts.keep < 1) throw new CliError('--keep must be a whole number, at least 1');
      const { store, writer } = await openStore(program);
      const plan = planPrune(store.list(), opts.name === undefined ? { keep: opts.keep } : { keep: opts.keep, name: opts.name });
      for (const r of plan) out(`${opts.dryRun ? 'would remove' : 'removing'} ${r.uuid} ${r.facts.name} ${r.facts.version}`);
      if (!opts.dryRun) await prune(writer, plan, ADMIN);
    });
}
