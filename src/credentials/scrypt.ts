/*
 * The scrypt side of password checks, synchronous on purpose: it runs in
 * the verify workers (verify-pool.ts), never on the main thread or on
 * libuv's thread pool, which file reads and writes need.
 */
import { scryptSync, timingSafeEqual } from 'node:crypto';

export const PASSWORD_RE = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

export function scryptParams(logN: number, r: number, p: number) {
  return { N: 2 ** logN, r, p, maxmem: 256 * 2 ** logN * r + 1024 * 1024 };
}

/** Whether `password` hashes to `stored`; a malformed or unusable hash never verifies. */
export function verifyPasswordSync(password: string, stored: string): boolean {
  const m = PASSWORD_RE.exec(stored);
  if (!m) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  if (expected.length === 0) return false;
  try {
    const key = scryptSync(password, Buffer.from(m[4]!, 'base64'), expected.length,
      scryptParams(Number(m[1]), Number(m[2]), Number(m[3])));
    return timingSafeEqual(key, expected);
  } catch {
    return false; // parameters scrypt refuses (r·p too large, N too large for maxmem)
  }
}
