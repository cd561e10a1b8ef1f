/*
 * A real OpenSSH server for one test: /usr/sbin/sshd -D -e on 127.0.0.1 and
 * a free port, with its own host key, sshd_config and authorized_keys, all
 * in a temp folder. The one client key it accepts is bound to a forced
 * command, the way an operator sets up publishing:
 *
 *   command="<repo>/scripts/image-server --config <config> ssh-command",no-pty,… <key>
 *
 * Without sshd the tests that need it are skipped, naming the Debian
 * package; under CI (CI=true) they fail instead, so a green CI run has
 * really gone through sshd.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { REPO_ROOT, tmpDir } from '../helpers/images.js';

export const SSHD = '/usr/sbin/sshd';
export const SSH = '/usr/bin/ssh';
export const SSH_KEYGEN = '/usr/bin/ssh-keygen';
export const IMAGE_SERVER = path.join(REPO_ROOT, 'scripts', 'image-server');
export const IN_CI = ['true', '1', 'yes'].includes((process.env.CI ?? '').toLowerCase());

const HAVE_SSH = [SSHD, SSH, SSH_KEYGEN].every((f) => fs.existsSync(f));
const MISSING = 'OpenSSH is not installed: apt-get install -y openssh-server openssh-client';

type Impl = (t: ExecutionContext) => Promise<void> | void;

/** `test` when OpenSSH is there; a skip without it, or, under CI, a failure. */
export function sshTest(title: string, impl: Impl): void {
  if (HAVE_SSH) test(title, impl);
  else if (IN_CI) test(title, (t) => t.fail(MISSING));
  else test.skip(`${title} (${MISSING})`, impl);
}
sshTest.serial = (title: string, impl: Impl): void => {
  if (HAVE_SSH) test.serial(title, impl);
  else if (IN_CI) test.serial(title, (t) => t.fail(MISSING));
  else test.serial.skip(`${title} (${MISSING})`, impl);
};

/** One argument quoted for a POSIX shell (and for ssh-command's splitter). */
export function shquote(arg: string): string {
  return `'${arg.replaceAll("'", "'\\''")}'`;
}

export interface Result {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Sshd {
  port: number;
  user: string;
  /** The client's options: its key, a private known_hosts, BatchMode, quiet. */
  clientOptions: string[];
  /** ssh to the server, sending `command` as the remote command line and `input` as stdin. */
  ssh(command: string | null, input?: Buffer | Readable): Promise<Result>;
  /** sshd's own log (-e), for failure messages. */
  log(): string;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function keygen(file: string): void {
  const r = spawnSync(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', 'imgsrv-test', '-f', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

/** Runs a child to completion, feeding it `input`, collecting its output. */
export function collect(child: ChildProcess, input?: Buffer | Readable): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  // The child may stop reading (a refusal): that is its answer, not an error here.
  child.stdin?.on('error', () => undefined);
  if (input && Buffer.isBuffer(input)) child.stdin?.end(input);
  else if (input) (input as Readable).pipe(child.stdin!);
  else child.stdin?.end();
  return new Promise((resolve) => {
    child.once('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

/**
 * Starts sshd whose only key runs `image-server --config <configFile> ssh-command`.
 */
export async function startSshd(t: ExecutionContext, configFile: string): Promise<Sshd> {
  const dir = tmpDir(t, 'imgsrv-sshd-');
  const user = os.userInfo().username;
  keygen(path.join(dir, 'host_key'));
  keygen(path.join(dir, 'client_key'));
  const pub = fs.readFileSync(path.join(dir, 'client_key.pub'), 'utf8').trim();
  const forced = `${IMAGE_SERVER} --config ${configFile} ssh-command`;
  fs.writeFileSync(
    path.join(dir, 'authorized_keys'),
    `command="${forced}",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding ${pub}\n`,
  );
  // sshd, started as root, wants its privilege separation folder.
  if (process.getuid?.() === 0) fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

  let lastLog = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = path.join(dir, 'sshd_config');
    fs.writeFileSync(config, [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host_key')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      // The tests run as root; the key only ever runs its forced command.
      'PermitRootLogin forced-commands-only',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      `AllowUsers ${user}`,
      'LogLevel INFO',
      '',
    ].join('\n'));
    const proc = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    const up = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      proc.stderr!.on('data', () => {
        if (log.includes(`Server listening on 127.0.0.1 port ${port}`)) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      proc.once('exit', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!up) {
      proc.kill('SIGKILL');
      lastLog = log;
      continue;
    }
    const gone = new Promise((resolve) => proc.once('exit', resolve));
    t.teardown(async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    });
    const clientOptions = [
      '-F', '/dev/null',
      '-i', path.join(dir, 'client_key'),
      '-o', 'IdentitiesOnly=yes',
      '-o', `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`,
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'LogLevel=ERROR',
      '-p', String(port),
    ];
    return {
      port,
      user,
      clientOptions,
      log: () => log,
      ssh(command, input) {
        const args = ['-o', 'BatchMode=yes', '-T', ...clientOptions, `${user}@127.0.0.1`];
        if (command !== null) args.push(command);
        return collect(spawn(SSH, args, { stdio: ['pipe', 'pipe', 'pipe'] }), input);
      },
    };
  }
  throw new Error(`sshd did not start: ${lastLog}`);
}
