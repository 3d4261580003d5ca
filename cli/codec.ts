// Node side. `runbook codec serve`: the codec server on its own, for a Web UI in front of a real cluster.
import { codecKeysFromEnv, EncryptionCodec } from '../common/codec';
import { UserError } from '../common/errors';
import { createLogger } from '../common/logger';
import { logLevelFromEnv } from '../worker/config';
import { startCodecServer } from '../common/codec-server';

export async function runCodecServe(o: { ip: string; port: number; uiOrigin: string[] }): Promise<void> {
  const keys = codecKeysFromEnv(process.env);
  if (keys.length === 0)
    throw new UserError(
      'No keys: set RUNBOOK_CODEC_KEYS (ID:BASE64KEY, comma-separated, first one encrypts) or RUNBOOK_CODEC_KEYS_FILE. Make a key with: runbook codec keygen',
    );
  const token = process.env.RUNBOOK_CODEC_TOKEN;
  if (!token || token.length < 16)
    throw new UserError('Set RUNBOOK_CODEC_TOKEN to the bearer token callers must send (at least 16 characters).');
  if (o.uiOrigin.length === 0)
    throw new UserError(
      'Name the Web UI origin allowed to call it: --ui-origin https://temporal-ui.example.com (repeat for several).',
    );
  const server = await startCodecServer({
    codec: new EncryptionCodec(keys),
    token,
    host: o.ip,
    port: o.port,
    corsOrigins: o.uiOrigin,
    logger: createLogger('runbook-codec', logLevelFromEnv()),
  });
  console.log(
    `codec server on ${server.url} (keys ${keys.map((k) => k.id).join(', ')}; CORS for ${o.uiOrigin.join(', ')}); Ctrl-C stops it`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      void server.close().then(resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
