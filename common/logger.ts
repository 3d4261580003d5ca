// Node side. The process logger: pino, JSON lines on stderr, level from LOG_LEVEL (default info).
import pino from 'pino';

export type Logger = pino.Logger;

/** Secret-bearing field names whose values pino replaces with [redacted] wherever they appear. */
const REDACT = ['password', 'passphrase', 'privateKey', 'apiKey', 'token', 'secret', '*.password',
  '*.passphrase', '*.privateKey', '*.apiKey', '*.token', '*.secret'];

export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, redact: { paths: REDACT, censor: '[redacted]' } }, pino.destination(2));
}
