/*
 * `image-server smf`: print the SMF manifest for this install, like the
 * original Makefile's `make smf` did. smf/image-server.xml is a complete
 * manifest for the default install and the template: each value an install
 * changes (credential, working directory, HOME, node and the script in the
 * start method, the config/file property, the README link, the stop
 * timeout) is found in its own element and attribute and replaced there,
 * exactly once, so a template edit that moves one fails loudly here and in
 * the tests instead of printing a manifest with a stale value.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { loadConfig } from '../config/config.js';
import { CliError } from '../errors.js';
import { ROOT_URL } from '../version.js';

export const TEMPLATE_PATH = fileURLToPath(new URL('smf/image-server.xml', ROOT_URL));

/** The values smf/image-server.xml is written with. */
export const TEMPLATE_DEFAULTS = {
  user: 'imgserver',
  group: 'imgserver',
  prefix: '/opt/image-server',
  config: '/opt/image-server/config.json',
  node: '/opt/local/bin/node',
  stopTimeout: 60,
} as const;

export interface SmfOptions {
  user: string;
  group: string;
  /** The install root: dist/, scripts/ and README.md are under it. */
  prefix: string;
  config: string;
  node: string;
  /** Seconds: longer than the config's SIGTERM drain, so a stop never ends in maintenance. */
  stopTimeout: number;
}

/** The drain default of src/config.ts; used when the config file cannot be read. */
const DEFAULT_DRAIN_MS = 20_000;
/** What a stop may take beyond the drain: closing, flushing logs, exiting. */
const STOP_MARGIN_S = 30;

/** Seconds the stop method may take for a given drain: at least the template's 60. */
export function stopTimeoutFor(drainMs: number): number {
  return Math.max(TEMPLATE_DEFAULTS.stopTimeout, Math.ceil(drainMs / 1000) + STOP_MARGIN_S);
}

// svc.startd runs `/sbin/sh -c "exec <exec>"` and expands %-tokens first, so
// anything that goes into the start method must need no quoting.
const PATH_RE = /^\/[A-Za-z0-9._+@,:=/-]*$/;
const NAME_RE = /^(?:[A-Za-z_][A-Za-z0-9._-]*|\d+)$/;

function checkPath(what: string, value: string): string {
  const abs = path.resolve(value);
  if (!PATH_RE.test(abs)) {
    throw new CliError(`--${what} ${JSON.stringify(value)}: only letters, digits and . _ + @ , : = / - may appear in an SMF exec path`);
  }
  return abs.length > 1 ? abs.replace(/\/+$/, '') : abs;
}

function checkName(what: string, value: string): string {
  if (!NAME_RE.test(value)) throw new CliError(`--${what} ${JSON.stringify(value)} is not a user or group name`);
  return value;
}

const escapeAttr = (value: string) =>
  value.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

/**
 * Replaces the value of one attribute, found by `re` (group 1 is everything
 * up to the opening quote), which must match exactly once.
 */
function setAttr(xml: string, what: string, re: RegExp, value: (old: string) => string): string {
  const global = new RegExp(re.source, `${re.flags.replace('g', '')}g`);
  const matches = [...xml.matchAll(global)];
  if (matches.length !== 1) {
    throw new Error(`${TEMPLATE_PATH}: expected one ${what}, found ${matches.length}`);
  }
  return xml.replace(global, (_all, head: string, old: string) => `${head}"${escapeAttr(value(old))}"`);
}

/** Replaces a leading `from` of an attribute value; the template must start with it. */
function swapPrefix(what: string, old: string, from: string, to: string): string {
  if (!old.startsWith(from)) throw new Error(`${TEMPLATE_PATH}: ${what} "${old}" does not start with "${from}"`);
  return to + old.slice(from.length);
}

