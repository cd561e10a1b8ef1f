/*
 * Runs scripts/image-server as a real child process, the way SMF or an
 * operator would, and finds where it listens from its "listening" log line.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { ExecutionContext } from 'ava';
import { REPO_ROOT, tmpDir } from '../helpers/images.js';

export const IMAGE_SERVER = path.join(REPO_ROOT, 'scripts', 'image-server');

export interface Child {
  proc: ChildProcess;
  where: string;
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
}

export function writeConfig(t: ExecutionContext, config: Record<string, unknown>): string {
  const file = path.join(tmpDir(t, 'imgsrv-conf-'), 'config.json');
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}

export async function spawnServer(t: ExecutionContext, config: Record<string, unknown>): Promise<Child> {
  const configPath = writeConfig(t, { listen_port: 0, listen_address: '127.0.0.1', loglevel: 'debug', ...config });
  const proc = spawn(IMAGE_SERVER, ['--config', configPath], { cwd: tmpDir(t), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  // Gone before its folders are removed (their teardowns run after this one).
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const where = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      const rec = JSON.parse(line) as Record<string, unknown>;
      logs.push(rec);
      if (rec.msg === 'listening') resolve(String(rec.where));
    });
    void exited.then((code) => reject(new Error(`image-server exited ${code}: ${stderr}`)));
  });
  return { proc, where, logs, exited };
}

/** Runs the CLI to completion from an unrelated working directory. */
export function runCli(t: ExecutionContext, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(IMAGE_SERVER, args, { cwd: tmpDir(t), encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
