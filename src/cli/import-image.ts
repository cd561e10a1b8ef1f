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
 * --check: validate everything that can be known before the stream (the
 * manifest, a free name, version and uuid, the origin) and exit, reading
 * nothing; mkimg runs it before it stops a zone.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { pipeline, type Readable } from 'node:stream';
import { Command, InvalidArgumentError, Option } from 'commander';
import { v5 as uuidv5 } from 'uuid';
import { loadConfig, type Config } from '../config.js';
import { CliError } from '../errors.js';
import { createLogger } from '../log.js';
import { activatedManifest, importedManifest } from '../manifest/publish.js';
import { COMPRESSIONS, ZERO_UUID, isObject, type Compression, type JsonObject } from '../manifest/types.js';
import { GzipCheck } from '../store/gzip-check.js';
import { withImageLock } from '../store/locks.js';
import { withHistory } from '../store/sidecar.js';
import { sniffStream } from '../store/sniff.js';
import { ImageStore } from '../store/store.js';
import { ImageWriter } from '../store/writer.js';
import { VERSION } from '../version.js';
import { configPath, run } from './common.js';
import { progressMeter } from './progress.js';
import { SealCheck } from './seal.js';

/** Names the lock that makes NAME@VERSION unique among concurrent imports. */
const NAME_VERSION_NAMESPACE = '8b6b1b4e-4c0a-4f31-9a3e-5d6f3c2a9e10';

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
  const defaults = { owner: String(m.owner), public: config.default_public };
  return activatedManifest(importedManifest(m, String(m.uuid), defaults), new Date());
}

function refuseTaken(store: ImageStore, m: JsonObject): void {
  if (store.get(String(m.uuid))) throw new CliError(`an image with uuid ${String(m.uuid)} already exists`);
  // Checked here too, not only by the writer, so that --check sees it before a zone is stopped.
  if (fs.existsSync(store.layout.tombstonePath(String(m.uuid)))) {
    throw new CliError(`uuid ${String(m.uuid)} belonged to an image that was deleted; it cannot be reused`);
  }
  const twin = store.list().find((r) => r.manifest.name === m.name && r.manifest.version === m.version);
  if (twin) throw new CliError(`${String(m.name)} ${String(m.version)} is already taken by image ${twin.uuid}`);
  if (typeof m.origin === 'string' && !store.get(m.origin)) throw new CliError(`origin image ${m.origin} does not exist`);
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
  const store = await ImageStore.open({ serveDir: config.serve_dir, log, watch: false });
  const writer = new ImageWriter(store);
  const lockName = uuidv5(`${name}\u0000${version}`, NAME_VERSION_NAMESPACE);
  const record = await withImageLock(store.layout, lockName, async () => {
    await store.rescan();
    refuseTaken(store, manifest);
    if (opts.check) return null;
    const { source, compression } = await prepareStream(process.stdin, opts.compression, opts.sealed === true);
    const meter = progressMeter(process.stderr);
    const sidecar = withHistory({ source: { via: 'import-image' } }, 'imported');
    try {
      return await writer.create(manifest, sidecar, {
        source: meter ? pipeline(source, meter.counter, () => undefined) : source,
        compression,
        expect: { maxBytes: config.max_upload_bytes },
      });
    } finally {
      meter?.stop();
    }
  });
  await store.close();
  finished = true;
  if (record) process.stdout.write(`${record.uuid}\n`);
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
  .addOption(new Option('--compression <kind>', 'how the stream is compressed (default: detected)').choices(COMPRESSIONS))
  .option('--sealed', 'the stream ends with an IMAGE-SERVER-SEAL line (size and sha1); publish only if it is there and matches')
  .option('--check', 'only check the arguments, and that the name, version and uuid are free and the origin exists; reads no stream')
  .option('-c, --config <path>', 'configuration file (default: $IMAGE_SERVER_CONFIG or ./config.json of the install)')
  .action(importImage);

run(program);
