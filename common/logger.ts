// Node side. The process logger: pino, JSON lines on stderr, level from LOG_LEVEL (default info).
import pino from 'pino';
import { redact, redactDeep } from '../activities/secrets/redact';

export type Logger = pino.Logger;

/** Secret-bearing field names whose values pino replaces with [redacted] wherever they appear. */
const REDACT = ['password', 'passphrase', 'privateKey', 'apiKey', 'token', 'secret', '*.password',
  '*.passphrase', '*.privateKey', '*.apiKey', '*.token', '*.secret'];

export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name, level,
    redact: { paths: REDACT, censor: '[redacted]' },
    // Known secret values are masked wherever they appear: in the message and in every attribute.
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? redact(a) : a instanceof Error ? a : redactDeep(a))) as Parameters<typeof method>);
      },
    },
    formatters: { log: (obj) => redactDeep(obj) },
  }, pino.destination(2));
}
