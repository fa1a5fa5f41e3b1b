// TOTP (RFC 6238, SHA-1, 6 digits, 30 s) through `otpauth`: secrets for create-user --totp and the
// check of sudo logins. A code is accepted within one step either side of the server's clock, and
// only once: its step must be later than the last one accepted for that user (no replay).
import { Secret, TOTP } from 'otpauth';

export const TOTP_PERIOD_S = 30;

export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

function totpOf(secret: string, email: string): TOTP {
  return new TOTP({ issuer: 'atefs', label: email, secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: TOTP_PERIOD_S });
}

export function totpUrl(secret: string, email: string): string {
  return totpOf(secret, email).toString();
}

/** The time step of a valid, unused code, or null. */
export function checkTotp(secret: string, email: string, code: string, lastStep: number, now = Date.now()): number | null {
  if (!/^\d{6}$/.test(code)) return null;
  const t = totpOf(secret, email);
  const delta = t.validate({ token: code, timestamp: now, window: 1 });
  if (delta === null) return null;
  const step = t.counter({ timestamp: now }) + delta;
  return step > lastStep ? step : null;
}

/** The current code (tests and scripts that hold the secret). */
export function totpCode(secret: string, email: string, now = Date.now()): string {
  return totpOf(secret, email).generate({ timestamp: now });
}
