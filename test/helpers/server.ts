/*
 * A real server for one test: its own serve_dir, port 0 (or a unix socket),
 * log records captured in memory, everything closed in teardown.
 */
import { Writable } from 'node:stream';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { buildConfig, type Config } from '../../src/config/config.js';
import { hashPassword, type Credentials } from '../../src/credentials.js';
import type { Registry } from 'prom-client';
import { listen, type Listening } from '../../src/http/server.js';
import { createLogger } from '../../src/log.js';
import { assemble } from '../../src/cli/serve.js';
import type { ImageStore } from '../../src/store/store.js';
import type { ImageWriter } from '../../src/store/writer.js';
import { tmpDir } from './images.js';

/**
 * Every test server knows this user, so a test can read what anonymous
 * callers may not see (private images) or write.
 */
export const OPERATOR = { user: 'operator', password: 'operator-password' };
export const OPERATOR_AUTH = `Basic ${Buffer.from(`${OPERATOR.user}:${OPERATOR.password}`).toString('base64')}`;
const operatorHash = hashPassword(OPERATOR.password, 10);

export interface TestServer {
  url: string;
  writer: ImageWriter;
  credentials: Credentials;
  registry: Registry;
  config: Readonly<Config>;
  store: ImageStore;
  listening: Listening;
  logs: Record<string, unknown>[];
  serveDir: string;
}

export async function startServer(
  t: ExecutionContext,
  opts: { serveDir?: string; config?: Record<string, unknown> } = {},
): Promise<TestServer> {
  const serveDir = opts.serveDir ?? tmpDir(t);
  const configDir = tmpDir(t, 'imgsrv-conf-');
  const users = { [OPERATOR.user]: { password: await operatorHash } };
  const config = buildConfig(
    { listen_port: 0, listen_address: '127.0.0.1', serve_dir: serveDir, loglevel: 'debug', scan_interval_ms: 200, users, ...opts.config },
    path.join(configDir, 'config.json'),
  );
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const log = createLogger(config.loglevel, sink);
  const { store, writer, credentials, registry, app } = await assemble(config, log);
  const listening = await listen(app, config);
  t.teardown(async () => {
    await store.close();
    // An MD5 being recorded writes into serve_dir: let it land before the folder goes.
    await store.digestsIdle();
    await listening.close(0);
  });
  return { url: listening.where, writer, credentials, registry, config, store, listening, logs, serveDir };
}

/** Polls `check` until it returns true or `ms` pass; returns the time taken. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 5000): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return Date.now() - started;
}
