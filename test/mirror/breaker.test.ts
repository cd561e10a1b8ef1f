/*
 * Failing upstreams: the server's mirror job keeps copying from a healthy
 * upstream while a failing one is paused by its circuit breaker (no
 * requests reach it during the cool-down); the breaker and the retries on
 * their own (cockatiel's policies, as the mirror sets them up).
 */
import test from 'ava';
import { buildConfig } from '../../src/config/config.js';
import { CircuitBreaker, UpstreamPaused, withRetry } from '../../src/mirror/retry.js';
import { UpstreamError } from '../../src/fetch/errors.js';
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

const down = () => Promise.reject(new UpstreamError('503', { retryable: true }));
const gone = () => Promise.reject(new UpstreamError('404', { retryable: false, unhealthy: false, status: 404 }));

test('the breaker opens after the threshold, half-opens after the cool-down, and doubles it when the trial fails', async (t) => {
  const breaker = new CircuitBreaker({ threshold: 3, cooldownMs: 100, maxCooldownMs: 300 });
  const once = { policy: { attempts: 1, baseMs: 1, maxMs: 1 }, breaker };
  const opened: Date[] = [];
  breaker.onOpen((until) => opened.push(until));
  await t.throwsAsync(withRetry(down, once), { message: '503' });
  await t.throwsAsync(withRetry(() => Promise.resolve(1).then(() => gone()), once), { message: '404' }, 'a 404 says nothing about health');
  await t.throwsAsync(withRetry(down, once));
  t.is(breaker.state, 'closed');
  await t.throwsAsync(withRetry(down, once));
  t.is(breaker.state, 'open', 'the third unhealthy failure in a row opens it');
  t.is(breaker.cooldownMs, 100);
  t.is(opened.length, 1);
  let calls = 0;
  const counted = () => {
    calls++;
    return down();
  };
  await t.throwsAsync(withRetry(counted, once), { instanceOf: UpstreamPaused });
  t.is(calls, 0, 'no work reaches an open breaker');
  await waitFor(() => breaker.state === 'half-open');
  await t.throwsAsync(withRetry(counted, once), { message: '503' });
  t.is(calls, 1, 'one trial');
  t.is(breaker.state, 'open', 'a failed trial opens it again at once');
  t.is(breaker.cooldownMs, 200, 'for twice as long');
  await waitFor(() => breaker.state === 'half-open');
  await t.throwsAsync(withRetry(down, once));
  t.is(breaker.cooldownMs, 300, 'capped at maxCooldownMs');
  await waitFor(() => breaker.state === 'half-open');
  t.is(await withRetry(() => Promise.resolve('ok'), once), 'ok');
  t.is(breaker.state, 'closed', 'a good trial closes it');
});

test('retries retryable failures with growing, jittered pauses up to the cap; not the others', async (t) => {
  const breaker = new CircuitBreaker({ threshold: 100, cooldownMs: 1000, maxCooldownMs: 1000 });
  const delays: number[] = [];
  const policy = { attempts: 5, baseMs: 10, maxMs: 40 };
  let calls = 0;
  const err = await t.throwsAsync(withRetry(() => {
    calls++;
    return down();
  }, { policy, breaker, onRetry: (_e, ms) => delays.push(ms) }));
  t.is(err?.message, '503');
  t.is(calls, 5, 'attempts in all');
  t.is(delays.length, 4);
  const steps = [10, 20, 40, 40];
  delays.forEach((ms, i) => t.true(ms >= steps[i]! / 2 && ms <= steps[i]!, `pause ${i}: ${ms} ms within [${steps[i]! / 2}, ${steps[i]}]`));
  calls = 0;
  await t.throwsAsync(withRetry(() => {
    calls++;
    return gone();
  }, { policy, breaker }));
  t.is(calls, 1, 'a failure retrying cannot fix is not retried');
});

test('a stop ends the wait for the next attempt at once, and no request follows', async (t) => {
  const breaker = new CircuitBreaker({ threshold: 100, cooldownMs: 1000, maxCooldownMs: 1000 });
  const stop = new AbortController();
  let calls = 0;
  const running = withRetry(() => {
    calls++;
    return down();
  }, { policy: { attempts: 3, baseMs: 60_000, maxMs: 60_000 }, breaker, signal: stop.signal, onRetry: () => stop.abort() });
  const err = await t.throwsAsync(running);
  t.regex(err?.message ?? '', /stopped: aborted/);
  t.is(calls, 1);
});
