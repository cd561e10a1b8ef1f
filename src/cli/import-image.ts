#!/usr/bin/env node
/*
 * import-image NAME VERSION DESCRIPTION < stream
 *
 * Publishes a zfs send stream read from stdin, as the original
 * smartos-image-server's import-image did (`zfs send … | gzip | ssh server
 * import-image NAME VERSION DESCRIPTION`), but through the same import
 * transaction as HTTP uploads: nothing is visible until the whole stream is
 * in, verified and fsynced, and a running server shows the image within
 * seconds. Prints the new image's UUID, and nothing else, on stdout.
 *
 * --sealed: the stream ends with a seal line (see seal.ts) that the sender
 * writes only when every stage before ssh succeeded; without it, or if it
 * does not match, nothing is published. mkimg always sends one.
 * --channel NAME: on a server with channels, publish into NAME rather
 * than the default channel.
 * --check: validate everything that can be known before the stream (the
 * manifest, a free name, version and uuid, the origin) and exit, reading
 * nothing; mkimg runs it before it stops a zone.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { pipeline, type Readable } from 'node:stream';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig, type Config } from '../config/config.js';
import { CliError } from '../errors.js';
import { createLogger } from '../log.js';
import { importedManifest } from '../manifest/publish.js';
import { activated } from '../manifest/states.js';
import { COMPRESSIONS, ZERO_UUID, isObject, type Compression, type JsonObject, type Manifest } from '../manifest/types.js';
import { GzipCheck } from '../store/gzip-check.js';
import { sniffStream } from '../store/sniff.js';
import { ImageStore, type ImageRecord } from '../store/store.js';
import { ImageWriter } from '../store/writer.js';
import { VERSION } from '../version.js';
import { configPath, landingChannel, run } from './common.js';
import { progressMeter } from './progress.js';
import { SealCheck } from './seal.js';

interface Options {
  os?: string;
  type?: string;
  uuid?: string;
  origin?: string;
  homepage?: string;
  tag: [string, unknown][];
  requirement: [string, unknown][];
  set: [string, unknown][];
  manifest?: string;
  compression?: Compression;
  sealed?: boolean;
  check?: boolean;
  config?: string;
  channel?: string;
}

/** KEY=VALUE, where VALUE is JSON if it parses as JSON, else the plain string. */
function keyValue(arg: string, previous: [string, unknown][]): [string, unknown][] {
  const eq = arg.indexOf('=');
  if (eq < 1) throw new InvalidArgumentError(`expected KEY=VALUE, got "${arg}"`);
  const raw = arg.slice(eq + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // a plain string
  }
  return [...previous, [arg.slice(0, eq), value]];
}

/** KEY=VALUE, VALUE kept as typed: a tag "kernel_version=3.10" must not become 3.1. */
function keyString(arg: string, previous: [string, unknown][]): [string, unknown][] {
  const eq = arg.indexOf('=');
  if (eq < 1) throw new InvalidArgumentError(`expected KEY=VALUE, got "${arg}"`);
  return [...previous, [arg.slice(0, eq), arg.slice(eq + 1)]];
}

