/*
 * `image-server passwd NAME` and `image-server token NAME`: make the
 * entries for the "users" and "tokens" keys of config.json. The password is
 * read from stdin (piped), or asked for twice without echo on a terminal.
 */
import { CliError } from '../errors.js';
import { hashPassword, hashToken, newToken } from '../credentials.js';

const NAME_RE = /^[^:\s]+$/;

function checkName(name: string): void {
  if (!NAME_RE.test(name)) throw new CliError(`invalid name "${name}": no ":" or spaces`);
}

async function readPiped(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Reads one line from the terminal without echoing it. */
function askHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          finish();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          finish();
          reject(new CliError('interrupted'));
          return;
        }
        value = ch === '\u007f' ? value.slice(0, -1) : value + ch;
      }
    };
    const finish = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) return readPiped();
  const first = await askHidden('Password: ');
  if ((await askHidden('Again: ')) !== first) throw new CliError('the passwords differ');
  return first;
}

export async function passwdCommand(name: string): Promise<void> {
  checkName(name);
  const password = await readPassword();
  if (password.length === 0) throw new CliError('empty password');
  const entry = { [name]: { password: await hashPassword(password) } };
  process.stdout.write(`${JSON.stringify(entry)}\n`);
}

export function tokenCommand(name: string): void {
  checkName(name);
  const token = newToken();
  process.stdout.write(`${token}\n`);
  process.stderr.write(
    'This token is shown once. Add this to "tokens" in config.json, then reload (svcadm refresh or kill -HUP):\n'
    + `  ${JSON.stringify({ [name]: hashToken(token) })}\n`
    + `Use it as: Authorization: Bearer ${token.slice(0, 8)}…\n`,
  );
}
