#!/usr/bin/env node
/*
 * image-server: `serve` (the default) runs the server; `config [KEY]` prints
 * the resolved configuration, or one key of it, so shell scripts never
 * re-implement defaults. The config file is --config, else
 * $IMAGE_SERVER_CONFIG, else config.json at the repository root.
 */
import { Command } from 'commander';
import { ConfigError, loadConfig, type Config } from '../config/config.js';
import { addMirrorCommand } from './mirror.js';
import { VERSION } from '../version.js';
import { addAdminCommands } from './admin.js';
import { configPath, run } from './common.js';
import { passwdCommand, tokenCommand } from './credentials.js';
import { addSmfCommand } from './smf.js';
import { sshCommand } from './ssh-command.js';

/** Passwords (etcd, peers, users' hashes) stay out of terminals and scripts' logs. */
function redacted(value: unknown, key = ''): unknown {
  if (/password/i.test(key) && value !== null && typeof value !== 'object') return '[redacted]';
  if (Array.isArray(value)) return value.map((v) => redacted(v));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redacted(v, k)]));
  }
  return value;
}

function printConfig(config: Readonly<Config>, key: string | undefined): void {
  if (key === undefined) {
    process.stdout.write(`${JSON.stringify(redacted(config), null, 2)}\n`);
    return;
  }
  if (!Object.hasOwn(config, key)) throw new ConfigError(`no such config key: ${key}`);
  const value = redacted(config[key as keyof Config], key);
  process.stdout.write(`${typeof value === 'string' ? value : JSON.stringify(value)}\n`);
}

const program = new Command('image-server')
  .description('SmartOS image server (IMGAPI and DSAPI)')
  .version(VERSION)
  .option('-c, --config <path>', 'configuration file (default: $IMAGE_SERVER_CONFIG or ./config.json of the install)');

program.command('serve', { isDefault: true })
  .description('serve serve_dir over HTTP')
  .action(async () => {
    // The HTTP stack loads only to serve: admin commands and every ssh
    // login through the forced command start without it.
    const { serve } = await import('./serve.js');
    await serve(loadConfig(configPath(program.opts().config)));
  });

program.command('config [key]')
  .description('print the resolved configuration, or one key of it')
  .action((key?: string) => printConfig(loadConfig(configPath(program.opts().config)), key));

program.command('passwd <name>')
  .description('hash a password (stdin, or asked on a terminal) into an entry for "users"')
  .action(passwdCommand);

program.command('token <name>')
  .description('issue a bearer token: printed once on stdout, its "tokens" entry on stderr')
  .action(tokenCommand);

addAdminCommands(program);
addMirrorCommand(program);

program.command('ssh-command')
  .description('forced command for authorized_keys: runs only import-image, with this configuration')
  .action(() => sshCommand(configPath(program.opts().config), process.env.SSH_ORIGINAL_COMMAND));

addSmfCommand(program);

run(program);
