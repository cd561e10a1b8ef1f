/*
 * What every command shares: where the config file is (--config, else
 * $IMAGE_SERVER_CONFIG, else config.json at the install's root), and how a
 * failure ends the process (one line on stderr, a non-zero exit).
 */
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { Config } from '../config/config.js';
import { ApiError, CliError } from '../errors.js';
import { Channels } from '../manifest/channels.js';
import { ROOT_URL } from '../version.js';

export function configPath(option: string | undefined): string {
  return option ?? process.env.IMAGE_SERVER_CONFIG ?? fileURLToPath(new URL('config.json', ROOT_URL));
}

function describe(err: unknown): string {
  if (err instanceof ApiError && err.errors?.length) {
    return `${err.message}: ${err.errors.map((e) => e.message ?? `${e.field} ${e.code}`).join('; ')}`;
  }
  return err instanceof Error ? err.message : String(err);
}

export function run(program: Command): void {
  program.parseAsync(process.argv).catch((err: unknown) => {
    const message = describe(err).replace(/\s*\n\s*/g, ' ');
    // An empty message: the failure was already reported (by a child process).
    if (message) process.stderr.write(`${program.name()}: ${message}\n`);
    process.exit(err instanceof CliError ? err.exitCode : 1);
  });
}

/**
 * The channel a command's new images land in: --channel, else the default
 * channel; none on a server without channels, where --channel is an error.
 */
export function landingChannel(channel: string | undefined, config: Readonly<Config>): { channel?: string } {
  const channels = Channels.configured(config.channels);
  if (!channels) {
    if (channel !== undefined) throw new CliError(`--channel ${channel}: this server has no channels (see "channels" in its configuration)`);
    return {};
  }
  const pick = channels.pick(channel, false);
  return 'name' in pick ? { channel: pick.name } : {};
}
