/*
 * Who may write. Users log in with HTTP Basic (imgadm sends the userinfo of
 * its publish URL that way); their passwords are stored as salted scrypt
 * hashes. Bearer tokens are random, so a SHA-256 of each is enough to store.
 * Every comparison is constant-time; nothing here logs a secret.
 */
import { createHash, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { FailureLimiter, type RateSpec } from './credentials/limiter.js';
import { PASSWORD_RE, scryptParams } from './credentials/scrypt.js';
import { VerifyPool } from './credentials/verify-pool.js';

export type { RateSpec };

const scryptAsync = promisify(scrypt) as (pw: string, salt: Buffer, len: number, opts: object) => Promise<Buffer>;

const KEY_LENGTH = 32;
const DEFAULT_LOG_N = 15;
export const PASSWORD_HASH_PATTERN = PASSWORD_RE.source;
export const TOKEN_HASH_PATTERN = '^sha256\\$[0-9a-f]{64}$';

/** `$scrypt$ln=15,r=8,p=1$<salt>$<hash>`, both base64. Run by `image-server passwd`, not by the server. */
export async function hashPassword(password: string, logN = DEFAULT_LOG_N): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, KEY_LENGTH, scryptParams(logN, 8, 1));
  return `$scrypt$ln=${logN},r=8,p=1$${salt.toString('base64')}$${key.toString('base64')}`;
}

