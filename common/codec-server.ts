// Node side. The codec server: lets an authorised Temporal Web UI (or `temporal` CLI) show decrypted payloads.
// POST /encode and /decode take and return {"payloads": [...]} in the proto-JSON form (base64 metadata and
// data). Every call needs the bearer token; the embedded UI, which cannot send one, is given a URL with the
// token in its path (/ui/TOKEN), so only whoever can reach that UI sees cleartext. CORS admits the UI origins.
import crypto from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cors from '@fastify/cors';
import type { Payload } from '@temporalio/common';
import type { EncryptionCodec } from './codec';
import type { Logger } from './logger';

interface JsonPayload {
  metadata?: Record<string, string> | null;
  data?: string | null;
}

const bodySchema = {
  type: 'object',
  required: ['payloads'],
  properties: {
    payloads: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          metadata: { type: ['object', 'null'], additionalProperties: { type: 'string' } },
          data: { type: ['string', 'null'] },
        },
      },
    },
  },
} as const;

function fromJson(p: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: p.data ? Buffer.from(p.data, 'base64') : undefined,
  };
}

function toJson(p: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: p.data ? Buffer.from(p.data).toString('base64') : undefined,
  };
}

export interface CodecServerOptions {
  codec: EncryptionCodec;
  /** The bearer token callers must present. */
  token: string;
  host: string;
  port: number;
  /** Origins allowed by CORS (the Web UI's), e.g. http://127.0.0.1:8233. */
  corsOrigins: string[];
  logger?: Logger;
}

export interface CodecServer {
  /** Base URL for callers that send `Authorization: Bearer TOKEN`. */
  url: string;
  /** URL for a Web UI's codec endpoint setting (carries the token in its path). */
  uiEndpoint: string;
  close(): Promise<void>;
}

function sameToken(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(token).digest();
  return crypto.timingSafeEqual(a, b);
}

export function buildCodecServer(opts: CodecServerOptions): FastifyInstance {
  if (opts.token.length < 16) throw new Error('the codec server token must be at least 16 characters');
  const app = Fastify({ bodyLimit: 16 * 1024 * 1024, logger: false });
  void app.register(cors, {
    origin: opts.corsOrigins,
    methods: ['POST', 'OPTIONS'],
    allowedHeaders: ['content-type', 'x-namespace', 'authorization'],
    credentials: true,
    maxAge: 600,
  });

  const authorised = (req: FastifyRequest): boolean => {
    const pathToken = (req.params as { token?: string }).token;
    if (pathToken !== undefined) return sameToken(pathToken, opts.token);
    const header = req.headers.authorization;
    return sameToken(header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined, opts.token);
  };

  for (const op of ['encode', 'decode'] as const) {
    const handler = async (req: FastifyRequest, reply: FastifyReply) => {
      if (!authorised(req)) {
        opts.logger?.warn({ op, ip: req.ip }, 'codec call refused: missing or wrong token');
        return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'missing or wrong bearer token' });
      }
      const { payloads } = req.body as { payloads: JsonPayload[] };
      try {
        const out = await opts.codec[op](payloads.map(fromJson));
        return { payloads: out.map(toJson) };
      } catch (err) {
        return reply.code(400).send({ error: (err as Error).message });
      }
    };
    app.post(`/${op}`, { schema: { body: bodySchema } }, handler);
    app.post(`/ui/:token/${op}`, { schema: { body: bodySchema } }, handler);
  }
  return app;
}

export async function startCodecServer(opts: CodecServerOptions): Promise<CodecServer> {
  const app = buildCodecServer(opts);
  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const url = `http://${opts.host}:${port}`;
  return { url, uiEndpoint: `${url}/ui/${opts.token}`, close: () => app.close() };
}
