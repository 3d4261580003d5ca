// Node side. The process logger: pino, JSON lines on stderr, at the level the caller names (the worker's and the
// CLI's come from LOG_LEVEL, read in worker/config.ts).
import pino from 'pino';
import { redact, redactDeep } from './redact';

export type Logger = pino.Logger;

/** Secret-bearing field names whose values pino replaces with [redacted] wherever they appear. */
const REDACT = [
  'password',
  'passphrase',
  'privateKey',
  'apiKey',
  'token',
  'secret',
  '*.password',
  '*.passphrase',
  '*.privateKey',
  '*.apiKey',
  '*.token',
  '*.secret',
  // The engine configuration carries the worker's whole environment (for the env secret provider) and the history keys.
  'secretsEnv',
  'codecKeys',
  '*.secretsEnv',
  '*.codecKeys',
];

/** A pino logger at `level` (trace, debug, info, warn, error); `destination` defaults to stderr. */
export function createLogger(
  name: string,
  level: string,
  destination: pino.DestinationStream = pino.destination(2),
): Logger {
  return pino(
    {
      name,
      level,
      redact: { paths: REDACT, censor: '[redacted]' },
      // Known secret values are masked wherever they appear: in the message and in every attribute.
      hooks: {
        logMethod(args, method) {
          method.apply(
            this,
            args.map((a) => (typeof a === 'string' ? redact(a) : a instanceof Error ? a : redactDeep(a))) as Parameters<
              typeof method
            >,
          );
        },
      },
      formatters: { log: (obj) => redactDeep(obj) },
      serializers: { err: (e: Error) => redactDeep(pino.stdSerializers.err(e)) },
    },
    destination,
  );
}
