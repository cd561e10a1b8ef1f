/*
 * Failing upstreams: the server's mirror job keeps copying from a healthy
 * upstream while a failing one is paused by its circuit breaker (no
 * requests reach it during the cool-down); the breaker and the backoff on
 * their own.
 */
import test from 'ava';
import { buildConfig } from '../../src/config.js';
import { backoffMs, CircuitBreaker, DEFAULT_RETRY } from '../../src/mirror/retry.js';
import { startMirrors } from '../../src/mirror/service.js';
import { waitFor, startServer } from '../helpers/server.js';
import { tmpDir } from '../helpers/images.js';
import { captureLog, publish, sendJson, standIn } from './kit.js';

test('a failing upstream is paused while another one keeps being mirrored', async (t) => {
  const failing = await standIn(t, (_req, res) => sendJson(res, { code: 'ServiceUnavailableError', message: 'down' }, 503));
  const healthy = await startServer(t);
  const local = await startServer(t);
  const first = await publish(healthy, { name: 'first', version: '1' });
  const config = buildConfig({
    serve_dir: local.serveDir,
    mirrors: [
      { url: failing.url, type: 'imgapi', interval_minutes: 0.002 },
      { url: healthy.url, interval_minutes: 0.002 },
    ],
  }, `${tmpDir(t)}/config.json`);
  const { log, records } = captureLog();
  const service = startMirrors(local.store, local.writer, config, log, {
    retry: { attempts: 2, baseMs: 5, maxMs: 10 },
    breaker: { threshold: 3, cooldownMs: 60_000, maxCooldownMs: 60_000 },
    firstRunDelayMs: 0,
  });
  t.teardown(() => service.stop());
  t.is(service.mirrors.length, 2);

  await waitFor(() => local.store.get(first.uuid) !== undefined, 10_000);
  await waitFor(() => service.mirrors[0]!.breaker.state === 'open', 10_000);
  const failedRequests = failing.requests.length;
  t.is(failedRequests, 3, 'three failed requests open the breaker');
  t.true(records.some((r) => r.msg === 'mirror: upstream keeps failing; paused' && r.upstream === failing.url));

  // The healthy upstream keeps being mirrored on later runs.
  const second = await publish(healthy, { name: 'second', version: '1' });
  await waitFor(() => local.store.get(second.uuid) !== undefined, 10_000);
  await waitFor(() => records.filter((r) => r.msg === 'mirror: upstream paused after repeated failures; skipping this run').length >= 3, 10_000);
  t.is(failing.requests.length, failedRequests, 'no request reaches a paused upstream');
  t.is(service.mirrors[1]!.breaker.state, 'closed');
});

test('the breaker opens after the threshold, half-opens after the cool-down, and doubles it when the trial fails', (t) => {
  let now = 0;
  const breaker = new CircuitBreaker({ threshold: 3, cooldownMs: 1000, maxCooldownMs: 3000 }, () => now);
  t.false(breaker.failed());
  breaker.succeeded();
  t.false(breaker.failed());
  t.false(breaker.failed());
  t.true(breaker.failed(), 'the third failure in a row opens it');
  t.is(breaker.state, 'open');
  t.false(breaker.allows());
  t.is(breaker.pausedUntil()!.getTime(), 1000);
  now = 1000;
  t.is(breaker.state, 'half-open');
  t.true(breaker.allows());
  t.true(breaker.failed(), 'a failed trial opens it again at once');
  t.is(breaker.pausedUntil()!.getTime(), 3000, 'for twice as long');
  now = 3000;
  t.true(breaker.failed());
  t.is(breaker.pausedUntil()!.getTime(), 6000, 'capped at maxCooldownMs');
  now = 6000;
  breaker.succeeded();
  t.is(breaker.state, 'closed');
});

test('backoff grows exponentially, with jitter, up to the cap', (t) => {
  const policy = { ...DEFAULT_RETRY, baseMs: 100, maxMs: 1000 };
  t.is(backoffMs(0, policy, () => 0), 50);
  t.is(backoffMs(0, policy, () => 1), 100);
  t.is(backoffMs(2, policy, () => 0), 200);
  t.is(backoffMs(2, policy, () => 1), 400);
  t.is(backoffMs(10, policy, () => 1), 1000);
  const samples = new Set(Array.from({ length: 20 }, () => backoffMs(3, policy)));
  t.true(samples.size > 1, 'jittered');
  t.true([...samples].every((ms) => ms >= 400 && ms <= 800));
});
