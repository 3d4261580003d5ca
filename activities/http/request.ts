// Node side. The HTTP step: methods, headers, JSON or raw bodies, bearer/basic auth from secrets, TLS
// verification on by default, a timeout, expected statuses, a response size cap. Failures are typed: connection
// errors and 5xx are retryable, anything else is not. Secret values are substituted at the last moment and
// redacted from everything returned.
import { failureClass, FAILURES } from '../../common/failure-types';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { mapSecretTokens, secretsIn } from '../../dsl/expr';
import type { RenderedAction } from '../../dsl/render';
import { SecretError } from '../secrets/errors';
import type { SecretDeclaration, Secrets } from '../secrets/providers';
import { redact, redactDeep, rememberSecret } from '../../common/redact';

export type HttpAction = Extract<RenderedAction, { kind: 'http' }>;

/** TCP/TLS-level failure or no answer in time: retryable. */
export class HttpConnectError extends failureClass(FAILURES.httpConnect) {}
/** A 5xx the step did not expect: retryable. */
export class HttpServerError extends failureClass(FAILURES.httpServer) {}
/** A status the step did not expect (not 5xx): not retryable. */
export class HttpUnexpectedStatus extends failureClass(FAILURES.httpUnexpectedStatus) {}
/** The certificate did not verify: not retryable. */
export class HttpTlsError extends failureClass(FAILURES.httpTls) {}
/** The response body exceeded the cap: not retryable. */
export class HttpBodyTooLarge extends failureClass(FAILURES.httpBodyTooLarge) {}

export interface HttpStepInput {
  action: HttpAction;
  secrets?: Record<string, SecretDeclaration>;
  /** @default 30000 */
  timeoutMs?: number;
  /** @default 1048576 */
  maxBodyBytes?: number;
  /** Extra CA certificate file (PEM) trusted for this request, for internal PKI. */
  caFile?: string;
}

export interface HttpStepResult {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The parsed body when it is JSON. */
  json?: unknown;
  durationMs: number;
}

async function substitute(
  text: string,
  values: Map<string, string>,
  resolve: (n: string) => Promise<string>,
): Promise<string> {
  for (const name of secretsIn(text)) if (!values.has(name)) values.set(name, await resolve(name));
  return mapSecretTokens(text, (name) => values.get(name)!);
}

/**
 * A JSON body with its secrets in place: every string in it (keys too, at any depth) is substituted before the
 * body is serialised. Serialising first would escape the tokens' NUL delimiters (as \u0000) and send the token.
 */
async function substituteJson(
  value: unknown,
  values: Map<string, string>,
  resolve: (n: string) => Promise<string>,
): Promise<unknown> {
  if (typeof value === 'string') return substitute(value, values, resolve);
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    for (const v of value) out.push(await substituteJson(v, values, resolve));
    return out;
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[await substitute(k, values, resolve)] = await substituteJson(v, values, resolve);
    return out;
  }
  return value;
}

/**
 * Secrets also travel encoded: inside JSON strings (a server echoing a JSON body inside JSON escapes them twice)
 * and in URLs. Those forms are masked as well.
 */
function rememberEncodedForms(values: Map<string, string>): void {
  const escape = (t: string) => JSON.stringify(t).slice(1, -1);
  for (const v of values.values()) {
    rememberSecret(escape(v));
    rememberSecret(escape(escape(v)));
    rememberSecret(encodeURIComponent(v));
  }
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_NOT_YET_VALID',
]);

export async function runHttpStep(secrets: Secrets, input: HttpStepInput): Promise<HttpStepResult> {
  const started = Date.now();
  const a = input.action;
  const values = new Map<string, string>();
  const resolve = (name: string) => {
    const decl = input.secrets?.[name];
    if (!decl) throw new SecretError(`secret "${name}" is used by the request but not declared`);
    return secrets.resolve(name, decl);
  };
  const url = new URL(await substitute(a.url, values, resolve));
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(a.headers)) headers[k.toLowerCase()] = await substitute(v, values, resolve);
  if (a.auth?.bearer) headers.authorization = `Bearer ${await substitute(a.auth.bearer, values, resolve)}`;
  if (a.auth?.basic) {
    const pw = await substitute(a.auth.basic.password, values, resolve);
    const encoded = Buffer.from(`${a.auth.basic.user}:${pw}`).toString('base64');
    rememberSecret(encoded); // the header carries the password in base64: hide that form too
    headers.authorization = `Basic ${encoded}`;
  }
  let body: Buffer | undefined;
  if (a.json !== undefined) {
    body = Buffer.from(JSON.stringify(await substituteJson(a.json, values, resolve)));
    headers['content-type'] ??= 'application/json';
  } else if (a.body !== undefined) {
    body = Buffer.from(await substitute(a.body, values, resolve));
  }
  if (body) headers['content-length'] = String(body.length);
  rememberEncodedForms(values);
  const where = redact(`${a.method} ${url.origin}${url.pathname}`);
  const timeoutMs = input.timeoutMs ?? 30_000;
  const cap = input.maxBodyBytes ?? 1024 * 1024;

  const response = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>(
    (resolvePromise, reject) => {
      const lib = url.protocol === 'https:' ? https : http;
      const req = lib.request(
        url,
        {
          method: a.method,
          headers,
          timeout: timeoutMs,
          ...(url.protocol === 'https:'
            ? { rejectUnauthorized: a.tlsVerify, ca: input.caFile ? fs.readFileSync(input.caFile) : undefined }
            : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > cap) {
              req.destroy();
              reject(new HttpBodyTooLarge(`${where}: the response is larger than ${cap} bytes; refusing to read more`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () =>
            resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', (err) =>
            reject(new HttpConnectError(`${where}: the response broke off: ${redact(err.message)}`)),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code && TLS_CODES.has(err.code)) {
          reject(
            new HttpTlsError(
              `${where}: TLS verification failed (${err.code}): ${redact(err.message)}. Trust the server's CA (caFile) or, for a test system only, set tlsVerify: false.`,
            ),
          );
        } else {
          reject(new HttpConnectError(`${where}: ${err.code ? `${err.code}: ` : ''}${redact(err.message)}`));
        }
      });
      req.end(body);
    },
  );

  const text = redact(response.body.toString('utf8'));
  let json: unknown;
  if (/json/i.test(String(response.headers['content-type'] ?? '')) || /^\s*[[{]/.test(text)) {
    // Redacted again once parsed: a secret escaped inside a JSON string (an echoed request body) shows only now.
    try {
      json = redactDeep(JSON.parse(text));
    } catch {
      json = undefined;
    }
  }
  const result: HttpStepResult = {
    status: response.status,
    body: text,
    json,
    durationMs: Date.now() - started,
    headers: Object.fromEntries(
      ['content-type', 'location', 'etag']
        .filter((h) => response.headers[h])
        .map((h) => [h, redact(String(response.headers[h]))]),
    ),
  };
  if (!a.expectStatus.includes(response.status)) {
    const msg = `${where} answered ${response.status} (expected ${a.expectStatus.join(' or ')}): ${text.slice(0, 200)}`;
    throw Object.assign(response.status >= 500 ? new HttpServerError(msg) : new HttpUnexpectedStatus(msg), { result });
  }
  return result;
}
