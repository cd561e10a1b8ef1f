import test, { type ExecutionContext } from 'ava';
import { buildConfig } from '../src/config/config.js';
import { Credentials, hashPassword, hashToken, newToken, type CredentialConfig } from '../src/credentials.js';
import { FailureLimiter } from '../src/credentials/limiter.js';
import { clientKey } from '../src/http/middleware/auth.js';
import { verifyPasswordSync as verifyPassword } from '../src/credentials/scrypt.js';

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

/** Credentials with the configuration's defaults for the limits, unless `limits` says otherwise. */
const credentials = (c: CredentialConfig, limits: Record<string, unknown> = {}) =>
  new Credentials(buildConfig({ ...c, ...limits }, '/nowhere/config.json'));

test('a password hash verifies only its own password', async (t) => {
  const stored = await hashPassword('correct horse', 10);
  t.regex(stored, /^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  t.true(verifyPassword('correct horse', stored));
  t.false(verifyPassword('correct horse ', stored));
  t.false(verifyPassword('', stored));
  t.not(await hashPassword('correct horse', 10), stored, 'every hash has its own salt');
});

test('a malformed stored hash never verifies', async (t) => {
  t.false(verifyPassword('x', 'plaintext'));
  t.false(verifyPassword('x', '$scrypt$ln=10,r=8,p=1$$'));
});

test('tokens are random and stored as sha256', (t) => {
  const a = newToken();
  t.not(a, newToken());
  t.regex(a, /^ist_[A-Za-z0-9_-]{43}$/);
  t.regex(hashToken(a), /^sha256\$[0-9a-f]{64}$/);
});

test('Basic and Bearer credentials name their principal; anything else proves nobody', async (t) => {
  const token = newToken();
  const creds = credentials({
    users: { alice: { password: await hashPassword('s3cret', 10) } },
    tokens: { ci: hashToken(token) },
  });
  t.deepEqual(await creds.check(basic('alice', 's3cret')), { name: 'alice', via: 'basic' });
  t.deepEqual(await creds.check(basic('alice', 's3cret')), { name: 'alice', via: 'basic' }, 'remembered success');
  t.is(await creds.check(basic('alice', 'wrong')), null);
  t.is(await creds.check(basic('bob', 's3cret')), null);
  t.is(await creds.check(basic('constructor', 'x')), null, 'no prototype keys');
  t.deepEqual(await creds.check(`Bearer ${token}`), { name: 'ci', via: 'bearer' });
  t.is(await creds.check(`Bearer ${token}x`), null);
  t.is(await creds.check('Digest abc'), null);
  t.is(await creds.check('Basic !!!'), null);
});

test('replacing the credentials revokes removed users and tokens at once', async (t) => {
  const token = newToken();
  const creds = credentials({
    users: { alice: { password: await hashPassword('s3cret', 10) } },
    tokens: { ci: hashToken(token) },
  });
  t.truthy(await creds.check(basic('alice', 's3cret')));
  t.truthy(await creds.check(`Bearer ${token}`));
  creds.replace({ users: {}, tokens: {} });
  t.is(await creds.check(basic('alice', 's3cret')), null);
  t.is(await creds.check(`Bearer ${token}`), null);
});

test('a failure bucket lets `burst` failures through, then refills at per_minute, and a success gives its token back', (t) => {
  let now = 0;
  const limiter = new FailureLimiter({ burst: 3, per_minute: 6 }, 100, () => now);
  for (let i = 0; i < 3; i++) {
    t.is(limiter.wait('a'), 0);
    limiter.take('a');
  }
  t.is(limiter.wait('a'), 10, 'one token comes back every 10 s');
  t.is(limiter.wait('b'), 0, 'other keys are not affected');
  now += 5000;
  t.is(limiter.wait('a'), 5);
  now += 5000;
  t.is(limiter.wait('a'), 0);
  limiter.take('a');
  limiter.give('a');
  t.is(limiter.wait('a'), 0);
});

test('the failure table never holds more than its bound, dropping the least recently failed', (t) => {
  const limiter = new FailureLimiter({ burst: 1, per_minute: 1 }, 50, () => 0);
  for (let i = 0; i < 1000; i++) limiter.take(`client-${i}`);
  t.is(limiter.size, 50);
  t.is(limiter.wait('client-999'), 60);
  t.is(limiter.wait('client-0'), 0, 'forgotten');
});

/** A refusal for failures, with a wait of at most `s` seconds (the bucket refills while the test runs). */
function refusedFor(t: ExecutionContext, got: unknown, s: number): void {
  t.like(got, { refused: 'failures' });
  const wait = (got as { retryAfter: number }).retryAfter;
  t.true(wait > 0 && wait <= s, `Retry-After ${wait}`);
}

test('after the client\'s failures run out, known and unknown user names alike are refused unchecked, with the wait', async (t) => {
  const creds = credentials(
    { users: { alice: { password: await hashPassword('s3cret', 10) } }, tokens: {} },
    { auth_client_failures: { burst: 4, per_minute: 1 }, auth_user_failures: { burst: 100, per_minute: 100 } },
  );
  t.deepEqual(await creds.check(basic('alice', 's3cret'), '10.0.0.1'), { name: 'alice', via: 'basic' });
  for (const name of ['alice', 'bob', 'alice', 'bob']) t.is(await creds.check(basic(name, 'wrong'), '10.0.0.1'), null);
  refusedFor(t, await creds.check(basic('alice', 'wrong'), '10.0.0.1'), 60);
  refusedFor(t, await creds.check(basic('bob', 'wrong'), '10.0.0.1'), 60);
  t.deepEqual(await creds.check(basic('alice', 's3cret'), '10.0.0.1'), { name: 'alice', via: 'basic' },
    'a remembered success skips the limits');
  t.is(await creds.check(basic('alice', 'wrong'), '10.0.0.2'), null, 'another client is still checked');
});

test('a burst of right passwords at once is let through, however small the bucket; wrong ones in the same burst are not', async (t) => {
  const creds = credentials(
    { users: { alice: { password: await hashPassword('s3cret', 10) } }, tokens: {} },
    { auth_client_failures: { burst: 2, per_minute: 1 }, auth_user_failures: { burst: 2, per_minute: 1 } },
  );
  const right = await Promise.all(Array.from({ length: 20 }, () => creds.check(basic('alice', 's3cret'), '10.0.0.1')));
  t.deepEqual(right, Array.from({ length: 20 }, () => ({ name: 'alice', via: 'basic' })), 'all 20, not 2 and 18 refusals');
  const wrong = await Promise.all(Array.from({ length: 6 }, (_, i) => creds.check(basic('mallory', `guess${i}`), '10.0.0.9')));
  t.is(wrong.filter((r) => r === null).length, 2, 'two guesses were checked (the burst)');
  t.is(wrong.filter((r) => r !== null && 'refused' in r).length, 4, 'the rest were refused unchecked');
});

test('failures for one user name add up across clients', async (t) => {
  const creds = credentials(
    { users: { alice: { password: await hashPassword('s3cret', 10) } }, tokens: {} },
    { auth_user_failures: { burst: 3, per_minute: 2 }, auth_cache_seconds: 0 },
  );
  for (let i = 0; i < 3; i++) t.is(await creds.check(basic('alice', 'wrong'), `10.0.0.${i}`), null);
  refusedFor(t, await creds.check(basic('alice', 's3cret'), '10.0.1.1'), 30);
  t.is(await creds.check(basic('bob', 'wrong'), '10.0.1.1'), null, 'other names are still checked');
});

test('with every worker busy and the queue full, a check is refused at once as busy', async (t) => {
  const creds = credentials(
    { users: { alice: { password: await hashPassword('s3cret', 14) } }, tokens: {} },
    { auth_workers: 1, auth_queue_max: 1 },
  );
  const first = creds.check(basic('alice', 'wrong-1'), '10.0.0.1');
  const second = creds.check(basic('alice', 'wrong-2'), '10.0.0.2');
  t.deepEqual(await creds.check(basic('alice', 'wrong-3'), '10.0.0.3'), { refused: 'busy', retryAfter: 1 });
  t.is(await first, null);
  t.is(await second, null);
  t.is(await creds.check(basic('alice', 'wrong-4'), '10.0.0.4'), null, 'checked again once the queue drains');
});

test('failed logins count against an IPv4 address, or against the IPv6 /64', (t) => {
  t.is(clientKey('192.0.2.7'), '192.0.2.7');
  t.is(clientKey('::ffff:192.0.2.7'), '::ffff:192.0.2.7');
  t.is(clientKey('2001:db8:0:1:aaaa:bbbb:cccc:dddd'), '2001:db8:0:1::/64');
  t.is(clientKey('2001:db8:0:1::5'), '2001:db8:0:1::/64');
  t.is(clientKey('2001:DB8::1'), '2001:db8:0:0::/64');
  t.is(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  t.is(clientKey('::1'), '0:0:0:0::/64');
  t.is(clientKey(''), '');
});
