/*
 * `image-server ssh-command`: the forced command of an authorized_keys line.
 * sshd hands the client's command line over in SSH_ORIGINAL_COMMAND; this
 * splits it without a shell (see shell-words.ts), runs nothing but
 * import-image, and pins its configuration to the one the key names, so
 * the client chooses the image's name and description, never which server
 * or folder it lands in. --manifest is refused too: it names a file on
 * this host, which a client could only use to read files it has no
 * business with.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliError } from '../errors.js';
import { ShellWordsError, shellWords } from './shell-words.js';

const IMPORT_IMAGE = fileURLToPath(new URL('./import-image.js', import.meta.url));

/**
 * The first option that reads a file on this host: -c, -cFILE, a
 * short-option cluster holding c, --config[=FILE], --manifest[=FILE]; none
 * after "--". Errs on the side of refusing (an option value that looks like one).
 */
function hostFileOption(args: string[]): string | undefined {
  for (const arg of args) {
    if (arg === '--') return undefined;
    if (/^--(config|manifest)(=|$)/.test(arg) || /^-[^-]*c/.test(arg)) return arg;
  }
  return undefined;
}

function commandWords(original: string | undefined): string[] {
  if (!original) {
    throw new CliError('this key only publishes images: ssh HOST import-image NAME VERSION DESCRIPTION < stream');
  }
  try {
    return shellWords(original);
  } catch (err) {
    if (err instanceof ShellWordsError) throw new CliError(`refused: ${err.message}`);
    throw err;
  }
}

export async function sshCommand(pinnedConfig: string, original: string | undefined): Promise<void> {
  const [command, ...args] = commandWords(original);
  // The original README ran it by path: ssh server '/path/to/import-image …'.
  if (command === undefined || path.basename(command) !== 'import-image' || (command.includes('/') && !path.isAbsolute(command))) {
    throw new CliError(`refused: this key runs only import-image, not ${JSON.stringify(command ?? '')}`);
  }
  const option = hostFileOption(args);
  if (option) {
    if (option.startsWith('--manifest')) {
      throw new CliError('refused: --manifest names a file on the server; over ssh give fields with --set, --tag and --requirement');
    }
    throw new CliError(`refused: ${option}: the configuration is set by the key, not the client`);
  }
  const child = spawn(process.execPath, [IMPORT_IMAGE, '--config', pinnedConfig, ...args], { stdio: 'inherit' });
  const code = await new Promise<number>((resolve) => {
    child.once('exit', (status, signal) => resolve(status ?? (signal ? 128 : 1)));
  });
  if (code !== 0) throw new CliError('', code);
}
