// Node side, pure (crypto only). Authentication of webhook deliveries: bearer tokens and HMAC-SHA256 signatures
// (Grafana's scheme: hex over the raw body, or over `TIMESTAMP:BODY` when a timestamp header is configured).
// Every comparison is constant-time, and a refusal says nothing about why.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Fixed-length digest of a secret, so comparing two of them takes the same time whatever their lengths. */
const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/**
 * Constant-time check of `Authorization: Bearer TOKEN` against any of the configured tokens (several allow a
 * rotation). The scheme is case-insensitive; empty configured tokens never match. Every token is compared, so the
 * time taken does not say which one matched.
 */
export function bearerOk(header: string | undefined, tokens: readonly string[]): boolean {
  if (typeof header !== 'string' || header.length > 8192) return false;
  const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
  if (!m) return false;
  const presented = digest(m[1]!);
  let ok = false;
  for (const token of tokens) ok = (timingSafeEqual(presented, digest(token)) && token.length > 0) || ok;
  return ok;
}

/** A timestamp header's value: Unix seconds, as Grafana sends them. */
const UNIX_SECONDS = /^\d{1,12}$/;

/** The signed message: the body, or `TIMESTAMP:BODY`. */
function message(rawBody: Buffer, timestamp: string | undefined): Buffer {
  return timestamp === undefined ? rawBody : Buffer.concat([Buffer.from(`${timestamp}:`, 'utf8'), rawBody]);
}

/** HMAC-SHA256, lower-case hex, of the raw body (or of `TIMESTAMP:BODY`), as Grafana's webhook signs it. */
export function hmacSign(rawBody: Buffer, secret: string, timestamp?: string): string {
  return createHmac('sha256', secret).update(message(rawBody, timestamp)).digest('hex');
}

/**
 * Whether `signature` (64 hex digits, optionally `sha256=`-prefixed) is the HMAC-SHA256 of the raw body under
 * `secret`, or of `TIMESTAMP:BODY` when `opts.timestamp` is given. When a timestamp header is configured, pass its
 * value even when absent (as ''): it is then refused, as is a timestamp (Unix seconds) more than `maxSkewSeconds`
 * (default 300) from `nowMs` (default now). An empty secret never verifies.
 */
export function hmacOk(
  rawBody: Buffer,
  signature: string | undefined,
  secret: string,
  opts: { timestamp?: string; nowMs?: number; maxSkewSeconds?: number } = {},
): boolean {
  if (typeof signature !== 'string' || secret.length === 0) return false;
  const hex = signature.trim().replace(/^sha256=/i, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) return false;
  const { timestamp } = opts;
  if (timestamp !== undefined) {
    if (!UNIX_SECONDS.test(timestamp)) return false;
    const skew = Math.abs((opts.nowMs ?? Date.now()) / 1000 - Number(timestamp));
    if (!(skew <= (opts.maxSkewSeconds ?? 300))) return false;
  }
  const expected = createHmac('sha256', secret).update(message(rawBody, timestamp)).digest();
  return timingSafeEqual(expected, Buffer.from(hex, 'hex'));
}
