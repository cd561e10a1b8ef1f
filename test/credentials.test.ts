import test from 'ava';
import { Credentials, hashPassword, hashToken, newToken, verifyPassword } from '../src/credentials.js';

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

test('a password hash verifies only its own password', async (t) => {
  const stored = await hashPassword('correct horse', 10);
  t.regex(stored, /^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  t.true(await verifyPassword('correct horse', stored));
  t.false(await verifyPassword('correct horse ', stored));
  t.false(await verifyPassword('', stored));
  t.not(await hashPassword('correct horse', 10), stored, 'every hash has its own salt');
});

test('a malformed stored hash never verifies', async (t) => {
  t.false(await verifyPassword('x', 'plaintext'));
  t.false(await verifyPassword('x', '$scrypt$ln=10,r=8,p=1$$'));
});

test('tokens are random and stored as sha256', (t) => {
  const a = newToken();
  t.not(a, newToken());
  t.regex(a, /^ist_[A-Za-z0-9_-]{43}$/);
  t.regex(hashToken(a), /^sha256\$[0-9a-f]{64}$/);
});

test('Basic and Bearer credentials name their principal; anything else proves nobody', async (t) => {
  const token = newToken();
  const creds = new Credentials({
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
  const creds = new Credentials({
    users: { alice: { password: await hashPassword('s3cret', 10) } },
    tokens: { ci: hashToken(token) },
  });
  t.truthy(await creds.check(basic('alice', 's3cret')));
  t.truthy(await creds.check(`Bearer ${token}`));
  creds.replace({ users: {}, tokens: {} });
  t.is(await creds.check(basic('alice', 's3cret')), null);
  t.is(await creds.check(`Bearer ${token}`), null);
});
