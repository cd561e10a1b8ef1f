/*
 * image-server mirror URL [--type imgapi|dsapi] [--name NAME]… [--os OS]…
 *                         [--image-type TYPE]… [--dry-run] [--ca-file FILE]
 *
 * One mirror run into the configured serve_dir, without the server (a
 * running server sees the new images within seconds). A progress bar on a
 * terminal, plain lines on stderr otherwise; stdout says what was copied
 * (or, with --dry-run, what would be, changing nothing). Exits 1 if
 * anything failed.
 */
import { Option, type Command } from 'commander';
import type { Options } from './mirror-run.js';

const collect = (value: string, previous: string[]) => [...previous, value];

export function addMirrorCommand(program: Command): void {
  program.command('mirror <url>')
    .description('copy images (origins first) from an upstream IMGAPI or DSAPI server into serve_dir')
    .addOption(new Option('--type <type>', 'the upstream protocol').choices(['imgapi', 'dsapi']).default('imgapi'))
    .option('--name <name>', 'only images of this name ("~part": names containing part); repeatable', collect, [])
    .option('--os <os>', 'only images for this os; repeatable', collect, [])
    .option('--image-type <type>', 'only images of this type (zone-dataset, lx-dataset, zvol, …); repeatable', collect, [])
    .option('--dry-run', 'print what would be copied, change nothing')
    .option('--ca-file <file>', 'PEM file of a private CA to trust besides the system\'s')
    .option('--concurrency <n>', 'images copied at the same time (default 2)', Number)
    .option('--channel <name>', "this server's channel the copies land in (default: its default channel); the upstream's is ?channel= in URL")
    .action(async (url: string, opts: Options) => (await import('./mirror-run.js')).mirrorCommand(program, url, opts));
}