export function newToken(): string {
  return `ist_${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return `sha256$${createHash('sha256').update(token).digest('hex')}`;
}

export interface Principal {
  name: string;
  via: 'basic' | 'bearer';
}

export interface CredentialConfig {
  users: Readonly<Record<string, { password: string }>>;
  tokens: Readonly<Record<string, string>>;
}

/** The limits on password checks (config keys of the same names). */
export interface AuthLimits {
  auth_workers: number;
  auth_queue_max: number;
  auth_client_failures: Readonly<RateSpec>;
  auth_user_failures: Readonly<RateSpec>;
  auth_tracked_max: number;
  auth_cache_seconds: number;
}

/** A check not made: too many failures from this client or for this user, or too many checks waiting. */
export interface Refusal {
  refused: 'failures' | 'busy';
  /** Whole seconds. */
  retryAfter: number;
}

interface Remembered {
  key: string;
  until: number;
}

/**
 * A hash no password matches, with the parameters of a configured user's:
 * an unknown user name costs the same scrypt as a known one, so timing
 * does not tell which names exist.
 */
function dummyHash(users: CredentialConfig['users']): string {
  const params = Object.values(users).map((u) => PASSWORD_RE.exec(u.password)).find((m) => m !== null);
  const [ln, r, p] = params ? [params[1], params[2], params[3]] : [DEFAULT_LOG_N, 8, 1];
  return `$scrypt$ln=${ln},r=${r},p=${p}$${randomBytes(16).toString('base64')}$${randomBytes(KEY_LENGTH).toString('base64')}`;
}

/**
 * Checks Authorization headers against the configured users and tokens.
 * Passwords are checked on a worker pool of their own (verify-pool.ts),
 * after the failure limits per client and per user name allow it; unknown
 * names go through the same steps against a dummy hash. imgadm sends the
 * same Basic credentials on each request of a publish, so a success is
 * remembered for auth_cache_seconds as a keyed hash of the credentials
 * (never the password itself): later requests with them skip the limits
 * and the pool, so others' failures never queue in front of them.
 */
export class Credentials {
  private readonly cacheKey = randomBytes(32);
  private verified = new Map<string, Remembered>();
  private config: CredentialConfig;
  private dummy: string;
  private readonly pool: VerifyPool;
  private readonly clients: FailureLimiter;
  private readonly names: FailureLimiter;
  /** Checks under way, by limiter key: a bucket they emptied may refill when they succeed. */
  private readonly checking = new Map<string, Set<Promise<unknown>>>();
  private readonly cacheMs: number;

  constructor(config: CredentialConfig & AuthLimits) {
    this.config = config;
    this.dummy = dummyHash(config.users);
    this.pool = new VerifyPool(config.auth_workers, config.auth_queue_max);
    this.clients = new FailureLimiter(config.auth_client_failures, config.auth_tracked_max);
    this.names = new FailureLimiter(config.auth_user_failures, config.auth_tracked_max);
    this.cacheMs = config.auth_cache_seconds * 1000;
  }

  /** Swaps in new users and tokens (SIGHUP): removed entries stop working at once. The limits stay. */
  replace(config: CredentialConfig): void {
    this.config = config;
    this.dummy = dummyHash(config.users);
    this.verified = new Map();
  }

  get configured(): boolean {
    return Object.keys(this.config.users).length > 0 || Object.keys(this.config.tokens).length > 0;
  }

  /** The principal the header proves, null if it proves nobody, or why it was not checked. `client` is the caller's address. */
  async check(header: string, client = ''): Promise<Principal | Refusal | null> {
    const [scheme, value = ''] = header.trim().split(/\s+/, 2);
    if (scheme?.toLowerCase() === 'bearer') return this.checkToken(value);
    if (scheme?.toLowerCase() === 'basic') return this.checkBasic(value, client);
    return null;
  }

  private checkToken(token: string): Principal | null {
    const presented = Buffer.from(hashToken(token));
    let found: string | null = null;
    for (const [name, stored] of Object.entries(this.config.tokens)) {
      const candidate = Buffer.from(stored);
      if (candidate.length === presented.length && timingSafeEqual(candidate, presented)) found = name;
    }
    return found === null ? null : { name: found, via: 'bearer' };
  }

  private async checkBasic(encoded: string, client: string): Promise<Principal | Refusal | null> {
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 1) return null;
    const name = decoded.slice(0, colon);
    const user = Object.hasOwn(this.config.users, name) ? this.config.users[name] : undefined;
    const key = createHmac('sha256', this.cacheKey).update(decoded).digest('base64');
    // Keyed by a digest: a name of any length costs the table the same.
    const nameKey = createHash('sha256').update(name).digest('base64');
    for (;;) {
      const known = this.verified.get(name);
      if (user && known?.key === key && known.until > Date.now()) return { name, via: 'basic' };
      const wait = Math.max(this.clients.wait(client), this.names.wait(nameKey));
      if (wait === 0) break;
      // A burst of right passwords (a publisher's parallel requests, peers
      // pulling at once) empties the bucket before the first is checked:
      // wait for the checks under way, which give their tokens back and
      // remember the credentials when they succeed. Only failures refuse.
      const settling = this.settling(client, nameKey);
      if (!settling) return { refused: 'failures', retryAfter: wait };
      await settling;
    }
    if (this.pool.full) return { refused: 'busy', retryAfter: 1 };
    this.clients.take(client);
    this.names.take(nameKey);
    const ok = await this.tracked([client, nameKey], this.pool.verify(decoded.slice(colon + 1), user?.password ?? this.dummy));
    if (!ok || !user) return null;
    this.clients.give(client);
    this.names.give(nameKey);
    // Not if the users were replaced while this one was checked: the password may have changed.
    if (this.cacheMs > 0 && this.config.users[name] === user) this.verified.set(name, { key, until: Date.now() + this.cacheMs });
    return { name, via: 'basic' };
  }

  private async tracked<T>(keys: string[], check: Promise<T>): Promise<T> {
    for (const k of keys) {
      let set = this.checking.get(k);
      if (!set) this.checking.set(k, (set = new Set()));
      set.add(check);
    }
    try {
      return await check;
    } finally {
      for (const k of keys) {
        const set = this.checking.get(k);
        set?.delete(check);
        if (set?.size === 0) this.checking.delete(k);
      }
    }
  }

  /** Settles when one of the checks under way for these keys does; undefined when none is. */
  private settling(...keys: string[]): Promise<unknown> | undefined {
    const under = keys.flatMap((k) => [...(this.checking.get(k) ?? [])]);
    return under.length === 0 ? undefined : Promise.race(under.map((p) => p.catch(() => undefined)));
  }
}