/** The template with `opts` filled in. */
export function fillManifest(template: string, opts: SmfOptions): string {
  const d = TEMPLATE_DEFAULTS;
  let xml = template;
  xml = setAttr(xml, 'method_credential user', /(<method_credential\b[^>]*?\buser=)"([^"]*)"/, () => opts.user);
  xml = setAttr(xml, 'method_credential group', /(<method_credential\b[^>]*?\bgroup=)"([^"]*)"/, () => opts.group);
  xml = setAttr(xml, 'method_context working_directory', /(<method_context\b[^>]*?\bworking_directory=)"([^"]*)"/, () => opts.prefix);
  xml = setAttr(xml, 'HOME envvar', /(<envvar\s+name="HOME"\s+value=)"([^"]*)"/, () => opts.prefix);
  xml = setAttr(xml, 'start exec', /(<exec_method\b(?=[^>]*\bname="start")[^>]*?\bexec=)"([^"]*)"/, (old) => {
    const [node, script, ...args] = old.split(' ');
    if (node !== d.node) throw new Error(`${TEMPLATE_PATH}: the start method does not begin with ${d.node}`);
    return [opts.node, swapPrefix('start script', script ?? '', `${d.prefix}/`, `${opts.prefix}/`), ...args].join(' ');
  });
  xml = setAttr(xml, 'stop timeout', /(<exec_method\b(?=[^>]*\bname="stop")[^>]*?\btimeout_seconds=)"([^"]*)"/, () => String(opts.stopTimeout));
  xml = setAttr(
    xml,
    'config/file property',
    /(<property_group\s+name="config"[^>]*>\s*<propval\s+name="file"\s+type="astring"\s+value=)"([^"]*)"/,
    () => opts.config,
  );
  xml = setAttr(xml, 'README doc_link', /(<doc_link\s+name="README"\s+uri=)"([^"]*)"/, (old) =>
    swapPrefix('README link', old, `file://localhost${d.prefix}/`, `file://localhost${opts.prefix}/`));
  return xml;
}

interface CommandOptions {
  user?: string;
  group?: string;
  prefix?: string;
  node?: string;
  output?: string;
}

/**
 * Resolves the options: the install root this command runs from, its
 * config.json, pkgsrc's node and the "imgserver" user by default. The stop
 * timeout follows drain_timeout_ms of the config file when it can be read
 * here (it usually can: the manifest is made on the machine it is for).
 */
export function resolveOptions(cmd: CommandOptions, configOption: string | undefined, warn: (msg: string) => void): SmfOptions {
  const prefix = checkPath('prefix', cmd.prefix ?? fileURLToPath(ROOT_URL));
  const config = checkPath('config', configOption ?? path.join(prefix, 'config.json'));
  const user = checkName('user', cmd.user ?? TEMPLATE_DEFAULTS.user);
  const group = checkName('group', cmd.group ?? (cmd.user === undefined ? TEMPLATE_DEFAULTS.group : user));
  const node = checkPath('node', cmd.node ?? TEMPLATE_DEFAULTS.node);
  let drainMs = DEFAULT_DRAIN_MS;
  try {
    drainMs = loadConfig(config).drain_timeout_ms;
  } catch (err) {
    warn(`${(err as Error).message}; the stop timeout assumes the default drain of ${DEFAULT_DRAIN_MS / 1000} s`);
  }
  return { user, group, prefix, config, node, stopTimeout: stopTimeoutFor(drainMs) };
}

export function addSmfCommand(program: Command): void {
  program.command('smf')
    .description('print an SMF manifest for this install (smf/image-server.xml filled in); --config names the config file it starts with')
    .option('--user <name>', `user the service runs as (default: ${TEMPLATE_DEFAULTS.user})`)
    .option('--group <name>', `its group (default: ${TEMPLATE_DEFAULTS.group}, or the --user given)`)
    .option('--prefix <dir>', 'install root holding dist/ (default: this install)')
    .option('--node <path>', `absolute path of node (default: ${TEMPLATE_DEFAULTS.node})`)
    .option('-o, --output <file>', 'write the manifest to a file instead of stdout')
    .action((cmd: CommandOptions) => {
      const opts = resolveOptions(cmd, program.opts().config as string | undefined, (msg) => process.stderr.write(`image-server smf: ${msg}\n`));
      const xml = fillManifest(fs.readFileSync(TEMPLATE_PATH, 'utf8'), opts);
      if (cmd.output) fs.writeFileSync(cmd.output, xml);
      else process.stdout.write(xml);
    });
}