function readManifestFile(file: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CliError(`cannot read the manifest ${file}: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw new CliError(`the manifest ${file} is not a JSON object`);
  return value;
}

/** The manifest: --manifest, then the arguments, then the flags, each overriding the last. */
function composeManifest(name: string, version: string, description: string, opts: Options, config: Readonly<Config>) {
  const base = opts.manifest ? readManifestFile(opts.manifest) : {};
  const m: JsonObject = { ...base, v: 2, name, version, description };
  m.uuid = opts.uuid ?? base.uuid ?? randomUUID();
  m.owner = base.owner ?? (config['image-creator-uuid'] || ZERO_UUID);
  m.type = opts.type ?? base.type ?? 'zone-dataset';
  m.os = opts.os ?? base.os ?? 'smartos';
  if (opts.origin) m.origin = opts.origin;
  if (opts.homepage) m.homepage = opts.homepage;
  if (opts.tag.length > 0) m.tags = { ...(isObject(base.tags) ? base.tags : {}), ...Object.fromEntries(opts.tag.map(([k, v]) => [k, String(v)])) };
  if (opts.requirement.length > 0) {
    m.requirements = { ...(isObject(base.requirements) ? base.requirements : {}), ...Object.fromEntries(opts.requirement) };
  }
  for (const [key, value] of opts.set) m[key] = value;
  const defaults = { owner: String(m.owner), public: config.default_public, ...landingChannel(opts.channel, config) };
  return activated(importedManifest(m, String(m.uuid), defaults), new Date());
}


/**
 * What will be stored: the stream as given (minus its seal when sealed), its
 * compression, and a gzip check when it is gzip.
 */
async function prepareStream(stdin: Readable, compression: Compression | undefined, sealed: boolean) {
  // pipeline() hands the error of any stage to the last one, which the import reads.
  let source: Readable = sealed ? pipeline(stdin, new SealCheck(), () => undefined) : stdin;
  let kind = compression;
  if (!kind) ({ compression: kind, stream: source } = await sniffStream(source));
  if (kind === 'gzip') source = pipeline(source, new GzipCheck(), () => undefined);
  return { source, compression: kind };
}

async function importImage(name: string, version: string, description: string, opts: Options): Promise<void> {
  if (process.stdin.isTTY && !opts.check) throw new CliError('the image stream is read from stdin, which is a terminal: pipe or redirect it in');
  // Node ends a process whose event loop ran dry even with this import
  // still pending, with status 0; a stalled stream must fail loudly instead.
  let finished = false;
  process.once('beforeExit', () => {
    if (finished) return;
    process.stderr.write('import-image: the import stalled before the stream ended (internal error); nothing was published\n');
    process.exit(1);
  });
  const config = loadConfig(configPath(opts.config));
  const manifest = composeManifest(name, version, description, opts, config);
  const log = createLogger('warn', process.stderr);
  // From the server's snapshot: on a large catalog, reading every folder would take longer than many imports.
  const store = await ImageStore.open({ serveDir: config.serve_dir, log, watch: false, fromSnapshot: true });
  const writer = new ImageWriter(store);
  const record = opts.check
    ? await writer.check(manifest, { uniqueNameVersion: true, file: { compression: opts.compression ?? 'none', expect: { maxBytes: config.max_upload_bytes } } })
    : await publish(writer, manifest, opts, config.max_upload_bytes);
  await store.close();
  finished = true;
  if (record) process.stdout.write(`${record.uuid}\n`);
}

async function publish(writer: ImageWriter, manifest: Manifest, opts: Options, maxBytes: number): Promise<ImageRecord> {
  const { source, compression } = await prepareStream(process.stdin, opts.compression, opts.sealed === true);
  const meter = progressMeter(process.stderr);
  try {
    return await writer.create(manifest, { via: 'import-image', by: importer() }, {
      file: { source: meter ? pipeline(source, meter.counter, () => undefined) : source, compression, expect: { maxBytes } },
      uniqueNameVersion: true,
    });
  } finally {
    meter?.stop();
  }
}

/** Who runs the import: the login name (ssh passes it on), for the image's history. */
function importer(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'import-image';
  }
}

const program = new Command('import-image')
  .description('publish a zfs send stream read from stdin; prints the new image uuid')
  .version(VERSION)
  .argument('<name>', 'image name')
  .argument('<version>', 'image version')
  .argument('<description>', 'one-line description')
  .option('--os <os>', 'smartos (default), linux, windows, bsd, illumos or other')
  .option('--type <type>', 'zone-dataset (default), lx-dataset, zvol, docker or other')
  .option('--uuid <uuid>', 'the image uuid (default: a new one)')
  .option('--origin <uuid>', 'the origin of an incremental image (it must exist)')
  .option('--homepage <url>', 'homepage URL')
  .option('--tag <key=value>', 'a tag (a string value); repeatable', keyString, [])
  .option('--requirement <key=value>', 'a requirement: brand=lx, min_platform=\'{"7.0":"20240101T000000Z"}\', …; repeatable', keyValue, [])
  .option('--set <key=value>', 'any other manifest field (JSON value), e.g. nic_driver=virtio; repeatable', keyValue, [])
  .option('--manifest <file>', 'a full manifest; the arguments and flags override it')
  .option('--channel <name>', "the channel to publish into (default: the server's default channel)")
  .addOption(new Option('--compression <kind>', 'how the stream is compressed (default: detected)').choices(COMPRESSIONS))
  .option('--sealed', 'the stream ends with an IMAGE-SERVER-SEAL line (size and sha1); publish only if it is there and matches')
  .option('--check', 'only check the arguments, and that the name, version and uuid are free and the origin exists; reads no stream')
  .option('-c, --config <path>', 'configuration file (default: $IMAGE_SERVER_CONFIG or ./config.json of the install)')
  .action(importImage);

run(program);
