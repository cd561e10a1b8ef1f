/*
 * Who may write. Users log in with HTTP Basic (imgadm sends the userinfo of
 * its publish URL that way); their passwords are stored as salted scrypt
 * hashes. Bearer tokens are random, so a SHA-256 of each is enough to store.
 * Every comparison is constant-time; nothing here logs a secret.
 */
import { createHash, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const scryptAsync = promisify(scrypt) as (pw: string, salt: Buffer, len: number, opts: object) => Promise<Buffer>;

const KEY_LENGTH = 32;
const DEFAULT_LOG_N = 15;
const PASSWORD_RE = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;
export const PASSWORD_HASH_PATTERN = PASSWORD_RE.source;
export const TOKEN_HASH_PATTERN = '^sha256\\$[0-9a-f]{64}$';

function scryptParams(logN: number, r: number, p: number) {
  return { N: 2 ** logN, r, p, maxmem: 256 * 2 ** logN * r + 1024 * 1024 };
}

/** `$scrypt$ln=15,r=8,p=1$<salt>$<hash>`, both base64. */
export async function hashPassword(password: string, logN = DEFAULT_LOG_N): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, KEY_LENGTH, scryptParams(logN, 8, 1));
  return `$scrypt$ln=${logN},r=8,p=1$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = PASSWORD_RE.exec(stored);
  if (!m) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  const key = await scryptAsync(password, Buffer.from(m[4]!, 'base64'), expected.length,
    scryptParams(Number(m[1]), Number(m[2]), Number(m[3])));
  return timingSafeEqual(key, expected);
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

/**
 * Checks Authorization headers against the configured users and tokens.
 * scrypt is slow on purpose, and imgadm sends the same Basic credentials on
 * each of the four requests of a publish, so successes are remembered under
 * a keyed hash (never the password itself) until the credentials change.
 */
export class Credentials {
  private readonly cacheKey = randomBytes(32);
  private verified = new Map<string, string>();
  private config: CredentialConfig;

  constructor(config: CredentialConfig) {
    this.config = config;
  }

  /** Swaps in new users and tokens (SIGHUP): removed entries stop working at once. */
  replace(config: CredentialConfig): void {
    this.config = config;
    this.verified = new Map();
  }

  get configured(): boolean {
    return Object.keys(this.config.users).length > 0 || Object.keys(this.config.tokens).length > 0;
  }

  /** The principal the header proves, or null if it proves nobody. */
  async check(header: string): Promise<Principal | null> {
    const [scheme, value = ''] = header.trim().split(/\s+/, 2);
    if (scheme?.toLowerCase() === 'bearer') return this.checkToken(value);
    if (scheme?.toLowerCase() === 'basic') return this.checkBasic(value);
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

  private async checkBasic(encoded: string): Promise<Principal | null> {
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 1) return null;
    const name = decoded.slice(0, colon);
    const user = Object.hasOwn(this.config.users, name) ? this.config.users[name] : undefined;
    if (!user) return null;
    const key = createHmac('sha256', this.cacheKey).update(decoded).digest('base64');
    if (this.verified.get(name) === key) return { name, via: 'basic' };
    if (!(await verifyPassword(decoded.slice(colon + 1), user.password))) return null;
    this.verified.set(name, key);
    return { name, via: 'basic' };
  }
}
